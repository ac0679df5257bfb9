#!/usr/bin/env bash
# Writes docs/zoo.md: which torchvision classifier families modelslim reads as ONNX, and for
# each file that loads, whether its steps agree with independent engines: fp32 logits with
# onnxruntime, the int8 ONNX export in onnxruntime, 30 % channel pruning with refitting (MACs
# and the pruned ONNX), the full-integer TFLite export in LiteRT. Random weights (nothing is
# downloaded but the Python packages): these rows check loading and exactness, not accuracy.
# The method: scripts/zoo.py's header.
#   bash scripts/zoo.sh                   every family; writes docs/zoo.md (about an hour on 2 cores)
#   SHORT=1 bash scripts/zoo.sh           squeezenet1_1, shufflenet_v2_x1_0, mobilenet_v3_small;
#                                         prints the rows only
#   ZOO_FAMILIES="googlenet inception_v3" bash scripts/zoo.sh   those families; prints the rows only
#   MODELSLIM_BIN=PATH bash scripts/zoo.sh   that binary instead of building one
#   ZOO_TIMEOUT=S                         seconds a family may take (default 1800)
# torch, torchvision and the engines go into their own venv (CACHE/zoo-venv, about 6 GB with
# torch's CUDA libraries, once); the exported files are kept in CACHE/zoo (delete it to export
# again).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/setup.sh" >/dev/null
source "$ROOT/scripts/doc-header.sh"
FAMILIES=(resnet18 resnet50 resnext50_32x4d wide_resnet50_2 mobilenet_v2 mobilenet_v3_small
  mobilenet_v3_large efficientnet_b0 mnasnet1_0 regnet_x_400mf regnet_y_400mf squeezenet1_0
  squeezenet1_1 shufflenet_v2_x1_0 densenet121 googlenet inception_v3 vgg11_bn alexnet convnext_tiny)
[[ -z "${SHORT:-}" ]] || FAMILIES=(squeezenet1_1 shufflenet_v2_x1_0 mobilenet_v3_small)
# shellcheck disable=SC2206
[[ -z "${ZOO_FAMILIES:-}" ]] || { FAMILIES=($ZOO_FAMILIES); SHORT=1; }
DOC="$ROOT/docs/zoo.md"
[[ -n "${SHORT:-}" ]] || HEADER="$(doc_header "torchvision's classifiers" "bash scripts/zoo.sh")"

ZOO_ENV="$CACHE/zoo-venv"
ZOO_REQS="torch==2.15.0 torchvision==0.29.2 onnx==1.23.2 onnxruntime==1.32.0 ai-edge-litert==2.3.0 numpy pillow onnxscript"
if [ "$(cat "$ZOO_ENV/.reqs" 2>/dev/null)" != "$ZOO_REQS" ]; then
  step "installing $ZOO_REQS into $ZOO_ENV (about 6 GB, once)"
  [ -x "$ZOO_ENV/bin/pip" ] || python3 -m venv "$ZOO_ENV"
  # shellcheck disable=SC2086
  "$ZOO_ENV/bin/pip" install --quiet --disable-pip-version-check $ZOO_REQS
  echo "$ZOO_REQS" > "$ZOO_ENV/.reqs"
fi

if [ -z "${MODELSLIM_BIN:-}" ]; then
  cargo build --release --quiet
  MODELSLIM_BIN="$CARGO_TARGET_DIR/release/modelslim"
fi
OUT="$(mktemp -d)"
trap 'rm -rf "$OUT"' EXIT
# A copy: a build beside the run must not swap the binary between rows.
BIN="$OUT/modelslim"; cp -p "$MODELSLIM_BIN" "$BIN"
copy_jpegs "$ROOT/tests/fixtures/imagenet-subset/calib" 1 8 "$OUT/calib"
mkdir -p "$OUT/work"
ROWS="$OUT/rows"; : > "$ROWS"
START="$(date +%s)"
for f in "${FAMILIES[@]}"; do
  t0="$(date +%s)"; rc=0
  timeout "${ZOO_TIMEOUT:-1800}" "$ZOO_ENV/bin/python" "$ROOT/scripts/zoo.py" "$f" "$BIN" "$ROOT/www/samples" \
    "$OUT/calib" "$OUT/work" "$CACHE/zoo" 2>"$OUT/$f.log" | tee -a "$ROWS" || rc=$?
  if ((rc)); then
    why="exit $rc: $(grep -v '^\s*$' "$OUT/$f.log" | sed -n '$p' | cut -c1-100 | tr '|' '/')"
    ((rc != 124)) || why="timed out after ${ZOO_TIMEOUT:-1800} s"
    echo "| $f | (the rest) | — | — | stopped: $why | — | — | — | — | — | $(($(date +%s) - t0)) |" | tee -a "$ROWS"
  fi
  rm -f "$OUT/work/$f"-*
