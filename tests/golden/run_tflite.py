"""Run a TFLite file in LiteRT's interpreter: the independent engine the TFLite export is checked
against. The file is also read back with the `tflite` package's own schema reader, and every
operator's name is printed to stderr.

usage: run_tflite.py MODEL.tflite INPUT.f32 OUTPUT.f32

INPUT.f32 holds N×3×224×224 little-endian float32 values (modelslim's NCHW layout; each image is
transposed to the file's NHWC input); OUTPUT.f32 receives the N×classes logits.
"""
import sys

import numpy as np
import tflite
from ai_edge_litert.interpreter import Interpreter

model_path, input_path, output_path = sys.argv[1:4]
buf = open(model_path, "rb").read()
parsed = tflite.Model.GetRootAsModel(buf, 0)
codes = {v: k for k, v in tflite.BuiltinOperator.__dict__.items() if not k.startswith("_")}
graph = parsed.Subgraphs(0)
ops = [codes[parsed.OperatorCodes(graph.Operators(i).OpcodeIndex()).BuiltinCode()]
       for i in range(graph.OperatorsLength())]
print("operators:", " ".join(sorted(set(ops))), file=sys.stderr)

x = np.fromfile(input_path, dtype="<f4").reshape(-1, 3, 224, 224).transpose(0, 2, 3, 1)
interpreter = Interpreter(model_content=buf)
interpreter.allocate_tensors()
(inp,) = interpreter.get_input_details()
(out,) = interpreter.get_output_details()
logits = []
for image in x:
    interpreter.set_tensor(inp["index"], np.ascontiguousarray(image[None]))
    interpreter.invoke()
    logits.append(interpreter.get_tensor(out["index"])[0].copy())
np.stack(logits).astype("<f4").tofile(output_path)
