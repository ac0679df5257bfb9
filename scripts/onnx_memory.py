"""Peak memory of modelslim on a full-size ResNet-50 ONNX file (called by
scripts/onnx-models.sh).

usage: onnx_memory.py MODELSLIM_BIN LIGHT_RESNET50.onnx PHOTO_DIR WORK_DIR [--max-ratio R]
                      [--max-compress-ratio R]

scripts/seeded_light.py writes the `onnx` package's ResNet-50 test model with seeded random
weights: the 100 MB file a user would bring. Then `modelslim predict` and `modelslim compress --quant
int8` run on it, each in a process of its own, and the peak resident memory of each (Linux's
ru_maxrss) is printed beside the file's size, as markdown rows. With --max-ratio, it exits 1
when `predict` peaks above R times the file; with --max-compress-ratio, when `compress` does.
"""
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from seeded_light import write  # noqa: E402

bin_, light, photos, work = sys.argv[1:5]
big = os.path.join(work, "resnet50.onnx")
write(light, big)
size = os.path.getsize(big)
image = sorted(os.path.join(photos, f) for f in os.listdir(photos))[0]


def peak(args):
    """Peak resident memory of one modelslim run, in bytes."""
    pid = os.fork()
    if pid == 0:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 1)
            os.execv(bin_, [bin_, *args])
    _, status, usage = os.wait4(pid, 0)
    if status != 0:
        sys.exit(f"modelslim {' '.join(args)} failed")
    return usage.ru_maxrss * 1024


print("| run | peak memory | × the file |")
print("|---|---:|---:|")
ratios = []
for label, args in [
    ("`predict` (read, check, one photo)", ["predict", "--weights", big, "--image", image]),
    ("`compress --quant int8` (and write the safetensors and ONNX files)",
     ["compress", "--weights", big, "--quant", "int8", "--out", os.path.join(work, "r50.safetensors"),
      "--onnx", os.path.join(work, "r50-int8.onnx")]),
]:
    p = peak(args)
    ratios.append(p / size)
    print(f"| {label} | {p / 1e6:.0f} MB | {p / size:.2f} |")
print(f"\nThe file: {size / 1e6:.1f} MB.")
for name, ratio, flag in [("predict", ratios[0], "--max-ratio"), ("compress", ratios[1], "--max-compress-ratio")]:
    if flag in sys.argv and ratio > float(sys.argv[sys.argv.index(flag) + 1]):
        sys.exit(f"{name} peaked at {ratio:.2f} times the file")
