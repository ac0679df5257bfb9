"""modelslim on real ONNX classifiers that other projects wrote, beside onnxruntime's own
quantizer on the same file and photos (called by scripts/onnx-models.sh, which documents it).

usage: onnx_models.py MODELSLIM_BIN MODEL.onnx SCORED_DIR CALIB_DIR WORK_DIR [--short]
                      [--size HxW] [--mean R,G,B] [--std R,G,B] [--text-lines N,M]

The models are orientation classifiers: docorient's answers "is this photo upside down?" with
one logit, RapidOCR's "is this text line turned 180°?" with two. Their task has true labels on
any photo: each scored photo's crop (SCORED_DIR, recursively) is shown upright (label 0) and
turned 180° (label 1). Calibration uses other photos (CALIB_DIR), both ways up, for modelslim
and onnxruntime alike; --short: one setting of each tool. Every compressed file runs in
onnxruntime on the same inputs (modelslim's ONNX files compute modelslim's logits: the tests
in tests/suite/imported*.rs), preprocessed here with Pillow as modelslim does: the short side
resized (bilinear) to round(longer input side / 0.875), a centre crop of the input's size
(--size, 224x224 by default), (pixel/255 − mean)/std (--mean, --std: ImageNet's by default).
--text-lines N,M: the inputs are text lines instead (RapidOCR's own task), N scored and M
calibrating, each upright and turned 180°: two to six words from ImageNet's class names
(assets/imagenet_classes.tsv; the scored lines' words from the even-numbered classes, the
calibrating lines' from the odd-numbered ones), sometimes a number, in a DejaVu font of 20–40
pixels (Pillow's own font where DejaVu is missing), dark on light or light on dark, with pixel
noise; each line resized to the input's height (as RapidOCR resizes its crops), at most its
width, and padded on the right with its background. modelslim is given them as files with
`--resize` equal to the input's height, so a line keeps its width (SCORED_DIR and CALIB_DIR are
not read).
Prints one markdown row per file: accuracy on the task, agreement of the decision with fp32,
mean KL between the fp32 and compressed class probabilities (a single logit's sigmoid), and
the file's size.
"""
import contextlib
import glob
import os
import random
import subprocess
import sys

import numpy as np
import onnx
from onnx import version_converter
import onnxruntime as ort
from onnxruntime.quantization import (
    CalibrationDataReader,
    quant_pre_process,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_static,
)
from PIL import Image, ImageDraw, ImageFont

ort.set_default_logger_severity(3)


def flag(name, default):
    return sys.argv[sys.argv.index(name) + 1] if name in sys.argv else default


SIZE = flag("--size", "224x224")
HEIGHT, WIDTH = (int(v) for v in SIZE.split("x"))
RESIZE = round(max(HEIGHT, WIDTH) / 0.875)
MEAN = np.array([float(v) for v in flag("--mean", "0.485,0.456,0.406").split(",")], dtype=np.float32)
STD = np.array([float(v) for v in flag("--std", "0.229,0.224,0.225").split(",")], dtype=np.float32)


def crop(path):
    """Short side to RESIZE (bilinear), centre crop HEIGHT×WIDTH: torchvision's eval transform."""
    img = Image.open(path).convert("RGB")
    w, h = img.size
    size = (RESIZE, int(RESIZE * h / w)) if w <= h else (int(RESIZE * w / h), RESIZE)
    img = img.resize(size, Image.BILINEAR)
    w, h = img.size
    left, top = int(round((w - WIDTH) / 2.0)), int(round((h - HEIGHT) / 2.0))
    return img.crop((left, top, left + WIDTH, top + HEIGHT))


def tensor(img):
    x = (np.asarray(img, dtype=np.float32) / 255.0 - MEAN) / STD
    return x.transpose(2, 0, 1)


def both_ways(images):
    """Each image upright, then turned 180°: inputs and labels (1 = upside down)."""
    xs, ys = [], []
    for c in images:
        xs += [tensor(c), tensor(c.rotate(180))]
        ys += [0, 1]
    return np.stack(xs), np.array(ys)


