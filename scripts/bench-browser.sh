#!/usr/bin/env bash
# modelslim against onnxruntime-web in one headless Chromium run (tests/e2e/bench-ort.mjs):
# the fp32 ResNet18 (seeded weights) and EfficientNet-Lite0 (real weights), warm medians of
# modelslim's CPU fallback and WebGPU path against onnxruntime-web's wasm backend (one thread)
# and WebGPU backend, the ratios, and page load → first top-5 on the CPU fallback.
#   bash scripts/bench-browser.sh           (RUNS=10 by default; RUNS=20 for steadier medians)
# A benchmark, not a test: on this shared 2-core machine run it when nothing else runs.
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
need_apt chromium
trunk build --release >/dev/null
if [ ! -d tests/e2e/node_modules/playwright-core ] || [ tests/e2e/package-lock.json -nt tests/e2e/node_modules ]; then
  npm ci --prefix tests/e2e --no-audit --no-fund --silent
fi
RUNS="${RUNS:-10}" npm run --silent bench-ort --prefix tests/e2e
