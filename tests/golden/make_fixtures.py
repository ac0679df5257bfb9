#!/usr/bin/env python3
"""Regenerate the golden fixtures that modelslim's tests compare against.

Independent of modelslim's own code: preprocessing is torchvision's ImageNet eval transform
done with PIL (what torchvision.transforms runs on a PIL image), and the network is an ONNX
graph of torchvision's ResNet18 built here with onnx.helper and run by onnxruntime.

    cargo run --release -- init-weights --seed 42 --out target/seed42.safetensors
    python3 tests/golden/make_fixtures.py target/seed42.safetensors

Writes tests/fixtures/preprocess/*.png (the 224x224 crops) and
tests/fixtures/golden_resnet18_seed42.json (logits of the crops of chelsea.png and coffee.png).
Needs: pip install numpy pillow onnx onnxruntime safetensors
"""
import json
import os
import sys

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
from PIL import Image, ImageOps
from safetensors.numpy import load_file

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIX = os.path.join(ROOT, "tests", "fixtures")
PHOTOS = os.path.join(ROOT, "www", "samples")
MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def torchvision_eval_crop(img):
    """transforms.Resize(256) + transforms.CenterCrop(224) on a PIL image, as torchvision does."""
    w, h = img.size
    short, long = (w, h) if w <= h else (h, w)
    new_short, new_long = 256, int(256 * long / short)
    new_w, new_h = (new_short, new_long) if w <= h else (new_long, new_short)
    img = img.resize((new_w, new_h), Image.BILINEAR)
    top = int(round((new_h - 224) / 2.0))
    left = int(round((new_w - 224) / 2.0))
    return img.crop((left, top, left + 224, top + 224))


def normalise(crop):
    x = np.asarray(crop, dtype=np.float32) / np.float32(255.0)
    x = (x - MEAN) / STD
    return x.transpose(2, 0, 1).astype(np.float32)


def make_rotated_fixture():
    """A JPEG whose EXIF orientation (6: rotate 90° clockwise to display) must be applied."""
    src = Image.open(os.path.join(PHOTOS, "chelsea.png")).convert("RGB")
    stored = src.transpose(Image.Transpose.ROTATE_90)  # what a sideways camera would store
    exif = Image.Exif()
    exif[0x0112] = 6
    path = os.path.join(FIX, "rotated_exif6.jpg")
    stored.save(path, quality=95, subsampling=0, exif=exif)  # 4:4:4: no chroma upsampling to disagree on
    return path


def resnet18_onnx(weights):
    nodes, inits = [], []

    def init(name):
        inits.append(numpy_helper.from_array(weights[name].astype(np.float32), name))
        return name

    def conv_bn(x, conv, bn, stride, pad, relu, out):
        w = weights[conv + ".weight"]
        k = w.shape[2]
        nodes.append(helper.make_node("Conv", [x, init(conv + ".weight")], [out + "_c"],
                                      kernel_shape=[k, k], strides=[stride, stride],
                                      pads=[pad] * 4, dilations=[1, 1]))
        params = [init(f"{bn}.{p}") for p in ("weight", "bias", "running_mean", "running_var")]
        nodes.append(helper.make_node("BatchNormalization", [out + "_c"] + params,
                                      [out + ("_b" if relu else "")], epsilon=1e-5))
        if relu:
            nodes.append(helper.make_node("Relu", [out + "_b"], [out]))
        return out

    x = conv_bn("input", "conv1", "bn1", 2, 3, True, "stem")
    nodes.append(helper.make_node("MaxPool", [x], ["pool"], kernel_shape=[3, 3], strides=[2, 2],
                                  pads=[1, 1, 1, 1]))
    x = "pool"
    for s in range(1, 5):
        for b in range(2):
            p = f"layer{s}.{b}"
            stride = 2 if (s > 1 and b == 0) else 1
            h = conv_bn(x, p + ".conv1", p + ".bn1", stride, 1, True, p + "_1")
            h = conv_bn(h, p + ".conv2", p + ".bn2", 1, 1, False, p + "_2")
            if p + ".downsample.0.weight" in weights:
                idn = conv_bn(x, p + ".downsample.0", p + ".downsample.1", stride, 0, False, p + "_d")
            else:
                idn = x
            nodes.append(helper.make_node("Add", [h, idn], [p + "_add"]))
            nodes.append(helper.make_node("Relu", [p + "_add"], [p + "_out"]))
            x = p + "_out"
    nodes.append(helper.make_node("GlobalAveragePool", [x], ["gap"]))
    nodes.append(helper.make_node("Flatten", ["gap"], ["feat"], axis=1))
    nodes.append(helper.make_node("Gemm", ["feat", init("fc.weight"), init("fc.bias")], ["logits"],
                                  transB=1))
    graph = helper.make_graph(
        nodes, "resnet18", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, 224, 224])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 1000])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    onnx.checker.check_model(model)
    return model


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    os.makedirs(os.path.join(FIX, "preprocess"), exist_ok=True)
    crops = {}
    for name in ["chelsea.png", "coffee.png", "astronaut.png", "rocket.jpg"]:
        img = Image.open(os.path.join(PHOTOS, name))
        img = ImageOps.exif_transpose(img).convert("RGB")
        crops[name] = torchvision_eval_crop(img)
    # Lossless WebP of a sample photo: decoding must give the PNG's pixels exactly.
    Image.open(os.path.join(PHOTOS, "coffee.png")).convert("RGB").save(
        os.path.join(FIX, "coffee_lossless.webp"), lossless=True)
    rotated = make_rotated_fixture()
    img = ImageOps.exif_transpose(Image.open(rotated)).convert("RGB")
    crops["rotated_exif6.jpg"] = torchvision_eval_crop(img)
    for name, crop in crops.items():
        crop.save(os.path.join(FIX, "preprocess", os.path.splitext(name)[0] + ".png"))

    weights = load_file(sys.argv[1])
    sess = ort.InferenceSession(resnet18_onnx(weights).SerializeToString(),
                                providers=["CPUExecutionProvider"])
    batch = np.stack([normalise(crops["chelsea.png"]), normalise(crops["coffee.png"])])
    logits = sess.run(["logits"], {"input": batch})[0]
    out = {
        "weights": "seeded:42 (modelslim init-weights --seed 42)",
        "engine": f"onnxruntime {ort.__version__}",
        "inputs": ["preprocess/chelsea.png", "preprocess/coffee.png"],
        "logits": [[float(v) for v in row] for row in logits],
    }
    with open(os.path.join(FIX, "golden_resnet18_seed42.json"), "w") as f:
        json.dump(out, f)
    top = np.argsort(-logits, axis=1)[:, :5]
    print("top5:", top.tolist(), "logit range:", float(logits.min()), float(logits.max()))


if __name__ == "__main__":
    main()
