"""Run a TFLite file in LiteRT's interpreter: the independent engine the TFLite export is checked
against. The file is also read back with the `tflite` package's own schema reader, and every
operator's name is printed to stderr.

usage: run_tflite.py MODEL.tflite INPUT.f32 OUTPUT.f32 [--full-integer] [--micro]

INPUT.f32 holds N×3×H×W little-endian float32 values (H×W the file's input size; modelslim's
NCHW layout: each image is transposed to the file's NHWC input); OUTPUT.f32 receives the N×classes logits. An int8 input is
fed the images quantized with the file's own scale and zero point (rounding half to even, as
modelslim does); int8 logits are dequantized with the file's.

--full-integer: fail unless every CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED reads an int8
input and int8 weights, adds an int32 bias and writes int8, and every other operator between the
file's QUANTIZE and DEQUANTIZE computes on int8 too.

--micro: run the file in TensorFlow Lite Micro's interpreter (its reference kernels, what a
microcontroller runs) instead of LiteRT's.
"""
import sys

import numpy as np
import tflite
from ai_edge_litert.interpreter import Interpreter

model_path, input_path, output_path = sys.argv[1:4]
full_integer = "--full-integer" in sys.argv[4:]
buf = open(model_path, "rb").read()
parsed = tflite.Model.GetRootAsModel(buf, 0)
codes = {v: k for k, v in tflite.BuiltinOperator.__dict__.items() if not k.startswith("_")}
types = {v: k for k, v in tflite.TensorType.__dict__.items() if not k.startswith("_")}
graph = parsed.Subgraphs(0)
ops = []
for i in range(graph.OperatorsLength()):
    op = graph.Operators(i)
    name = codes[parsed.OperatorCodes(op.OpcodeIndex()).BuiltinCode()]
    ops.append(name)
    if not full_integer or name in ("QUANTIZE", "DEQUANTIZE"):
        continue
    ins = [types[graph.Tensors(op.Inputs(j)).Type()] for j in range(op.InputsLength())]
    outs = [types[graph.Tensors(op.Outputs(j)).Type()] for j in range(op.OutputsLength())]
    if name in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
        want = ["INT8", "INT8", "INT32"]
    elif name in ("PAD", "MEAN", "RESHAPE", "TRANSPOSE"):
        want = ["INT8", "INT32"]
    elif name == "STRIDED_SLICE":
        want = ["INT8", "INT32", "INT32", "INT32"]
    else:
        want = ["INT8"] * len(ins)
    if ins != want or outs != ["INT8"]:
        sys.exit(f"operator {i} ({name}) is not integer: {ins} -> {outs}")
print("operators:", " ".join(sorted(set(ops))), file=sys.stderr)

_, height, width, _ = graph.Tensors(graph.Inputs(0)).ShapeAsNumpy()
x = np.fromfile(input_path, dtype="<f4").reshape(-1, 3, height, width).transpose(0, 2, 3, 1)
if "--micro" in sys.argv[4:]:
    from tflite_micro.python.tflite_micro import runtime

    interpreter = runtime.Interpreter.from_bytes(buf, arena_size=256 << 20)
    inp, out = interpreter.get_input_details(0), interpreter.get_output_details(0)

    def run(image):
        interpreter.set_input(image, 0)
        interpreter.invoke()
        return interpreter.get_output(0)[0].copy()
else:
    interpreter = Interpreter(model_content=buf)
    interpreter.allocate_tensors()
    (inp,) = interpreter.get_input_details()
    (out,) = interpreter.get_output_details()

    def run(image):
        interpreter.set_tensor(inp["index"], image)
        interpreter.invoke()
        return interpreter.get_tensor(out["index"])[0].copy()
if inp["dtype"] == np.int8:
    scale, zero = inp["quantization_parameters"]["scales"][0], inp["quantization_parameters"]["zero_points"][0]
    x = np.clip(np.round(x / np.float32(scale)) + zero, -128, 127).astype(np.int8)
logits = np.stack([run(np.ascontiguousarray(image[None])) for image in x])
if out["dtype"] == np.int8:
    scale, zero = out["quantization_parameters"]["scales"][0], out["quantization_parameters"]["zero_points"][0]
    logits = (logits.astype(np.float32) - zero) * np.float32(scale)
logits.astype("<f4").tofile(output_path)