def text_line(rng, words, fonts):
    """One rendered text line of the input's size (see --text-lines)."""
    text = " ".join(rng.choice(words) for _ in range(rng.randint(2, 6)))
    if rng.random() < 0.3:
        text += f" {rng.randint(1, 99999)}"
    size = rng.randint(20, 40)
    font = ImageFont.truetype(rng.choice(fonts), size) if fonts else ImageFont.load_default(size)
    left, top, right, bottom = font.getbbox(text)
    bg, fg = rng.randint(170, 255), rng.randint(0, 90)
    if rng.random() < 0.2:
        bg, fg = fg, bg
    margin = rng.randint(2, 8)
    img = Image.new("RGB", (right - left + 2 * margin, bottom - top + 2 * margin), (bg,) * 3)
    ImageDraw.Draw(img).text((margin - left, margin - top), text, font=font, fill=(fg,) * 3)
    w, h = img.size
    img = img.resize((min(WIDTH, int(np.ceil(HEIGHT * w / h))), HEIGHT), Image.BILINEAR)
    line = Image.new("RGB", (WIDTH, HEIGHT), (bg,) * 3)
    line.paste(img, (0, 0))
    noise = np.random.default_rng(rng.randint(0, 1 << 30)).normal(0, rng.uniform(0, 8), (HEIGHT, WIDTH, 3))
    return Image.fromarray(np.clip(np.asarray(line, dtype=np.float32) + noise, 0, 255).astype(np.uint8))


def text_lines(n, seed, parity):
    """`n` text lines; their words from the classes whose number has `parity`."""
    here = os.path.dirname(os.path.abspath(__file__))
    words = []
    with open(os.path.join(here, "..", "assets", "imagenet_classes.tsv")) as f:
        for i, row in enumerate(f):
            if i % 2 == parity:
                words += [w for w in row.split("\t", 1)[1].replace(",", " ").split() if w.isalpha()]
    fonts = sorted(glob.glob("/usr/share/fonts/truetype/dejavu/*.ttf"))
    rng = random.Random(seed)
    return [text_line(rng, words, fonts) for _ in range(n)]


def logits(model, x):
    s = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    name = s.get_inputs()[0].name
    batch = 1 if s.get_inputs()[0].shape[0] == 1 else 50
    out = [s.run(None, {name: x[i : i + batch]})[0] for i in range(0, len(x), batch)]
    return np.concatenate(out).reshape(len(x), -1)


def without_softmax(model, work):
    """`model` with its output moved before a trailing Softmax (and the Identity nodes after it):
    the logits, as modelslim reads the file. The same file where there is none."""
    proto = onnx.load(model)
    g = proto.graph
    writer = {o: n for n in g.node for o in n.output}
    name, drop = g.output[0].name, []
    while name in writer and writer[name].op_type in ("Identity", "Softmax"):
        drop.append(writer[name])
        name = writer[name].input[0]
        if drop[-1].op_type == "Softmax":
            break
    if not drop or drop[-1].op_type != "Softmax":
        return model
    for n in drop:
        g.node.remove(n)
    out = onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None)
    g.output.remove(g.output[0])
    g.output.insert(0, out)
    path = os.path.join(work, "logits.onnx")
    onnx.save(proto, path)
    return path


