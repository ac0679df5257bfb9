"""One of the `onnx` package's light test models (ResNet-50, SqueezeNet, ShuffleNet,
DenseNet-121, …) with seeded random weights. Their weights are `ConstantOfShape` nodes
(constants, so every photo gets the same output): those become seeded initializers (He-scaled
convs, batch norms of scale and variance 1, shift and mean 0, per-channel scales of 1, small
random biases, a small classifier). ResNet-50's is the 100 MB file a user would bring. Used by
scripts/onnx_memory.py and the tests.

usage: seeded_light.py LIGHT_MODEL.onnx OUT.onnx [--logits]

--logits: the output is the classifier's logits (the trailing Softmax's input), so that a
comparison sees the network's arithmetic rather than a saturated softmax.
"""
import sys

import numpy as np
import onnx
from onnx import numpy_helper


def write(light, out, logits=False):
    model = onnx.load(light)
    g = model.graph
    rng = np.random.default_rng(0)
    shapes = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    ones = {i for n in g.node if n.op_type == "BatchNormalization" for i in (n.input[1], n.input[4])}
    # Per-channel scales after a batch norm (Caffe's Scale: Unsqueeze, then Mul).
    scaled = {i for n in g.node if n.op_type == "Mul" for i in n.input}
    ones |= {n.input[0] for n in g.node if n.op_type == "Unsqueeze" and n.output[0] in scaled}
    biases = {n.input[2] for n in g.node if n.op_type == "Conv" and len(n.input) > 2}
    kept = []
    for n in g.node:
        if n.op_type != "ConstantOfShape":
            kept.append(n)
            continue
        shape = tuple(int(d) for d in shapes[n.input[0]])
        name = n.output[0]
        if len(shape) == 4:
            fan_in = shape[1] * shape[2] * shape[3]
            v = rng.normal(0, (2.0 / fan_in) ** 0.5, shape)
        elif name in ones:
            v = np.ones(shape)
        elif len(shape) == 2:
            v = rng.normal(0, 0.01, shape)
        elif name in biases:
            v = rng.normal(0, 0.1, shape)
        else:
            v = np.zeros(shape)
        g.initializer.append(numpy_helper.from_array(v.astype(np.float32), name))
    if logits and kept[-1].op_type == "Softmax":
        softmax = kept.pop()
        g.output[0].name = softmax.input[0]
    del g.node[:]
    g.node.extend(kept)
    # Initializers that are not graph inputs need IR version 4 or later (the file has 3).
    model.ir_version = max(model.ir_version, 4)
    onnx.save(model, out)


if __name__ == "__main__":
    write(sys.argv[1], sys.argv[2], "--logits" in sys.argv[3:])
