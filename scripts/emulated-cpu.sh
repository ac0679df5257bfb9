#!/usr/bin/env bash
# Checks on an emulated x86-64 CPU with AVX2 and FMA but no AVX-512 and no VNNI (QEMU user mode,
# `-cpu Haswell`), whatever CPU this machine has. Libraries pick their kernels by the CPU: a
# result that depends on it is a bug here.
#   bash scripts/emulated-cpu.sh          GPTQ's linear algebra and its fixed-layer checksum
#                                         (tests/suite/gptq.rs), then `modelslim compress` with GPTQ
#                                         int4 on EfficientNet-Lite0 with half of every channel
#                                         group pruned (natively: every kind of layer, at
#                                         widths the SIMD kernels split into whole vectors and
#                                         tails, for a quarter of the emulated time), calibrated
#                                         on PHOTOS subset photos (default 2: the layers that
#                                         see many input rows and those that see few), natively
#                                         and emulated: the two files must be identical (about
#                                         3 minutes; CI)
#   PRUNE=0 bash scripts/emulated-cpu.sh  the same on the whole network (about 8 minutes)
#   PHOTOS=16 bash scripts/emulated-cpu.sh   the same on 16 photos
#   ORT=1 bash scripts/emulated-cpu.sh    also ONNX Runtime emulated (modelslim native): the
#                                         ONNX tests that compare the two, the int8 file of
#                                         EfficientNet-Lite0 on the 250 photos among them
#                                         (ONNX Runtime's u8 × s8 kernel saturates on such a
#                                         CPU; about 15 minutes)
#   CPU=Skylake-Client bash scripts/emulated-cpu.sh   another QEMU CPU model
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/setup.sh" >/dev/null
need_apt qemu-user
CPU="${CPU:-Haswell}"
PHOTOS="${PHOTOS:-2}"
PRUNE="${PRUNE:-0.5}"
QEMU="$(command -v qemu-x86_64)"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

# QEMU warns about the CPU features its translator lacks (TSX, x2apic…), none of which a
# program computes with.
emulated() { "$QEMU" -cpu "$CPU" "$@" 2> >(grep -v "TCG doesn't support" >&2); }

step "GPTQ's linear algebra on an emulated $CPU (AVX2, no AVX-512/VNNI)"
cargo build --release --quiet
# The test binary cargo builds for a target (`--test suite`, `--lib`).
binary() {
  cargo test --release --quiet "$@" --no-run --message-format=json 2>/dev/null | python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["profile"]["test"] and m.get("executable"):
        print(m["executable"])
        break'
}
emulated "$(binary --test suite)" gptq::gptq_chooses_the_same_integers_on_every_cpu gptq::one_layer_equals
emulated "$(binary --lib)" compress::linalg

step "GPTQ int4 of EfficientNet-Lite0 ($PRUNE of its channels pruned) on $PHOTOS photos: natively and on the emulated $CPU"
BIN="$CARGO_TARGET_DIR/release/modelslim"
"$BIN" convert --weights "$MODELSLIM_EFFNET_PTH" --out "$TMP/fp32.safetensors" >/dev/null
"$BIN" compress --weights "$TMP/fp32.safetensors" --prune-channels "$PRUNE" --prune-scope all \
  --prune-stem --out "$TMP/pruned.safetensors" >/dev/null
copy_jpegs "$ROOT/tests/fixtures/imagenet-subset/calib" 1 "$PHOTOS" "$TMP/calib"
ARGS=(compress --weights "$TMP/pruned.safetensors" --quant int4 --granularity group:32
  --keep-first-last --quant-method gptq --calibrate "$TMP/calib")
"$BIN" "${ARGS[@]}" --out "$TMP/native.safetensors" >/dev/null
emulated "$BIN" "${ARGS[@]}" --out "$TMP/emulated.safetensors" >/dev/null
native="$(sha256sum <"$TMP/native.safetensors")"; emu="$(sha256sum <"$TMP/emulated.safetensors")"
echo "native   ${native%% *}"
echo "emulated ${emu%% *}"
if [ "$native" != "$emu" ]; then
  echo "GPTQ wrote another file on the emulated $CPU" >&2
  exit 1
fi

if [ -n "${ORT:-}" ]; then
  # The Python that runs ONNX Runtime for the tests, under the emulated CPU.
  cat >"$TMP/python" <<EOF
#!/usr/bin/env bash
exec "$QEMU" -cpu $CPU "$MODELSLIM_PYTHON" "\$@" 2> >(grep -v "TCG doesn't support" >&2)
EOF
  chmod +x "$TMP/python"
  step "the ONNX files in ONNX Runtime on an emulated $CPU"
  MODELSLIM_PYTHON="$TMP/python" cargo test --release --test suite -- onnx::
  MODELSLIM_PYTHON="$TMP/python" cargo test --release --test suite -- \
    efficientnet::int8_weights_and_activations --nocapture
fi
