"""Run an ONNX file in onnxruntime: the independent engine the Rust tests compare against.

usage: run_onnx.py MODEL.onnx INPUT.f32 OUTPUT.f32 [--no-optimize]

INPUT.f32 holds N×3×224×224 little-endian float32 values; OUTPUT.f32 receives the N×classes
logits. The model is also checked with onnx.checker (full check, shape inference included).
"""
import sys

import numpy as np
import onnx
import onnxruntime as ort

model_path, input_path, output_path = sys.argv[1:4]
onnx.checker.check_model(onnx.load(model_path), full_check=True)
x = np.fromfile(input_path, dtype="<f4").reshape(-1, 3, 224, 224)
opts = ort.SessionOptions()
if "--no-optimize" in sys.argv:
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
session = ort.InferenceSession(model_path, opts, providers=["CPUExecutionProvider"])
(logits,) = session.run(["logits"], {"input": x})
logits.astype("<f4").tofile(output_path)
