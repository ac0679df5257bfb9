#!/usr/bin/env bash
# Writes docs/onnx-models.md: modelslim on real ONNX classifiers that other projects published
# (fetched by scripts/setup.sh, never committed), beside onnxruntime's own `quantize_static` on
# the same file and photos. docorient's MobileNetV2 orientation detector and RapidOCR's
# text-line orientation classifier are scored on their task (each ImageNet validation photo
# upright and turned 180°); calibration uses imagenet-samples photos, both ways up, for every
# tool. The method: scripts/onnx_models.py's header.
#   bash scripts/onnx-models.sh DATA_DIR   DATA_DIR holds imagenet-val/<wnid>/*.JPEG and
#                                          imagenet-samples/*.JPEG (MODELSLIM_DATA works too)
#   SHORT=1 bash scripts/onnx-models.sh   CI's check: the repository's 10 photos scored and 16
#                                          calibrating, one setting each, printed only; fails
#                                          if predict or compress peaks above 3 times the
#                                          ResNet-50 file
# Then the peak memory of predict and compress on a 100 MB ResNet-50 (scripts/onnx_memory.py).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/setup.sh" >/dev/null
source "$ROOT/scripts/doc-header.sh"
DATA="${1:-${MODELSLIM_DATA:-$ROOT/../shared/data}}"
if [[ -n "${SHORT:-}" ]]; then
  SCORED="$ROOT/tests/fixtures/imagenet-subset/val"; CALIB="$ROOT/tests/fixtures/imagenet-subset/calib"
else
  SCORED="$DATA/imagenet-val"; CALIB="$DATA/imagenet-samples"
fi
for d in "$SCORED" "$CALIB"; do
  [ -d "$d" ] || { echo "onnx-models.sh: no $d (pass DATA_DIR)" >&2; exit 1; }
done
DOC="$ROOT/docs/onnx-models.md"
[[ -n "${SHORT:-}" ]] || HEADER="$(doc_header "Real ONNX models" "bash scripts/onnx-models.sh DATA_DIR")"
cargo build --release --quiet
OUT="$(mktemp -d)"
trap 'rm -rf "$OUT"' EXIT
# A copy: a build beside the run must not swap the binary between rows.
BIN="$OUT/modelslim"; cp "$CARGO_TARGET_DIR/release/modelslim" "$BIN"
mkdir -p "$OUT/docorient" "$OUT/rapidocr" "$OUT/lines"
ROWS="$("$MODELSLIM_PYTHON" "$ROOT/scripts/onnx_models.py" "$BIN" "$MODELSLIM_DOCORIENT_ONNX" "$SCORED" "$CALIB" "$OUT/docorient" ${SHORT:+--short})"
echo "$ROWS"
# RapidOCR's classifier: a 48×192 input, (pixel − 0.5) / 0.5 (its own preprocessing's values).
PADDLE="$("$MODELSLIM_PYTHON" "$ROOT/scripts/onnx_models.py" "$BIN" "$MODELSLIM_RAPIDOCR_CLS_ONNX" "$SCORED" "$CALIB" "$OUT/rapidocr" --size 48x192 --mean 0.5,0.5,0.5 --std 0.5,0.5,0.5 ${SHORT:+--short})"
echo "$PADDLE"
# The same classifier on its own task: rendered text lines (scripts/onnx_models.py's header).
LINES="$("$MODELSLIM_PYTHON" "$ROOT/scripts/onnx_models.py" "$BIN" "$MODELSLIM_RAPIDOCR_CLS_ONNX" "$SCORED" "$CALIB" "$OUT/lines" --size 48x192 --mean 0.5,0.5,0.5 --std 0.5,0.5,0.5 --text-lines "${SHORT:+20,8}${SHORT:-1000,128}" ${SHORT:+--short})"
echo "$LINES"
MEMORY="$("$MODELSLIM_PYTHON" "$ROOT/scripts/onnx_memory.py" "$BIN" "$MODELSLIM_ONNX_LIGHT/light_resnet50.onnx" "$ROOT/www/samples" "$OUT" --max-ratio 3 --max-compress-ratio 3)"
echo "$MEMORY"
if [[ -z "${SHORT:-}" ]]; then
  {
    echo "$HEADER"
    echo
    echo "docorient 0.4.1's \`orientation_detector.onnx\` (MIT): torchvision's MobileNetV2 exported by"
    echo "PyTorch at opset 13 with its batch norms folded, one logit (\"the photo is upside down\")."
    echo "Each of the 250 ImageNet validation photos is scored upright and turned 180° (500 inputs,"
    echo "half of each label); 128 other photos (imagenet-samples), both ways up, calibrate every"
    echo "tool. Accuracy is on that task; agreement is the decision's (the logit's sign) with the"
    echo "fp32 file's; KL is between the fp32 and compressed sigmoids. Every file runs in"
    echo "onnxruntime (modelslim's ONNX files compute modelslim's logits exactly). 500 inputs give"
    echo "accuracy a standard error near 2 points."
    echo
    echo "$ROWS"
    echo
    echo "## RapidOCR's text-line orientation classifier"
    echo
    echo "rapidocr-onnxruntime 1.4.4's \`ch_ppocr_mobile_v2.0_cls_infer.onnx\` (Apache-2.0): PaddlePaddle's"
    echo "export at opset 11 of a small MobileNetV3-like network (squeeze-excitation with Paddle's hard"
    echo "sigmoid, hard swish, strides of (2, 1), batch norms kept), two classes (0° and 180°), input"
    echo "48×192 with (pixel − 0.5) / 0.5, given to modelslim as \`--input-size 48x192 --mean"
    echo "0.5,0.5,0.5 --std 0.5,0.5,0.5\`. The same 500 inputs' task, on each photo's centre strip"
    echo "(short side resized to 219, a 48×192 centre crop): it was trained on text lines, not"
    echo "photos, so its accuracy here is low; agreement and KL say what compression changes."
    echo
    echo "$PADDLE"
    echo
    echo "### On text lines, its own task"
    echo
    echo "1,000 rendered text lines (two to six words from ImageNet's class names, sometimes a"
    echo "number, DejaVu fonts of 20–40 pixels, dark on light or light on dark, pixel noise), each"
    echo "upright and turned 180° (2,000 inputs), resized to 48 pixels high and padded to 192 wide as"
    echo "RapidOCR prepares its crops; 128 other lines, from other words, both ways up, calibrate"
    echo "every tool (modelslim reads them with \`--resize 48\`, so a line keeps its width). 2,000"
    echo "inputs give accuracy a standard error near 0.4 points at these scores."
    echo
    echo "$LINES"
    echo
    echo "## A 100 MB ResNet-50"
    echo
    echo "The \`onnx\` package's ResNet-50 test model with its weights written out as seeded random"
    echo "initializers (\`scripts/onnx_memory.py\`): the size of a real ResNet-50 file. Peak resident"
    echo "memory of each command, natively on the CPU backend:"
    echo
    echo "$MEMORY"
  } > "$DOC"
  echo "wrote $DOC"
fi
