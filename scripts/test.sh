#!/usr/bin/env bash
# Installs what is missing and runs every check: format, lints, native tests (CPU and wgpu on
# Vulkan/lavapipe), the wasm build, and the page in headless Chromium (WebGPU and CPU fallback).
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
trap step_minutes EXIT

# Chromium for the page test, lavapipe (Mesa's CPU Vulkan) for Burn's native wgpu backend.
need_apt chromium mesa-vulkan-drivers libvulkan1 ca-certificates

step "cargo fmt --check"
cargo fmt --check

# Build first: clippy then reuses the compiled dependencies instead of checking them again.
step "cargo build --release (CLI and test binaries)"
cargo test --release --no-run

step "cargo clippy --all-targets -- -D warnings"
cargo clippy --release --all-targets --quiet -- -D warnings

step "cargo test --release"
cargo test --release

step "GPTQ on an emulated AVX2-only CPU writes the same file as on this one"
bash scripts/emulated-cpu.sh

step "distillation on real EfficientNet-Lite0 weights: short runs (int4, pruned channels) must lower the loss and raise agreement"
SHORT=1 bash scripts/distill.sh

step "compression to a budget on real EfficientNet-Lite0 weights: a 3.5 MB search on the repository's photos stays within the budget"
SHORT=1 bash scripts/auto.sh

step "real ONNX models: docorient's MobileNetV2 in int8 beside onnxruntime's quantizer on the repository's photos; peak memory on a 100 MB ResNet-50 (at most 3 times the file to predict and to compress)"
SHORT=1 bash scripts/onnx-models.sh

step "trunk build --release (the page, dist/, and the training and threaded modules beside it)"
trunk build --release
python3 scripts/module-sizes.py dist

# The threaded module's own lines (the thread pool) need a std built with atomics; its CPU-only
# code with training is checked here, its parallel paths natively.
step "cargo clippy for the browser build (wasm32: the page's module, and the CPU-only code with training) -- -D warnings"
cargo clippy --target wasm32-unknown-unknown --no-default-features --features webgpu --profile wasm-release --quiet -- -D warnings
cargo clippy --target wasm32-unknown-unknown --no-default-features --features training --profile wasm-release --quiet -- -D warnings

step "page end-to-end tests in headless Chromium"
if [ ! -d tests/e2e/node_modules/playwright-core ] || [ tests/e2e/package-lock.json -nt tests/e2e/node_modules ]; then
  npm ci --prefix tests/e2e --no-audit --no-fund --silent
fi
MODELSLIM_BIN="$CARGO_TARGET_DIR/release/modelslim" npm test --prefix tests/e2e
