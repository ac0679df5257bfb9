"""Write a small classifier that concatenates, splits, shuffles and flattens channels, as
ONNX with seeded random weights: the forms torch writes SqueezeNet's, ShuffleNetV2's,
DenseNet's and VGG's layers in.

usage: make_concat_net.py OUT.onnx [--side S]

stem: conv 3×3/2 + batch norm + ReLU, max pool 3×3/2 with ceil_mode; a fire module (squeeze
conv 1×1 + ReLU, expand 1×1 and expand 3×3 + ReLU, Concat); a ShuffleNetV2 unit (Split in
halves, the second through conv 1×1 + BN + ReLU, depthwise 3×3 + BN, conv 1×1 + BN + ReLU,
Concat with the first, channel shuffle in 2 groups: Reshape, Transpose, Reshape); a dense
layer (batch norm + ReLU + conv 3×3, Concat with its input), a transition (batch norm + ReLU,
conv 1×1, average pool 3×3/2 with pads 1 counting them, as Inception's), a conv in 2 groups
padded by a Pad node (as TensorFlow's converters write it), a batch norm on a Concat; then a
VGG head: max pool 2×2/2, Flatten, Gemm + ReLU, Gemm to 10 classes. The batch dimension is
dynamic; the side is fixed (default 64).
"""
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

out = sys.argv[1]
side = int(sys.argv[sys.argv.index("--side") + 1]) if "--side" in sys.argv else 64
rng = np.random.default_rng(11)
nodes, inits = [], []


def const(name, value, dtype=np.float32):
    inits.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
    return name


def op(kind, ins, name, outs=None, **attrs):
    nodes.append(helper.make_node(kind, ins, outs or [name], name=f"/{name}/{kind}", **attrs))
    return name


def conv(x, name, cin, cout, k, stride=1, group=1, bias=False, pad_node=False):
    w = rng.normal(0, (2.0 / (cin // group * k * k)) ** 0.5, (cout, cin // group, k, k))
    if pad_node:  # as TensorFlow's converters write a conv's padding
        p = k // 2
        x = op("Pad", [x, const(f"{name}.pads", [0, 0, p, p, 0, 0, p, p], np.int64)], f"{name}_pad")
    ins = [x, const(f"{name}.weight", w)]
    if bias:
        ins.append(const(f"{name}.bias", rng.normal(0, 0.1, cout)))
    return op("Conv", ins, name, kernel_shape=[k, k], strides=[stride, stride],
              pads=[0 if pad_node else k // 2] * 4, group=group)


def bn(x, name, c):
    return op("BatchNormalization", [
        x,
        const(f"{name}.weight", rng.uniform(0.5, 1.5, c)),
        const(f"{name}.bias", rng.normal(0, 0.1, c)),
        const(f"{name}.running_mean", rng.normal(0, 0.1, c)),
        const(f"{name}.running_var", rng.uniform(0.5, 1.5, c)),
    ], name, epsilon=1e-5)


relu = lambda x, name: op("Relu", [x], name)  # noqa: E731

h = relu(bn(conv("image", "stem", 3, 16, 3, 2), "stem_bn", 16), "stem_relu")
h = op("MaxPool", [h], "stem_pool", kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1)
# SqueezeNet's fire module.
s = relu(conv(h, "fire.squeeze", 16, 8, 1, bias=True), "fire.squeeze_relu")
e1 = relu(conv(s, "fire.expand1x1", 8, 12, 1, bias=True), "fire.expand1x1_relu")
e3 = relu(conv(s, "fire.expand3x3", 8, 12, 3, bias=True), "fire.expand3x3_relu")
h = op("Concat", [e1, e3], "fire.cat", axis=1)
# ShuffleNetV2's unit: 24 channels in halves.
op("Split", [h, const("unit.split", [12, 12], np.int64)], "unit.split", outs=["unit.x1", "unit.x2"],
   axis=1)
b = relu(bn(conv("unit.x2", "unit.branch2.0", 12, 12, 1), "unit.branch2.1", 12), "unit.branch2.2")
b = bn(conv(b, "unit.branch2.3", 12, 12, 3, group=12), "unit.branch2.4", 12)
b = relu(bn(conv(b, "unit.branch2.5", 12, 12, 1), "unit.branch2.6", 12), "unit.branch2.7")
h = op("Concat", ["unit.x1", b], "unit.cat", axis=1)
hw = (side + 3) // 4
h = op("Reshape", [h, const("shuffle.split_shape", [-1, 2, 12, hw, hw], np.int64)], "shuffle.view")
h = op("Transpose", [h], "shuffle.swap", perm=[0, 2, 1, 3, 4])
h = op("Reshape", [h, const("shuffle.merge_shape", [-1, 24, hw, hw], np.int64)], "shuffle.merge")
# DenseNet's dense layer and transition.
d = conv(relu(bn(h, "dense.norm", 24), "dense.relu"), "dense.conv", 24, 8, 3)
h = op("Concat", [h, d], "dense.cat", axis=1)
h = conv(relu(bn(h, "transition.norm", 32), "transition.relu"), "transition.conv", 32, 16, 1)
h = op("AveragePool", [h], "transition.pool", kernel_shape=[3, 3], strides=[2, 2], pads=[1] * 4,
       count_include_pad=1)
t = relu(conv(h, "tail", 16, 16, 3, group=2, bias=True, pad_node=True), "tail_relu")
h = relu(bn(op("Concat", [h, t], "tail.cat", axis=1), "tail.norm", 32), "tail.norm_relu")
# VGG's head: the map max-pooled 2×2 and flattened, pixels and all.
t = (hw - 1) // 2 + 1
p = (t - 2) // 2 + 1
h = op("MaxPool", [h], "head.pool", kernel_shape=[2, 2], strides=[2, 2])
h = op("Flatten", [h], "head.flat", axis=1)
h = relu(op("Gemm", [h, const("fc1.weight", rng.normal(0, 0.05, (32, 32 * p * p))),
                     const("fc1.bias", rng.normal(0, 0.1, 32))], "fc1", transB=1), "fc1_relu")
nodes.append(helper.make_node("Gemm", [h, const("fc2.weight", rng.normal(0, 0.3, (10, 32))),
                                       const("fc2.bias", rng.normal(0, 0.1, 10))],
                              ["logits"], name="/fc2/Gemm", transB=1))
graph = helper.make_graph(
    nodes, "concat_net",
    [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, side, side])],
    [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])],
    inits)
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="make_concat_net")
model.ir_version = 8
onnx.checker.check_model(model, full_check=True)
onnx.save(model, out)
