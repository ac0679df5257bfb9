#!/usr/bin/env bash
# Fuzz every file parser for longer than CI does, keep what it finds, and print executions per
# second and findings per target (the harness: tests/fuzz.rs).
#   bash scripts/fuzz.sh [MINUTES_PER_TARGET] [TARGET,...]
#   targets: safetensors, export, onnx, pickle, pth-zip, legacy, image (default: all)
# Findings land in fuzz-findings/<target>/ (panics and slow inputs named by kind; an input that
# crashed the process — stack overflow, abort, memory cap — as crash-<time>). Turn each into a
# test in tests/suite/hostile.rs, and copy it to tests/fuzz/corpus/<target>/ to keep fuzzing from it.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/setup.sh" >/dev/null
MINUTES="${1:-10}"
TARGETS="${2:-safetensors,export,onnx,pickle,pth-zip,legacy,image}"
OUT="$ROOT/fuzz-findings"
mkdir -p "$OUT"
cd "$ROOT"
cargo test --release --test fuzz --no-run --quiet
IFS=, read -ra list <<< "$TARGETS"
for t in "${list[@]}"; do
  end=$(( $(date +%s) + MINUTES * 60 ))
  seed=$RANDOM
  # A crash ends the process: keep its input and go on with another seed until time is up.
  while (( $(date +%s) < end )); do
    left=$(( end - $(date +%s) ))
    if FUZZ_SECONDS="$left" FUZZ_TARGETS="$t" FUZZ_SEED="$seed" FUZZ_OUT="$OUT" \
        cargo test --release --quiet --test fuzz -- --nocapture 2>&1 | grep -E '^fuzz |findings|panic|slow'; then
      :
    fi
    if [[ -f "$OUT/$t/current" ]]; then
      kept="$OUT/$t/crash-$(date +%s)"
      mv "$OUT/$t/current" "$kept"
      echo "fuzz $t: the process crashed on $kept"
    else
      break
    fi
    seed=$(( seed + 1 ))
  done
done
echo "findings: $(find "$OUT" -type f | wc -l) file(s) under $OUT"
