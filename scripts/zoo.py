"""One torchvision classifier family through modelslim, each step checked against an independent
engine (called by scripts/zoo.sh, which writes docs/zoo.md).

usage: zoo.py FAMILY MODELSLIM_BIN PHOTOS_DIR CALIB_DIR WORK_DIR CACHE_DIR   (rows on stdout)
       zoo.py --summary WORK_DIR MODELSLIM_BIN                             ("Not supported")

The network: torchvision's FAMILY with random weights (`weights=None` after
`torch.manual_seed(0)`, eval mode; GoogLeNet and Inception-v3 with `aux_logits=False,
init_weights=True`), input 1×3×224×224 (Inception-v3: 299), exported twice: by the TorchScript
exporter (`dynamo=False, opset_version=17`) and by the dynamo exporter (`dynamo=True,
opset_version=18, external_data=False`: asked for 17, torch's version converter fails on
ReduceMean's axes and keeps 18 anyway). Both files are kept in CACHE_DIR and reused. The dynamo
file gets a row only where its op types, counted, differ from the TorchScript file's, or where
its export fails. Per file:
  loads   `modelslim predict` on the file: "yes", or the error it prints (the refusing node).
  fp32    modelslim's logits (`predict --json`) against onnxruntime's on the same inputs: max |Δ|
          over the photos, divided by the logit span (max − min) of onnxruntime's.
  int8    `compress --quant int8 --act-quant --calibrate CALIB_DIR --onnx`: the int8 QDQ file in
          onnxruntime against modelslim's logits of the compressed model (`predict --json` on
          its safetensors): max |Δ|, "exact" when 0.
  prune   `compress --prune-channels 0.3 --reconstruct --calibrate CALIB_DIR --onnx --json`: the
          MACs before → after from the JSON report, and the pruned ONNX in onnxruntime against
          modelslim's logits of the pruned model (max |Δ| / span).
  tflite  `export --tflite` of the int8 model (full integer: its activations are quantized, float
          input and output), run in LiteRT, against modelslim's int8 logits (max |Δ| / span).
Inputs: each photo of PHOTOS_DIR resized (short side to round(size / 0.875), bilinear) and
centre-cropped here with Pillow, saved as a PNG of the input's size, and given to modelslim
with `--resize SIZE` (so modelslim resamples nothing) and to the engines as
(pixel/255 − ImageNet mean)/std. A failing step's cell is the first line of its error, shortened.
Each file's outcome also goes to WORK_DIR/records.jsonl; --summary reads it: for each refused
family, the op and node modelslim refuses first, the op types in its files (pools with
ceil_mode=1 apart) that no file that loads has and that modelslim's own list of read ops (its
error on a one-node graph of an unknown op) does not name, and what running them would take
(TAKES: a note per op type).
"""
import collections
import contextlib
import glob
import json
import os
import re
import subprocess
import sys
import time

import numpy as np
import onnx
import onnxruntime as ort
from PIL import Image

ort.set_default_logger_severity(3)
MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


class Failed(Exception):
    pass


def short(text, n=400):
    """The first meaningful line of an error, without modelslim's prefix and the file's path."""
    lines = [l.strip() for l in text.strip().splitlines() if l.strip()]
    line = next((l for l in lines if "error" in l.lower()), lines[-1] if lines else "failed")
    line = re.sub(r"^modelslim: error: (\S+: )?", "", line).replace("ONNX: ", "")
    return trunc(line.split("; modelslim reads networks of")[0].replace("|", "/"), n)


def trunc(line, n=110):
    return line if len(line) <= n else line[: n - 1] + "…"


