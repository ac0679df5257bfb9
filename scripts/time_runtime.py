#!/usr/bin/env python3
"""Median milliseconds per image of an ONNX file in onnxruntime, or of a TFLite file in LiteRT,
on one random input of the file's own shape and type (one warm-up run first). It prints the
median last, which is what `modelslim auto --time-with` reads:

    modelslim auto ... --format tflite --time-with "$MODELSLIM_PYTHON scripts/time_runtime.py {file}" --runtime-ms 20

Usage: time_runtime.py FILE [--runs N] [--threads N]. Needs onnxruntime or ai-edge-litert
(scripts/setup.sh installs both into the Python it names as MODELSLIM_PYTHON)."""

import argparse
import statistics
import sys
import time

import numpy as np


def runner(path, threads, rng):
    if path.endswith(".onnx"):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        spec = session.get_inputs()[0]
        shape = [d if isinstance(d, int) else 1 for d in spec.shape]
        feed = {spec.name: rng.standard_normal(shape).astype(np.float32)}
        return lambda: session.run(None, feed)
    if path.endswith(".tflite"):
        from ai_edge_litert.interpreter import Interpreter

        interpreter = Interpreter(model_path=path, num_threads=threads)
        interpreter.allocate_tensors()
        spec = interpreter.get_input_details()[0]
        dtype = np.dtype(spec["dtype"])
        if np.issubdtype(dtype, np.integer):
            info = np.iinfo(dtype)
            x = rng.integers(info.min, info.max, size=spec["shape"], endpoint=True, dtype=dtype)
        else:
            x = rng.standard_normal(spec["shape"]).astype(dtype)

        def run():
            interpreter.set_tensor(spec["index"], x)
            interpreter.invoke()

        return run
    sys.exit(f"{path}: not an .onnx or .tflite file")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("file")
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    if a.runs < 1 or a.threads < 1:
        sys.exit("--runs and --threads are at least 1")
    run = runner(a.file, a.threads, np.random.default_rng(0))
    run()
    times = []
    for _ in range(a.runs):
        t0 = time.perf_counter()
        run()
        times.append((time.perf_counter() - t0) * 1e3)
    print(f"{statistics.median(times):.3f}")


if __name__ == "__main__":
    main()
