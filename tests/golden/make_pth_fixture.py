#!/usr/bin/env python3
"""Write tests/fixtures/tiny_state_dict.pth: a torch.save zip checkpoint, without torch.

torch.save(obj, f) pickles (protocol 2) with a persistent_id hook that turns every storage
into ('storage', <torch.XxxStorage>, key, location, numel), reduces every tensor to
torch._utils._rebuild_tensor_v2(storage, offset, size, stride, requires_grad, OrderedDict()),
and zips data.pkl with data/<key> (raw little-endian storage bytes). This script does the same
with stand-in `torch` modules, so the fixture needs no PyTorch install.

    python3 tests/golden/make_pth_fixture.py

Contents: "a.weight" float32 [2,3] = arange(6); "b.weight" float32 [3,2], a transposed
(non-contiguous) view of a's storage; "bn.num_batches_tracked" int64 scalar 7;
"h.weight" float16 [2] = [0.5, -2].
"""
import collections
import io
import os
import pickle
import struct
import sys
import types
import zipfile

torch = types.ModuleType("torch")
utils = types.ModuleType("torch._utils")


class FloatStorage:  # stand-ins: only their module and name go into the pickle
    pass


class LongStorage:
    pass


class HalfStorage:
    pass


def _rebuild_tensor_v2(*args):
    raise NotImplementedError


for cls in (FloatStorage, LongStorage, HalfStorage):
    cls.__module__ = "torch"
    setattr(torch, cls.__name__, cls)
_rebuild_tensor_v2.__module__ = "torch._utils"
utils._rebuild_tensor_v2 = _rebuild_tensor_v2
torch._utils = utils
sys.modules["torch"] = torch
sys.modules["torch._utils"] = utils


class Storage:
    def __init__(self, key, cls, data):
        self.key, self.cls, self.data = key, cls, data


class Tensor:
    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride

    def __reduce__(self):
        return (_rebuild_tensor_v2,
                (self.storage, self.offset, self.size, self.stride, False, collections.OrderedDict()))


class TorchPickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, Storage):
            return ("storage", obj.cls, obj.key, "cpu", len(obj.data))
        return None


def main():
    a = Storage("0", FloatStorage, [float(i) for i in range(6)])
    n = Storage("1", LongStorage, [7])
    h = Storage("2", HalfStorage, [0.5, -2.0])
    sd = collections.OrderedDict()
    sd["a.weight"] = Tensor(a, 0, (2, 3), (3, 1))
    sd["b.weight"] = Tensor(a, 0, (3, 2), (1, 3))
    sd["bn.num_batches_tracked"] = Tensor(n, 0, (), ())
    sd["h.weight"] = Tensor(h, 0, (2,), (1,))
    buf = io.BytesIO()
    TorchPickler(buf, protocol=2).dump(sd)
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "tiny_state_dict.pth")
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as z:
        z.writestr("tiny/data.pkl", buf.getvalue())
        z.writestr("tiny/data/0", struct.pack("<6f", *a.data))
        z.writestr("tiny/data/1", struct.pack("<q", 7))
        z.writestr("tiny/data/2", struct.pack("<2e", *h.data))
        z.writestr("tiny/version", "3\n")
    print("wrote", os.path.normpath(out))


if __name__ == "__main__":
    main()
