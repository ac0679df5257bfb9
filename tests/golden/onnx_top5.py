"""Classify photos with an ONNX file in onnxruntime, or a TFLite file in LiteRT, preprocessing
them independently of modelslim (Pillow + numpy, torchvision's eval transform: resize the short
side to 256 with bilinear filtering, center crop 224, ImageNet mean/std — or, for an ONNX file
that says how (modelslim's `modelslim.preprocess` metadata), its resize, crop size, mean, std
and channel order).

usage: onnx_top5.py MODEL.onnx|MODEL.tflite PHOTO [PHOTO ...] [--no-optimize]
prints one JSON line per photo: {"image": NAME, "top5": [{"index", "prob"}, ...], "logits": [...]}
and, for a TFLite file with int8 logits, "step": their quantization step.
--no-optimize runs the graph as written (no fusion of QuantizeLinear/DequantizeLinear pairs
into integer kernels).
"""
import json
import os
import sys

import numpy as np
import onnxruntime as ort
from PIL import Image

IMAGENET = {"resize": 256, "crop": 224, "mean": [0.485, 0.456, 0.406],
            "std": [0.229, 0.224, 0.225], "bgr": False}


def preprocessing(model):
    """The file's own preprocessing where it states one, else ImageNet's."""
    if model.endswith(".onnx"):
        import onnx

        meta = {p.key: p.value for p in onnx.load(model, load_external_data=False).metadata_props}
        if "modelslim.preprocess" in meta:
            return json.loads(meta["modelslim.preprocess"])
    return IMAGENET


def preprocess(path, pre):
    resize, height = pre["resize"], pre["crop"]
    width = pre.get("crop_width") or height
    img = Image.open(path).convert("RGB")
    w, h = img.size
    if w <= h:
        size = (resize, int(resize * h / w))
    else:
        size = (int(resize * w / h), resize)
    img = img.resize(size, Image.BILINEAR)
    w, h = img.size
    left, top = int(round((w - width) / 2.0)), int(round((h - height) / 2.0))
    img = img.crop((left, top, left + width, top + height))
    x = np.asarray(img, dtype=np.float32) / 255.0
    if pre.get("bgr"):
        x = x[:, :, ::-1]
    x = (x - np.array(pre["mean"], dtype=np.float32)) / np.array(pre["std"], dtype=np.float32)
    return x.transpose(2, 0, 1)


def litert(model, batch):
    """The logits of a TFLite file (NHWC input) in LiteRT, and the step of its int8 logits."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=model)
    interpreter.allocate_tensors()
    (inp,) = interpreter.get_input_details()
    (out,) = interpreter.get_output_details()
    logits = []
    for x in batch.transpose(0, 2, 3, 1):
        interpreter.set_tensor(inp["index"], np.ascontiguousarray(x[None]))
        interpreter.invoke()
        logits.append(interpreter.get_tensor(out["index"])[0].copy())
    steps = [t["quantization"][0] for t in interpreter.get_tensor_details() if t["name"] == "logits_int8"]
    return np.stack(logits), (float(steps[0]) if steps else None)


args = [a for a in sys.argv[1:] if not a.startswith("--")]
model, photos = args[0], args[1:]
pre = preprocessing(model)
batch = np.stack([preprocess(p, pre) for p in photos]).astype(np.float32)
step = None
if model.endswith(".tflite"):
    logits, step = litert(model, batch)
else:
    opts = ort.SessionOptions()
    if "--no-optimize" in sys.argv:
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
    (logits,) = session.run(["logits"], {"input": batch})
for path, l in zip(photos, logits):
    p = np.exp(l - l.max())
    p /= p.sum()
    top = np.argsort(-p, kind="stable")[:5]
    print(json.dumps({"image": os.path.basename(path),
                      "top5": [{"index": int(i), "prob": float(p[i])} for i in top],
                      "logits": [float(v) for v in l], "step": step}))
