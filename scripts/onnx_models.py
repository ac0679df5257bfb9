"""modelslim on real ONNX classifiers that other projects wrote, beside onnxruntime's own
quantizer on the same file and photos (called by scripts/onnx-models.sh, which documents it).

usage: onnx_models.py MODELSLIM_BIN MODEL.onnx SCORED_DIR CALIB_DIR WORK_DIR [--short]

docorient's orientation detector answers "is this photo upside down?" with one logit. Its task
has true labels on any photo: each scored photo's crop (SCORED_DIR, recursively) is shown
upright (label 0) and turned 180° (label 1). Calibration uses other photos (CALIB_DIR), both
ways up, for modelslim and onnxruntime alike; --short: one setting of each tool. Every
compressed file runs in onnxruntime on the same inputs (modelslim's ONNX files compute
modelslim's logits exactly: tests/suite/imported.rs), preprocessed here with Pillow the way
torchvision's eval transform does (short side to 256, centre crop 224, ImageNet mean and
std). Prints one markdown row per file: accuracy on the task, agreement of the decision
with fp32, mean KL between the fp32 and compressed sigmoids, and the file's size.
"""
import glob
import os
import subprocess
import sys

import numpy as np
import onnxruntime as ort
from onnxruntime.quantization import (
    CalibrationDataReader,
    quant_pre_process,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_static,
)
from PIL import Image

ort.set_default_logger_severity(3)
MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def crop(path):
    """torchvision's eval transform: short side to 256 (bilinear), centre crop 224."""
    img = Image.open(path).convert("RGB")
    w, h = img.size
    size = (256, int(256 * h / w)) if w <= h else (int(256 * w / h), 256)
    img = img.resize(size, Image.BILINEAR)
    w, h = img.size
    left, top = int(round((w - 224) / 2.0)), int(round((h - 224) / 2.0))
    return img.crop((left, top, left + 224, top + 224))


def tensor(img):
    x = (np.asarray(img, dtype=np.float32) / 255.0 - MEAN) / STD
    return x.transpose(2, 0, 1)


def both_ways(paths):
    """Each crop upright, then turned 180°: inputs and labels (1 = upside down)."""
    xs, ys = [], []
    for p in paths:
        c = crop(p)
        xs += [tensor(c), tensor(c.rotate(180))]
        ys += [0, 1]
    return np.stack(xs), np.array(ys)


def logits(model, x):
    s = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    name = s.get_inputs()[0].name
    batch = 1 if s.get_inputs()[0].shape[0] == 1 else 50
    out = [s.run(None, {name: x[i : i + batch]})[0] for i in range(0, len(x), batch)]
    return np.concatenate(out).reshape(len(x))


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z.astype(np.float64)))


def row(name, z, z32, y, size):
    p, q = sigmoid(z32), sigmoid(z)
    eps = 1e-12
    kl = p * np.log((p + eps) / (q + eps)) + (1 - p) * np.log((1 - p + eps) / (1 - q + eps))
    acc = np.mean((z > 0) == (y == 1))
    agree = np.mean((z > 0) == (z32 > 0))
    return f"| {name} | {acc:.3f} | {agree:.3f} | {np.mean(kl):.4f} | {size / 1e6:.2f} MB |"


class Reader(CalibrationDataReader):
    def __init__(self, name, x):
        self.it = iter([{name: x[i : i + 1]} for i in range(len(x))])

    def get_next(self):
        return next(self.it, None)


def main():
    bin_, model, scored_dir, calib_dir, work = sys.argv[1:6]
    short = "--short" in sys.argv
    photos = lambda d: sorted(p for p in glob.glob(f"{d}/**/*", recursive=True)
                              if p.lower().endswith((".jpeg", ".jpg", ".png")))
    scored, calib = photos(scored_dir), photos(calib_dir)[:128]
    x, y = both_ways(scored)
    xc, _ = both_ways(calib)
    # modelslim calibrates on the same photos both ways up, as files in a folder.
    cdir = os.path.join(work, "calib")
    os.makedirs(cdir, exist_ok=True)
    for i, p in enumerate(calib):
        c = Image.open(p).convert("RGB")
        c.save(f"{cdir}/{i:03d}-up.png")
        c.rotate(180).save(f"{cdir}/{i:03d}-down.png")
    z32 = logits(model, x)
    print(f"docorient orientation_detector.onnx: {len(scored)} photos both ways up ({len(x)} inputs), "
          f"calibrated on {len(calib)} others both ways up", file=sys.stderr)
    print("| file | accuracy (rotated or not) | agreement with fp32 | mean KL | size |")
    print("|---|---|---|---|---|")
    print(row("fp32 (the file as published)", z32, z32, y, os.path.getsize(model)))
    int8a8 = ["--quant", "int8", "--act-quant"]
    runs = [
        ("modelslim int8 weights + activations, bias correction (min-max; the page's Pi preset)",
         int8a8 + ["--bias-correction"]),
        ("modelslim int8 weights (GPTQ) + activations, bias correction",
         int8a8 + ["--bias-correction", "--quant-method", "gptq"]),
        ("modelslim int8 weights + activations, bias correction (percentile 99.99)",
         int8a8 + ["--bias-correction", "--calibration", "percentile:99.99"]),
        ("modelslim int8 weights + activations (min-max), no bias correction", int8a8),
        ("modelslim int8 weights only", ["--quant", "int8"]),
        ("modelslim int8 weights only (GPTQ)", ["--quant", "int8", "--quant-method", "gptq"]),
        ("modelslim 30 % channels pruned + refit", ["--prune-channels", "0.3", "--reconstruct"]),
    ]
    if short:
        runs = runs[:1]
    for name, flags in runs:
        out = os.path.join(work, f"modelslim-{len(os.listdir(work))}.onnx")
        subprocess.run([bin_, "compress", "--weights", model, *flags, "--calibrate", cdir,
                        "--out", out.replace(".onnx", ".safetensors"), "--onnx", out, "--json"],
                       check=True, stdout=subprocess.DEVNULL)
        print(row(name, logits(out, x), z32, y, os.path.getsize(out)))
    name = ort.InferenceSession(model, providers=["CPUExecutionProvider"]).get_inputs()[0].name
    # onnxruntime's recommended first step: shape inference and graph optimization.
    prepared = os.path.join(work, "prepared.onnx")
    quant_pre_process(model, prepared, skip_symbolic_shape=True)
    methods = [("MinMax", CalibrationMethod.MinMax), ("Percentile", CalibrationMethod.Percentile),
               ("Entropy", CalibrationMethod.Entropy)]
    if short:
        methods = methods[:1]
    for per_channel in [True, False]:
        for label, method in methods:
            out = os.path.join(work, f"ort-{label}-{per_channel}.onnx")
            quantize_static(prepared, out, Reader(name, xc), quant_format=QuantFormat.QDQ,
                            per_channel=per_channel, activation_type=QuantType.QUInt8,
                            weight_type=QuantType.QInt8, calibrate_method=method)
            granularity = "per-channel" if per_channel else "per-tensor"
            print(row(f"onnxruntime quantize_static, {label}, {granularity}", logits(out, x), z32, y,
                      os.path.getsize(out)))
        if short:
            break


if __name__ == "__main__":
    main()
