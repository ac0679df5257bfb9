#!/usr/bin/env python3
"""The page's three engine modules in a built site, gzipped as a static host would serve them, and
the budget the first one must keep (≤ 3.6 MB gzip: what every visitor downloads
before the first prediction; 3.5 MB until the page read users' ONNX networks, whose reader,
graph storage and ops added 0.08 MB). Exits 1 over budget, or when the modules got mixed up: the page's
must not have training in it (the point of building it without), the training module must, and
only the threaded module (CPU only, with training) may start threads.

    python3 scripts/module-sizes.py [DIST]      (dist/ by default; run after trunk build)
"""
import glob
import gzip
import os
import sys

BUDGET = 3.6e6  # bytes, gzip -9


def gz(path):
    return len(gzip.compress(open(path, "rb").read(), 9))


def main():
    dist = sys.argv[1] if len(sys.argv) > 1 else "dist"
    others = {"training": "modelslim-training_bg.wasm", "threaded": "modelslim-threads_bg.wasm"}
    page = [p for p in glob.glob(os.path.join(dist, "modelslim-*_bg.wasm")) if os.path.basename(p) not in others.values()]
    paths = {name: os.path.join(dist, file) for name, file in others.items()}
    if len(page) != 1 or not all(os.path.exists(p) for p in paths.values()):
        sys.exit(f"module-sizes: expected one page module, {' and '.join(others.values())} in {dist}")
    sizes = {"page": (page[0], gz(page[0]))} | {name: (p, gz(p)) for name, p in paths.items()}
    for name, (path, z) in sizes.items():
        print(f"{name} module: {os.path.getsize(path) / 1e6:.2f} MB raw, {z / 1e6:.2f} MB gzip ({os.path.basename(path)})")
    ok = True
    if sizes["page"][1] > BUDGET:
        print(f"module-sizes: the page's module is over its budget of {BUDGET / 1e6} MB gzip")
        ok = False
    # The bindings name the module's exports: `distill` only where training was built in.
    bindings = {name: open(path.replace("_bg.wasm", ".js")).read() for name, (path, _) in sizes.items()}
    if "engine_distill" in bindings["page"]:
        print("module-sizes: the page's module has training in it (built with the training feature?)")
        ok = False
    for name in ("training", "threaded"):
        if "engine_distill" not in bindings[name]:
            print(f"module-sizes: the {name} module has no distillation in it")
            ok = False
    for name, js in bindings.items():
        if ("export function initThreadPool" in js) != (name == "threaded"):
            print(f"module-sizes: initThreadPool is {'missing from' if name == 'threaded' else 'in'} the {name} module")
            ok = False
    sys.exit(0 if ok else 1)


main()