def export(family, exporter, path):
    """The family's file (from the cache, else exported now); raises Failed with the reason."""
    err = path + ".err"
    if os.path.exists(err):
        raise Failed(open(err).read())
    if os.path.exists(path):
        return
    import torch
    import torchvision

    torch.manual_seed(0)
    kw = {"aux_logits": False, "init_weights": True} if family in ("googlenet", "inception_v3") else {}
    model = getattr(torchvision.models, family)(weights=None, **kw).eval()
    size = 299 if family == "inception_v3" else 224
    x = torch.randn(1, 3, size, size)
    tmp = path + ".part"
    try:
        # The exporters report their progress on stdout, where the rows go.
        with contextlib.redirect_stdout(sys.stderr):
            if exporter == "torchscript":
                torch.onnx.export(model, (x,), tmp, dynamo=False, opset_version=17)
            else:
                torch.onnx.export(model, (x,), tmp, dynamo=True, opset_version=18, external_data=False)
    except Exception as e:  # the exporter's own failure is a result
        msg = short(f"{type(e).__name__}: {e}")
        open(err, "w").write(msg)
        raise Failed(msg)
    os.replace(tmp, path)


def ops(path):
    return collections.Counter(n.op_type for n in onnx.load(path, load_external_data=False).graph.node)


def kinds(path):
    """The op types, pools with ceil_mode=1 told apart (for the summary's "no file that loads has")."""
    ceil = lambda n: any(a.name == "ceil_mode" and a.i for a in n.attribute)
    return sorted({n.op_type + (" ceil_mode" if ceil(n) else "") for n in onnx.load(path, load_external_data=False).graph.node})


def input_size(path):
    dims = onnx.load(path, load_external_data=False).graph.input[0].type.tensor_type.shape.dim
    return dims[2].dim_value or 224


def crops(photos, size, work):
    """PHOTOS_DIR's photos as size×size PNGs (torchvision's eval transform) and their tensors."""
    d = os.path.join(work, f"crops-{size}")
    os.makedirs(d, exist_ok=True)
    paths, xs = [], []
    resize = round(size / 0.875)
    for p in photos:
        img = Image.open(p).convert("RGB")
        w, h = img.size
        img = img.resize((resize, int(resize * h / w)) if w <= h else (int(resize * w / h), resize), Image.BILINEAR)
        w, h = img.size
        left, top = int(round((w - size) / 2.0)), int(round((h - size) / 2.0))
        img = img.crop((left, top, left + size, top + size))
        out = os.path.join(d, os.path.splitext(os.path.basename(p))[0] + ".png")
        img.save(out)
        paths.append(out)
        xs.append(((np.asarray(img, dtype=np.float32) / 255.0 - MEAN) / STD).transpose(2, 0, 1))
    return paths, np.stack(xs)


def modelslim(bin_, *args):
    r = subprocess.run([bin_, *args], capture_output=True, text=True)
    if r.returncode:
        raise Failed(short(r.stderr or r.stdout))
    return r.stdout


def ms_logits(bin_, weights, paths, size):
    flags = [a for p in paths for a in ("--image", p)]
    out = modelslim(bin_, "predict", "--weights", weights, "--resize", str(size), *flags, "--json")
    by_image = {j["image"]: j["logits"] for j in map(json.loads, out.splitlines())}
    # The JSON holds each f32 logit as the shortest decimal that reads back as it: read it back
    # as an f32, or an exact value would differ from onnxruntime's by the decimal's error.
    return np.array([by_image[p] for p in paths], dtype=np.float32).astype(np.float64)


def ort_logits(path, x):
    s = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    name = s.get_inputs()[0].name
    return np.stack([s.run(None, {name: x[i : i + 1]})[0].reshape(-1) for i in range(len(x))]).astype(np.float64)


def litert_logits(path, x):
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=path)
    it.allocate_tensors()
    i, o = it.get_input_details()[0], it.get_output_details()[0]
    out = []
    for xi in x:
        it.set_tensor(i["index"], xi.transpose(1, 2, 0)[None].astype(i["dtype"]))
        it.invoke()
        out.append(it.get_tensor(o["index"]).reshape(-1))
    return np.stack(out).astype(np.float64)


def rel(z, ref):
    """max |Δ| over the photos / the span of the reference logits."""
    if z.shape != ref.shape:
        raise Failed(f"{z.shape[1]} logits against {ref.shape[1]}")
    span = max(np.ptp(ref, axis=1).max(), 1e-30)
    return np.abs(z - ref).max() / span


def cell(f):
    """f()'s text, or why it failed."""
    try:
        return f()
    except Exception as e:
        return f"fails: {trunc(str(e) if isinstance(e, Failed) else short(f'{type(e).__name__}: {e}'))}"


