#!/usr/bin/env bash
# Prints the preset table of docs/performance.md (scripts/performance.sh runs it): every preset
# compressed with `modelslim compress --json` (ONNX and safetensors written for real, sizes
# measured on the files), the whole CLI run's time included.
#   bash scripts/presets.sh [WEIGHTS] [CALIBRATION_DIR]
#   ONLY=act bash scripts/presets.sh   only the rows whose name contains the word
# WEIGHTS defaults to seeded:42 (torchvision's ResNet18 layout, random weights: sizes and
# MACs are real, agreement on random weights says little: docs/accuracy.md has real weights).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${MODELSLIM_CACHE:-$HOME/.cache/modelslim}/target}"
WEIGHTS="${1:-seeded:42}"
CALIB="${2:-$ROOT/www/samples}"
cargo build --release --quiet --manifest-path "$ROOT/Cargo.toml"
BIN="$CARGO_TARGET_DIR/release/modelslim"
OUT="$(mktemp -d)"
trap 'rm -rf "$OUT"' EXIT

presets=(
  "fp32|"
  "fp16|--quant fp16"
  "int8 weights|--quant int8"
  "int8 weights, per-tensor|--quant int8 --granularity tensor"
  "int8 weights + activations|--quant int8 --act-quant --calibrate $CALIB"
  "int4 per-channel|--quant int4"
  "int4 group:32, first/last int8|--quant int4 --granularity group:32 --keep-first-last"
  "30 % channels|--prune-channels 0.3 --round-to 8"
  "30 % channels + int8|--prune-channels 0.3 --round-to 8 --quant int8"
  "50 % channels + int8 + act.|--prune-channels 0.5 --round-to 8 --quant int8 --act-quant --calibrate $CALIB"
  "50 % sparsity (3 steps)|--sparsity 0.5 --steps 3"
)
printf '| preset | params | MACs | ONNX bytes | ONNX gzip | vs fp32 ONNX | safetensors | time |\n'
printf '|---|---:|---:|---:|---:|---:|---:|---:|\n'
for p in "${presets[@]}"; do
  name="${p%%|*}"; flags="${p#*|}"
  [[ -z "${ONLY:-}" || "$name" == *"$ONLY"* ]] || continue
  # shellcheck disable=SC2086
  "$BIN" compress --weights "$WEIGHTS" --out "$OUT/m.safetensors" --onnx "$OUT/m.onnx" $flags --json > "$OUT/r.json"
  python3 - "$name" "$OUT/r.json" <<'PY'
import json, sys
name, path = sys.argv[1], sys.argv[2]
r = json.load(open(path))
a, b = r["after"], r["before"]
mb = lambda n: f"{n / 1e6:.1f} MB"
print(f"| {name} | {a['params']:,} | {a['macs'] / 1e9:.3f} G | {mb(a['bytes']['onnx']['raw'])} "
      f"| {mb(a['bytes']['onnx']['gzip'])} | {a['bytes']['onnx']['raw'] / b['bytes']['onnx']['raw']:.3f} "
      f"| {mb(a['bytes']['safetensors']['raw'])} | {r['seconds']:.1f} s |")
PY
done
