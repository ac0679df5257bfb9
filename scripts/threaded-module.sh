#!/usr/bin/env bash
# Trunk post-build hook (Trunk.toml): the engine's threaded module, for pages that are
# cross-origin isolated (www/engine.js chooses it). CPU only (wgpu's browser types cannot be
# shared between threads), with training, and every core: rayon's threads are web workers on
# one shared memory (the `threads` feature, wasm-bindgen-rayon).
# Shared memory needs a std built with atomics, which the stable toolchain ships only as source:
# `-Z build-std` on stable through RUSTC_BOOTSTRAP (rust-src, which scripts/setup.sh adds). The
# linker must be told to share and import the memory, and to export the thread-local storage
# symbols wasm-bindgen's thread glue calls.
# Writes modelslim-threads.js, modelslim-threads_bg.wasm and wasm-bindgen-rayon's worker
# snippet into Trunk's staging directory. Its build has its own target directory: other flags
# than the page's, so the two never rebuild each other's dependencies.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/module-hook.sh"
TARGET="$TARGET/threads"
# 4 GiB: the most a wasm32 memory can hold. A shared memory cannot grow past the maximum it is
# created with; the browser reserves address space for it, not memory.
FLAGS=(
  -C target-feature=+atomics,+bulk-memory,+mutable-globals,+simd128
  -C link-arg=--shared-memory -C link-arg=--import-memory -C link-arg=--max-memory=4294967296
  -C link-arg=--export=__wasm_init_tls -C link-arg=--export=__tls_size
  -C link-arg=--export=__tls_align -C link-arg=--export=__tls_base
)
RUSTC_BOOTSTRAP=1 RUSTFLAGS="${FLAGS[*]}" CARGO_TARGET_DIR="$TARGET" \
  cargo build --offline --quiet --target wasm32-unknown-unknown --profile "$PROFILE" \
  -Z build-std=std,panic_abort --no-default-features --features threads,training --lib
wasm-bindgen --target web --no-typescript --out-dir "$STAGING" --out-name modelslim-threads \
  "$TARGET/wasm32-unknown-unknown/$DIR/modelslim.wasm"