def check(bin_, path, paths, x, size, calib, work):
    """The cells after "ops" for one file, and the refusal (None where it loads)."""
    try:
        z32 = ms_logits(bin_, path, paths, size)
    except Failed as e:  # the table names the op, the summary the node too
        return [trunc(re.sub(r"^node '[^']*' \((\w+)\)", r"\1", str(e)), 130)] + ["—"] * 5, str(e)
    fp32 = cell(lambda: f"{rel(z32, ort_logits(path, x)):.1e}")
    stem = os.path.join(work, os.path.basename(path)[:-5])
    z = {}  # what the steps so far made

    def int8():
        modelslim(bin_, "compress", "--weights", path, "--quant", "int8", "--act-quant", "--calibrate", calib,
                  "--out", stem + "-int8.safetensors", "--onnx", stem + "-int8.onnx")
        z["int8"] = ms_logits(bin_, stem + "-int8.safetensors", paths, size)
        zo = ort_logits(stem + "-int8.onnx", x)
        d = np.abs(zo - z["int8"]).max()
        return "exact" if d == 0 else f"{d:.2g} ({rel(zo, z['int8']):.1e} of span)"

    def prune():
        rep = json.loads(modelslim(bin_, "compress", "--weights", path, "--prune-channels", "0.3", "--reconstruct",
                                   "--calibrate", calib, "--out", stem + "-pruned.safetensors",
                                   "--onnx", stem + "-pruned.onnx", "--json"))
        b, a = rep["before"]["macs"], rep["after"]["macs"]
        z["pruned"] = True
        return f"{b / 1e9:.2f} → {a / 1e9:.2f} G ({a / b:.2f}×)"

    def pruned_onnx():
        if "pruned" not in z:
            return "—"
        zp = ms_logits(bin_, stem + "-pruned.safetensors", paths, size)
        return f"{rel(ort_logits(stem + '-pruned.onnx', x), zp):.1e}"

    def tflite():
        if "int8" not in z:
            return "— (no int8 model)"
        modelslim(bin_, "export", "--weights", stem + "-int8.safetensors", "--tflite", stem + "-int8.tflite")
        d = rel(litert_logits(stem + "-int8.tflite", x), z["int8"])
        return "exact" if d == 0 else f"{d:.1e}"

    # In this order: the ONNX of the pruned model needs prune() to have run, tflite() int8().
    return ["yes", fp32, cell(int8), cell(prune), cell(pruned_onnx), cell(tflite)], None


def main():
    family, bin_, photos_dir, calib, work, cache = sys.argv[1:7]
    os.makedirs(cache, exist_ok=True)
    photos = sorted(p for p in glob.glob(f"{photos_dir}/*") if p.lower().endswith((".png", ".jpg", ".jpeg")))
    ts_ops = None
    for exporter in ["torchscript", "dynamo"]:
        path = os.path.join(cache, f"{family}-{exporter}.onnx")
        record = {"family": family, "exporter": exporter}
        try:
            export(family, exporter, path)
        except Failed as e:
            record["export_error"] = str(e)
            print(f"| {family} | {exporter} | — | — | export fails: {trunc(str(e))} |" + " — |" * 6, flush=True)
            append(work, record)
            continue
        counts = ops(path)
        record["ops"] = kinds(path)
        if exporter == "torchscript":
            ts_ops = counts
        elif counts == ts_ops:
            record["same_ops"] = True
            append(work, record)
            continue
        start = time.time()
        size = input_size(path)
        paths, x = crops(photos, size, work)
        cells, refusal = check(bin_, path, paths, x, size, calib, work)
        record["refusal"] = refusal
        append(work, record)
        mb = os.path.getsize(path) / 1e6
        print(f"| {family} | {exporter} | {mb:.1f} | {' '.join(sorted(counts))} | " + " | ".join(cells)
              + f" | {time.time() - start:.0f} |", flush=True)


def append(work, record):
    with open(os.path.join(work, "records.jsonl"), "a") as f:
        f.write(json.dumps(record) + "\n")


