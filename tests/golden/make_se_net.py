"""Write a small MobileNetV3-style classifier as ONNX, with seeded random weights: the ops
modelslim reads beyond ResNets and MobileNetV2, in the forms exporters write them.

usage: make_se_net.py OUT.onnx [--gate hardsigmoid|sigmoid] [--side S] [--nhwc] [--dilation D]
                      [--avgpool] [--hidden]

stem: conv 3×3/2 + batch norm + HardSwish (the opset-14 op); a block: conv 1×1 + batch norm +
ReLU, depthwise 3×3 + batch norm + hard swish as Paddle writes it (Add 3, Clip 0..6, Mul,
Div 6), squeeze-excitation (GlobalAveragePool, conv 1×1 + bias, Relu, conv 1×1 + bias, the
gate — HardSigmoid(0.2, 0.5) as Paddle, or Sigmoid — and Mul), conv 1×1 + batch norm, a
residual Add; then conv 1×1 + batch norm, x · sigmoid(x) (SiLU), x · HardSigmoid(x; 1/6, 1/2)
(PyTorch's hard swish before opset 14), GlobalAveragePool, Flatten, Gemm to 10 classes. The
batch dimension is dynamic; the side is fixed (default 96). --nhwc: the input is channels-last,
turned to NCHW by a leading Transpose, as TensorFlow's exporters write it. --dilation D: the
block's depthwise conv and the head's 1×3 conv (which --dilation adds) take dilation D.
--avgpool: after the stem, average pools 3×3 (stride 1, pads 1) and 3×3 (stride 2, ceil_mode),
both leaving the padding out of the mean, as ResNet-D's and Inception's are. --hidden: the
classifier is MobileNetV3's, Gemm to 16, HardSwish of those flat values, Gemm to 10.
"""
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

out = sys.argv[1]
gate = sys.argv[sys.argv.index("--gate") + 1] if "--gate" in sys.argv else "hardsigmoid"
side = int(sys.argv[sys.argv.index("--side") + 1]) if "--side" in sys.argv else 96
dilation = int(sys.argv[sys.argv.index("--dilation") + 1]) if "--dilation" in sys.argv else 1
rng = np.random.default_rng(7)
nodes, inits = [], []


def const(name, value):
    inits.append(numpy_helper.from_array(np.asarray(value, dtype=np.float32), name))
    return name


def conv(x, name, cin, cout, k, stride=1, group=1, bias=False, d=1, kw=None):
    kw = kw or k
    w = rng.normal(0, (2.0 / (cin // group * k * kw)) ** 0.5, (cout, cin // group, k, kw))
    ins = [x, const(f"{name}.weight", w)]
    if bias:
        ins.append(const(f"{name}.bias", rng.normal(0, 0.1, cout)))
    ph, pw = d * (k // 2), d * (kw // 2)
    nodes.append(helper.make_node("Conv", ins, [f"{name}_out"], name=f"/{name}/Conv",
                                  kernel_shape=[k, kw], strides=[stride, stride],
                                  pads=[ph, pw, ph, pw], group=group, dilations=[d, d]))
    return f"{name}_out"


def bn(x, name, c):
    ins = [x] + [const(f"{name}.{p}", v) for p, v in [
        ("weight", rng.uniform(0.5, 1.5, c)), ("bias", rng.normal(0, 0.2, c)),
        ("running_mean", rng.normal(0, 0.2, c)), ("running_var", rng.uniform(0.5, 2.0, c))]]
    nodes.append(helper.make_node("BatchNormalization", ins, [f"{name}_out"], name=f"/{name}/BN",
                                  epsilon=1e-5))
    return f"{name}_out"


def op(kind, ins, name, **attrs):
    nodes.append(helper.make_node(kind, ins, [name], name=f"/{name}/{kind}", **attrs))
    return name


x = "image"
nhwc = "--nhwc" in sys.argv
if nhwc:
    nodes.append(helper.make_node("Transpose", ["image_nhwc"], ["image"], name="to_nchw", perm=[0, 3, 1, 2]))
h = op("HardSwish", [bn(conv(x, "stem", 3, 16, 3, 2), "stem_bn", 16)], "stem_act")
if "--avgpool" in sys.argv:
    h = op("AveragePool", [h], "smooth", kernel_shape=[3, 3], strides=[1, 1], pads=[1, 1, 1, 1],
           count_include_pad=0)
    h = op("AveragePool", [h], "down", kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1,
           count_include_pad=0)
block_in = h
h = op("Relu", [bn(conv(h, "b.expand", 16, 32, 1), "b.expand_bn", 32)], "b.expand_act")
d = bn(conv(h, "b.dw", 32, 32, 3, 1, group=32, d=dilation), "b.dw_bn", 32)
# Paddle's hard swish: x * clip(x + 3, 0, 6) / 6.
t = op("Add", [d, const("three", 3.0)], "b.hs_add")
t = op("Clip", [t, const("zero", 0.0), const("six", 6.0)], "b.hs_clip")
t = op("Mul", [d, t], "b.hs_mul")
d = op("Div", [t, "six"], "b.hs_div")
s = op("GlobalAveragePool", [d], "b.se_pool")
s = op("Relu", [conv(s, "b.se.fc1", 32, 8, 1, bias=True)], "b.se_relu")
s = conv(s, "b.se.fc2", 8, 32, 1, bias=True)
if gate == "sigmoid":
    s = op("Sigmoid", [s], "b.se_gate")
else:
    s = op("HardSigmoid", [s], "b.se_gate", alpha=0.2, beta=0.5)
d = op("Mul", [d, s], "b.se_scale")
h = bn(conv(d, "b.project", 32, 16, 1), "b.project_bn", 16)
h = op("Add", [h, block_in], "b.add")
if dilation > 1:
    h = op("Relu", [conv(h, "b.wide", 16, 16, 1, kw=3, d=dilation, bias=True)], "b.wide_relu")
h = bn(conv(h, "head", 16, 24, 1), "head_bn", 24)
sg = op("Sigmoid", [h], "head_sigmoid")
h = op("Mul", [h, sg], "head_silu")
hs = op("HardSigmoid", [h], "head_hsig", alpha=1.0 / 6.0, beta=0.5)
h = op("Mul", [h, hs], "head_hswish")
h = op("GlobalAveragePool", [h], "pool")
h = op("Flatten", [h], "flat", axis=1)
features = 24
if "--hidden" in sys.argv:
    nodes.append(helper.make_node("Gemm", [h, const("hidden.weight", rng.normal(0, 0.3, (16, 24))),
                                           const("hidden.bias", rng.normal(0, 0.1, 16))],
                                  ["hidden"], name="/hidden/Gemm", transB=1))
    h, features = op("HardSwish", ["hidden"], "hidden_hswish"), 16
nodes.append(helper.make_node("Gemm", [h, const("fc.weight", rng.normal(0, 0.3, (10, features))),
                                       const("fc.bias", rng.normal(0, 0.1, 10))],
                              ["logits"], name="/fc/Gemm", transB=1))
graph = helper.make_graph(
    nodes, "se_net",
    [helper.make_tensor_value_info("image_nhwc", TensorProto.FLOAT, ["N", side, side, 3]) if nhwc
     else helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, side, side])],
    [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])],
    inits)
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)], producer_name="make_se_net")
model.ir_version = 8
onnx.checker.check_model(model, full_check=True)
onnx.save(model, out)