def probs(z):
    """Class probabilities: a single logit z is the classes [0, z] (its sigmoid)."""
    z = z.astype(np.float64)
    if z.shape[1] == 1:
        z = np.concatenate([np.zeros_like(z), z], axis=1)
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def row(name, z, z32, y, size):
    p, q = probs(z32), probs(z)
    eps = 1e-12
    kl = np.sum(p * np.log((p + eps) / (q + eps)), axis=1)
    acc = np.mean(q.argmax(axis=1) == y)
    agree = np.mean(q.argmax(axis=1) == p.argmax(axis=1))
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
    lines = flag("--text-lines", None)
    if lines:
        n, m = (int(v) for v in lines.split(","))
        scored, calib = text_lines(n, 0, 0), text_lines(m, 1, 1)
        calib_images = calib
        what = f"{n} text lines both ways up ({2 * n} inputs), calibrated on {m} others"
    else:
        scored_paths, calib_paths = photos(scored_dir), photos(calib_dir)[:128]
        scored, calib = [crop(p) for p in scored_paths], [crop(p) for p in calib_paths]
        calib_images = [Image.open(p).convert("RGB") for p in calib_paths]
        what = f"{len(scored)} photos both ways up ({2 * len(scored)} inputs), calibrated on {len(calib)} others"
    x, y = both_ways(scored)
    xc, _ = both_ways(calib)
    # modelslim calibrates on the same images both ways up, as files in a folder.
    cdir = os.path.join(work, "calib")
    os.makedirs(cdir, exist_ok=True)
    for i, c in enumerate(calib_images):
        c.save(f"{cdir}/{i:03d}-up.png")
        c.rotate(180).save(f"{cdir}/{i:03d}-down.png")
    # The logits of the file as published, and what onnxruntime's quantizer is given.
    reference = without_softmax(model, work)
    z32 = logits(reference, x)
    print(f"{os.path.basename(model)} at {SIZE}: {what} both ways up", file=sys.stderr)
    print("| file | accuracy (rotated or not) | agreement with fp32 | mean KL | size |")
    print("|---|---|---|---|---|")
    print(row("fp32 (the file as published)", z32, z32, y, os.path.getsize(model)))
    # The input as modelslim is told it (the file leaves it open or fixes what this says).
    input_flags = ["--input-size", SIZE, "--mean", ",".join(map(str, MEAN)),
                   "--std", ",".join(map(str, STD))] + (["--resize", str(HEIGHT)] if lines else [])
    int8a8 = ["--quant", "int8", "--act-quant"]
    runs = [
        ("modelslim int8 weights + activations, bias correction (min-max; the page's Pi preset)",
         int8a8 + ["--bias-correction"]),
        ("modelslim int8 weights (GPTQ) + activations, bias correction",
         int8a8 + ["--bias-correction", "--quant-method", "gptq"]),
        ("modelslim int8 weights (GPTQ) + activations, bias correction (percentile 99.9)",
         int8a8 + ["--bias-correction", "--quant-method", "gptq", "--calibration", "percentile:99.9"]),
        ("modelslim int8 weights + activations, bias correction (percentile 99.99)",
         int8a8 + ["--bias-correction", "--calibration", "percentile:99.99"]),
        ("modelslim int8 weights + activations, bias correction (percentile 99.9)",
         int8a8 + ["--bias-correction", "--calibration", "percentile:99.9"]),
        ("modelslim int8 weights + activations (min-max), no bias correction", int8a8),
        ("modelslim int8 weights only", ["--quant", "int8"]),
        ("modelslim int8 weights only (GPTQ)", ["--quant", "int8", "--quant-method", "gptq"]),
        ("modelslim 30 % channels pruned + refit", ["--prune-channels", "0.3", "--reconstruct"]),
    ]
    if short:
        runs = runs[:1]
    for name, flags in runs:
        out = os.path.join(work, f"modelslim-{len(os.listdir(work))}.onnx")
        subprocess.run([bin_, "compress", "--weights", model, *input_flags, *flags, "--calibrate", cdir,
                        "--out", out.replace(".onnx", ".safetensors"), "--onnx", out, "--json"],
                       check=True, stdout=subprocess.DEVNULL)
        print(row(name, logits(out, x), z32, y, os.path.getsize(out)))
    name = ort.InferenceSession(reference, providers=["CPUExecutionProvider"]).get_inputs()[0].name
    # onnxruntime's recommended first steps: opset 13 at least (its per-channel
    # DequantizeLinear needs it), shape inference and graph optimization.
    source = reference
    proto = onnx.load(reference)
    if max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")) < 13:
        source = os.path.join(work, "opset13.onnx")
        onnx.save(version_converter.convert_version(proto, 13), source)
    prepared = os.path.join(work, "prepared.onnx")
    # onnxruntime's quantizer reports its progress on stdout, where the rows go.
    with contextlib.redirect_stdout(sys.stderr):
        quant_pre_process(source, prepared, skip_symbolic_shape=True)
    methods = [("MinMax", CalibrationMethod.MinMax), ("Percentile", CalibrationMethod.Percentile),
               ("Entropy", CalibrationMethod.Entropy)]
    if short:
        methods = methods[:1]
    for per_channel in [True, False]:
        for label, method in methods:
            out = os.path.join(work, f"ort-{label}-{per_channel}.onnx")
            with contextlib.redirect_stdout(sys.stderr):
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