done
MINUTES="$(((($(date +%s) - START) + 30) / 60))"
[[ -z "${SHORT:-}" ]] || exit 0

{
  echo "$HEADER"
  echo
  echo "torchvision's ImageNet classifiers with **random weights** (\`weights=None\` after"
  echo "\`torch.manual_seed(0)\`, eval mode), exported to ONNX by the TorchScript exporter (opset 17)"
  echo "and by the dynamo exporter (opset 18), then given to modelslim as they are. A dynamo file gets"
  echo "a row only where its op types, counted, differ from the TorchScript file's. Random weights"
  echo "make these rows about reading and exactness, not accuracy. The binary: \`$("$BIN" --version)\`"
  echo "(\`${MODELSLIM_BIN/#$HOME/\~}\`, built $(date -u -r "$BIN" '+%Y-%m-%d %H:%M') UTC)."
  echo
  echo "The inputs are the 4 photos of \`www/samples\`, each cropped as torchvision's eval transform"
  echo "does and saved at the input's size (given to modelslim with \`--resize\` of that size, so both"
  echo "sides see the same pixels); the calibrated steps use 8 photos of"
  echo "\`tests/fixtures/imagenet-subset/calib\`. modelslim's own logits come from \`predict --json\`"
  echo "(its \`logits\` field), of the file or of the compressed safetensors. Columns:"
  echo
  echo "- **loads**: \`modelslim predict\` reads the file, or the error it prints (the refusing op)."
  echo "- **fp32 = ORT**: max |Δlogit| between modelslim and onnxruntime, over the logit span."
  echo "- **int8 ONNX = modelslim**: \`compress --quant int8 --act-quant\` (weights and activations),"
  echo "  its ONNX (QDQ) run in onnxruntime against modelslim's logits of the same compressed model:"
  echo "  max |Δ| (and over the span); \"exact\" is 0."
  echo "- **pruned MACs**: \`compress --prune-channels 0.3 --reconstruct\`, before → after from its"
  echo "  \`--json\` report; **pruned ONNX = modelslim**: that model's ONNX in onnxruntime against"
  echo "  modelslim's logits, max |Δ| over the span."
  echo "- **int8 TFLite = LiteRT**: \`export --tflite\` of the int8 model (full integer, float input"
  echo "  and output) run in LiteRT (\`ai_edge_litert\`) against modelslim's int8 logits, max |Δ| over"
  echo "  the span."
  echo "- **s**: seconds of the row's checks (the export excluded: the files are cached)."
  echo
  echo "The dynamo exporter folds each batch norm into its conv and drops the bias where it is all"
  echo "zeros, as random batch norms (mean 0, shift 0) make it: its convs have no bias input, where"
  echo "the TorchScript file's have zeros."
  echo
  echo "| family | exporter | MB | ops | loads | fp32 = ORT | int8 ONNX = modelslim | pruned MACs | pruned ONNX = modelslim | int8 TFLite = LiteRT | s |"
  echo "|---|---|---|---|---|---|---|---|---|---|---|"
  cat "$ROWS"
  echo
  echo "The whole run took $MINUTES minutes."
  echo
  echo "## Not supported"
  echo
  echo "The first node modelslim refuses in each family's files; the op types in them that no file"
  echo "that loads has and that modelslim's list of the ops it reads (its error for an unknown op)"
  echo "does not name, which may refuse next; and what running them would take."
  echo
  "$ZOO_ENV/bin/python" "$ROOT/scripts/zoo.py" --summary "$OUT/work" "$BIN"
} > "$DOC"
echo "wrote $DOC"
