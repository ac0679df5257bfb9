"""Classify photos with an ONNX file in onnxruntime, or a TFLite file in LiteRT, preprocessing
them independently of modelslim (Pillow + numpy, torchvision's eval transform: resize the short
side to 256 with bilinear filtering, center crop 224, ImageNet mean/std).

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

MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def preprocess(path):
    img = Image.open(path).convert("RGB")
    w, h = img.size
    if w <= h:
        size = (256, int(256 * h / w))
    else:
        size = (int(256 * w / h), 256)
    img = img.resize(size, Image.BILINEAR)
    w, h = img.size
    left, top = int(round((w - 224) / 2.0)), int(round((h - 224) / 2.0))
    img = img.crop((left, top, left + 224, top + 224))
    x = (np.asarray(img, dtype=np.float32) / 255.0 - MEAN) / STD
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
batch = np.stack([preprocess(p) for p in photos]).astype(np.float32)
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
