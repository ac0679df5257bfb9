#!/usr/bin/env bash
# Prints what dropping blocks buys in latency: ResNet18 (seeded weights; latency does not
# depend on their values) whole and with 2 and 3 blocks dropped, timed by `modelslim bench`
# (the CPU backend) and by onnxruntime on the exported ONNX files, with the ratios to the
# whole network. A benchmark: run it when nothing else runs.
#   bash scripts/blocks-latency.sh         RUNS=20 (default) timed runs per measurement
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/setup.sh" >/dev/null
RUNS="${RUNS:-20}"
cargo build --release --quiet
OUT="$(mktemp -d)"
trap 'rm -rf "$OUT"' EXIT
# A copy: a build beside the run must not swap the binary between rows.
BIN="$OUT/modelslim"; cp "$CARGO_TARGET_DIR/release/modelslim" "$BIN"
variants=(
  "whole|"
  "2 blocks dropped (layer3.1, layer4.1)|--drop-blocks layer3.1,layer4.1"
  "3 blocks dropped (layer2.1, layer3.1, layer4.1)|--drop-blocks layer2.1,layer3.1,layer4.1"
)
printf '| ResNet18 | MACs | modelslim (CPU) median | ratio | onnxruntime median | ratio |\n|---|---:|---:|---:|---:|---:|\n'
base_ms=""; base_ort=""
for v in "${variants[@]}"; do
  IFS='|' read -r name flags <<< "$v"
  # shellcheck disable=SC2086
  "$BIN" compress --weights seeded:42 --out "$OUT/m.safetensors" --onnx "$OUT/m.onnx" $flags --json > "$OUT/c.json"
  "$BIN" bench --weights "$OUT/m.safetensors" --backend cpu --runs "$RUNS" > "$OUT/b.txt"
  "$MODELSLIM_PYTHON" - "$OUT/m.onnx" "$RUNS" > "$OUT/o.txt" <<'PY'
import statistics, sys, time
import numpy as np, onnxruntime as ort
s = ort.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
x = np.random.default_rng(0).standard_normal((1, 3, 224, 224), dtype=np.float32)
name = s.get_inputs()[0].name
s.run(None, {name: x})
times = []
for _ in range(int(sys.argv[2])):
    t = time.perf_counter(); s.run(None, {name: x}); times.append((time.perf_counter() - t) * 1e3)
print(statistics.median(times))
PY
  ms="$(sed -n 's/.*median \([0-9.]*\) ms.*/\1/p' "$OUT/b.txt")"
  macs="$(python3 -c "import json, sys; print(json.load(open(sys.argv[1]))['after']['macs'])" "$OUT/c.json")"
  ort_ms="$(cat "$OUT/o.txt")"
  base_ms="${base_ms:-$ms}"; base_ort="${base_ort:-$ort_ms}"
  python3 -c "import sys; n, macs, a, a0, o, o0 = sys.argv[1], int(sys.argv[2]), *map(float, sys.argv[3:]); print(f'| {n} | {macs / 1e6:.0f} M | {a:.1f} ms | {a / a0:.2f} | {o:.1f} ms | {o / o0:.2f} |')" \
    "$name" "$macs" "$ms" "$base_ms" "$ort_ms" "$base_ort"
done
echo
echo "(median of $RUNS runs each, one 224×224 image, $(nproc) cores)"
