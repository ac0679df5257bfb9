"""Run an ONNX file in onnxruntime: the independent engine the Rust tests compare against.

usage: run_onnx.py MODEL.onnx INPUT.f32 OUTPUT.f32 [--no-optimize] [--side N|HxW] [--nhwc]

INPUT.f32 holds N×3×H×W little-endian float32 values (--side, 224×224 by default); OUTPUT.f32
receives the N×classes values of the model's `logits` output (else its first output). The model
is also checked with onnx.checker (full check, shape inference included).
"""
import sys

import numpy as np
import onnx
import onnxruntime as ort

model_path, input_path, output_path = sys.argv[1:4]
side = sys.argv[sys.argv.index("--side") + 1] if "--side" in sys.argv else "224"
height, width = (int(v) for v in (side.split("x") * 2)[:2])
onnx.checker.check_model(onnx.load(model_path), full_check=True)
x = np.fromfile(input_path, dtype="<f4").reshape(-1, 3, height, width)
if "--nhwc" in sys.argv:
    # A channels-last file is given the same images channels last.
    x = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
opts = ort.SessionOptions()
if "--no-optimize" in sys.argv:
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
session = ort.InferenceSession(model_path, opts, providers=["CPUExecutionProvider"])
outputs = [o.name for o in session.get_outputs()]
output = "logits" if "logits" in outputs else outputs[0]
inp = session.get_inputs()[0]
# A file that fixes its batch at 1 runs one image at a time.
batch = 1 if inp.shape[0] == 1 else len(x)
logits = np.concatenate(
    [session.run([output], {inp.name: x[i : i + batch]})[0] for i in range(0, len(x), batch)]
)
logits.astype("<f4").reshape(len(x), -1).tofile(output_path)
