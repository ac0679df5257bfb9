#!/usr/bin/env bash
# Trunk post-build hook (Trunk.toml): the engine's second module, the one that can train
# (distillation, synthesized images: the `training` feature, Burn's autodiff), built from the
# same crate beside the page's module, which is built without it. The page loads it only when
# the user first asks to recover accuracy or to make calibration images (www/engine.js), so the
# module every visitor downloads stays 0.33 MB (gzipped) smaller.
# Writes modelslim-training.js and modelslim-training_bg.wasm into Trunk's staging directory.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/module-hook.sh"
# The build writes the same file name as the page's module (target/…/modelslim.wasm): Trunk
# has taken that one already, and the next build links it again from its own artifacts.
cargo build --offline --quiet --target wasm32-unknown-unknown --profile "$PROFILE" \
  --no-default-features --features training,webgpu --lib
wasm-bindgen --target web --no-typescript --out-dir "$STAGING" --out-name modelslim-training \
  "$TARGET/wasm32-unknown-unknown/$DIR/modelslim.wasm"