# What running each refusing op would take (explanation only: which ops refuse comes from the run).
TAKES = {
    "Concat": "concatenation along channels (a channel-offset write; pruning maps each input's channel group into the output)",
    "Split": "splitting channels (views of a channel range; pruning keeps the parts consistent)",
    "Slice": "channel slicing (a view of a channel range)",
    "Transpose": "a permute (ShuffleNet's channel shuffle is one fixed channel permutation; ConvNeXt's goes to channels-last and back)",
    "LayerNormalization": "LayerNorm over the channels (ConvNeXt's, channels-last), and its int8 form",
    "Erf": "GELU (exact, with Erf)",
    "Add": "constant arithmetic (TorchScript's channel-split indices) folded before running",
    "Div": "a division: by √2 in GELU, or shape arithmetic",
    "Gather": "shape arithmetic on the running tensor, constant once the input's size is fixed",
    "Shape": "shape arithmetic on the running tensor, constant once the input's size is fixed",
    "MatMul": "a matrix product over channels-last pixels (ConvNeXt's pointwise layers: a 1×1 conv)",
    "MaxPool ceil_mode": "MaxPool with ceil_mode=1 (a partial window at the edge)",
    "AveragePool ceil_mode": "AveragePool with ceil_mode=1 (a partial window at the edge)",
    "Flatten": "a Flatten of a spatial map (C·H·W features, not a pooled vector) before the classifier",
    "Reshape": "a Reshape of a spatial map (C·H·W features, not a pooled vector) before the classifier",
}


def read_ops(bin_, work):
    """The op types modelslim's own error names as read: asked to load a graph of an unknown op."""
    from onnx import TensorProto, helper as h

    g = h.make_graph([h.make_node("NoSuchOp", ["x"], ["y"])], "probe",
                     [h.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 32, 32])],
                     [h.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])])
    path = os.path.join(work, "probe.onnx")
    onnx.save(h.make_model(g, opset_imports=[h.make_opsetid("", 17)]), path)
    photo = os.path.join(work, "probe.png")
    Image.new("RGB", (32, 32)).save(photo)
    r = subprocess.run([bin_, "predict", "--weights", path, "--image", photo], capture_output=True, text=True)
    return set(re.findall(r"\b[A-Z]\w+", r.stderr.split("reads networks of")[-1]))


def summary(work, bin_):
    recs = [json.loads(l) for l in open(os.path.join(work, "records.jsonl"))]
    loaded = {op for r in recs if r.get("ops") and r.get("refusal") is None and not r.get("same_ops") for op in r["ops"]}
    loaded |= read_ops(bin_, work)
    refused = collections.defaultdict(list)
    for r in recs:
        if r.get("refusal"):
            refused[r["family"]].append(r)
    for family, rs in refused.items():
        firsts = {}
        for r in rs:
            m = re.search(r"node '([^']*)' \((\w+)\)", r["refusal"])
            op, where = (m.group(2), f"node `{m.group(1)}`") if m else (r["refusal"], "")
            firsts.setdefault(op, []).append(f"{r['exporter']} {where}".strip())
        extra = sorted({op for r in rs for op in r["ops"] if op not in loaded} - set(firsts))
        line = f"- **{family}**: refused by " + "; ".join(f"{op} ({', '.join(w)})" for op, w in firsts.items())
        why = re.sub(r"^node '[^']*' [(]\w+[)]: ", "", rs[0]["refusal"])
        line += f": “{why}”"
        if extra:
            line += f". Op types in it that neither a file that loads has nor modelslim's list of read ops names: {', '.join(extra)}"
        needs = [f"{o}: {TAKES[o]}" for o in [*firsts, *extra] if o in TAKES]
        if needs:
            line += ". What it takes — " + "; ".join(needs)
        print(line + ".")
    if not refused:
        print("Every exported file loads.")
    same = [r["family"] for r in recs if r.get("same_ops")]
    failed = [f"{r['family']} ({r['export_error']})" for r in recs if r.get("export_error")]
    print(f"\nDynamo files with the TorchScript file's op types, counted (no row): {', '.join(same) or 'none'}.")
    if failed:
        print(f"\nExports that failed: {'; '.join(failed)}.")


if __name__ == "__main__":
    summary(sys.argv[2], sys.argv[3]) if sys.argv[1] == "--summary" else main()
