#!/usr/bin/env bash
# Prints the table of automatic compression to a budget (`modelslim auto`) on EfficientNet-Lite0
# with its real ImageNet weights: searched on the 250 `imagenet-samples` photos without their
# labels (50 of them held out to measure the candidates on), scored by `modelslim eval
# --reference` on the 250 `imagenet-val` photos against fp32; beside it, the hand-made rows
# that fit the same budgets, compressed on the same photos.
#   bash scripts/auto.sh [DATA_DIR]        DATA_DIR holds imagenet-val/ and imagenet-samples/
#   ONLY=MB bash scripts/auto.sh           only the rows whose name contains the word
#   FLOOR=0.9 bash scripts/auto.sh         the agreement floor (--min-agreement; default 0.8)
#   DOC=1 bash scripts/auto.sh DATA_DIR    also writes docs/auto.md
#   SHORT=1 bash scripts/auto.sh           CI's check: a 3.5 MB search on the repository's 16
#                                          calibration photos, scored on its 10 labelled ones;
#                                          exits 1 if the file is over the budget or the kept
#                                          candidate is not the least KL within it
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/setup.sh" >/dev/null
source "$ROOT/scripts/doc-header.sh"
DATA="${1:-${MODELSLIM_DATA:-$ROOT/../shared/data}}"
FLOOR="${FLOOR:-0.8}"
HEADER="$(doc_header "Compression to a budget" "DOC=1 bash scripts/auto.sh DATA_DIR")"
START=$SECONDS
cargo build --release --quiet
W="$MODELSLIM_EFFNET_PTH"
OUT="$(mktemp -d)"
trap 'rm -rf "$OUT"' EXIT
# A copy: a build beside the run must not swap the binary between rows.
BIN="$OUT/modelslim"; cp "$CARGO_TARGET_DIR/release/modelslim" "$BIN"

# One row: NAME FLAGS SCORED_DIR; a row with --budget-* runs `auto`, else `compress`.
row() {
  local name="$1" flags="$2" scored="$3" t=$SECONDS kind=compress
  [[ "$flags" == *--budget-* ]] && kind=auto
  # shellcheck disable=SC2086
  "$BIN" $kind --weights "$W" --out "$OUT/m.safetensors" --onnx "$OUT/m.onnx" $flags --json > "$OUT/c.json"
  "$BIN" eval --weights "$OUT/m.safetensors" --reference "$W" --images "$scored" --json > "$OUT/e.json"
  python3 - "$name" "$kind" "$(( SECONDS - t ))" "$OUT/c.json" "$OUT/e.json" "$OUT/m.onnx" <<'PY'
import json, os, sys
name, kind, seconds = sys.argv[1], sys.argv[2], int(sys.argv[3])
c, e = json.load(open(sys.argv[4])), json.load(open(sys.argv[5]))
size = os.path.getsize(sys.argv[6])
if kind == "auto":
    k = c["candidates"][c["chosen"]]
    assert k["bytes"] == size, (k["bytes"], size)
    held = f"{k['agreement']:.3f} ({c['held_out_images']})"
    kept = f"{k['label']} ({c['chosen'] + 1} of {len(c['candidates'])})"
    search = f"{c['seconds']:.0f}"
    macs = k["macs"]
else:
    held, kept, search, macs = "–", "–", "–", c["after"]["macs"]
print(f"| {name} | {size / 1e6:.2f} MB | {macs / 1e6:.0f} M | {e['top1']:.3f} | {e['top5']:.3f} "
      f"| {e['agreement']:.3f} | {e['kl']:.4f} | {held} | {kept} | {search} | {seconds} |")
PY
}

if [[ -n "${SHORT:-}" ]]; then
  copy_jpegs "$ROOT/tests/fixtures/imagenet-subset/calib" 1 '$' "$OUT/photos"
  "$BIN" auto --weights "$W" --calibrate "$OUT/photos" --budget-bytes 3500000 \
    --out "$OUT/m.safetensors" --onnx "$OUT/m.onnx" --json > "$OUT/a.json"
  "$BIN" eval --weights "$OUT/m.safetensors" --reference "$W" \
    --images "$ROOT/tests/fixtures/imagenet-subset/val" --json > "$OUT/e.json"
  python3 - "$OUT/a.json" "$OUT/e.json" "$OUT/m.onnx" <<'PY'
import json, os, sys
a, e = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
size = os.path.getsize(sys.argv[3])
k = a["candidates"][a["chosen"]]
fits = [c for c in a["candidates"] if c["fits"]]
print(f"auto, 3.5 MB on 16 photos ({a['held_out_images']} held out), {len(a['candidates'])} candidates in "
      f"{a['seconds']:.0f} s: kept '{k['label']}', {size} bytes; held-out agreement {k['agreement']:.3f}, "
      f"KL {k['kl']:.4f}; on the 10 labelled photos: agreement {e['agreement']:.3f}, KL {e['kl']:.4f}")
ok = size == k["bytes"] and size <= 3_500_000 and k["kl"] == min(c["kl"] for c in fits)
sys.exit(0 if ok else 1)
PY
  exit
fi

for d in imagenet-val imagenet-samples; do
  [ -d "$DATA/$d" ] || { echo "auto.sh: no $DATA/$d (pass DATA_DIR)" >&2; exit 1; }
done
copy_jpegs "$DATA/imagenet-samples" 1 '$' "$OUT/samples"
# The hand-made rows fit on the same 200 photos the search fits on: all but the 50 it holds out
# (every fifth photo, as `auto` spreads them).
i=0
mkdir -p "$OUT/fit"
for f in $(find "$OUT/samples" -name '*.JPEG' | sort); do
  i=$(( i + 1 )); (( i % 5 == 0 )) || cp "$f" "$OUT/fit/"
done
A="--calibrate $OUT/samples --held-out 50 --min-agreement $FLOOR"
C="--calibrate $OUT/fit"
DW=""
for i in $(seq 0 15); do DW="$DW --layer-quant _blocks.$i._depthwise_conv=int8"; done
VAL="$DATA/imagenet-val"
# name | flags
rows=(
  "3.5 MB: auto|--budget-bytes 3500000 $A"
  "3.5 MB: int4 per channel, first/last int8, GPTQ|--quant int4 --keep-first-last --quant-method gptq $C"
  "3.5 MB: int4 per channel, first/last and depthwise int8, GPTQ|--quant int4 --keep-first-last $DW --quant-method gptq $C"
  "4.5 MB: auto|--budget-bytes 4500000 $A"
  "6 MB: auto|--budget-bytes 6000000 $A"
  "6 MB: int4 groups of 32, first/last int8, GPTQ|--quant int4 --granularity group:32 --keep-first-last --quant-method gptq $C"
  "6 MB: int8 per channel, bias correction|--quant int8 --bias-correction $C"
  "70 % of the MACs: auto|--budget-macs 0.7 $A"
  "70 % of the MACs: channels and blocks by measured loss, refit|--target-macs 0.7 --round-to 8 --importance output --reconstruct $C"
)
TABLE="$OUT/table.md"
{
  printf '| budget: method | ONNX | MACs | top-1 | top-5 | agreement with fp32 | mean KL | held-out agreement (photos) | kept candidate | search s | row s |\n'
  printf '|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|\n'
} | tee "$TABLE"
for r in "${rows[@]}"; do
  IFS='|' read -r name flags <<< "$r"
  [[ -z "${ONLY:-}" || "$name" == *"$ONLY"* ]] || continue
  row "$name" "$flags" "$VAL" | tee -a "$TABLE"
done
NVAL=$(find "$VAL" -name '*.JPEG' | wc -l)
echo
echo "($NVAL ImageNet validation photos, 1000-way; floor $FLOOR; $(( (SECONDS - START + 59) / 60 )) min)"
[[ -n "${DOC:-}" && -z "${ONLY:-}" ]] || exit 0
{
  printf '%s\n\n' "$HEADER"
  cat <<EOF
EfficientNet-Lite0 with its real ImageNet weights. \`auto\` rows: \`modelslim auto\` searched on
the 250 \`imagenet-samples\` photos (their labels unused), 50 of them (every fifth) held out of
every fitting step to measure the candidates on, with an agreement floor of $FLOOR on them.
The other rows: \`modelslim compress\` fitted on the 200 photos the search fitted on. Every row
is scored by \`modelslim eval --reference\` on the $NVAL \`imagenet-val\` photos against fp32
(top-1 0.708). "held-out agreement" is the search's own measure, on its 50 held-out photos;
"agreement with fp32" is the same measure on the scored photos — how well the floor carries
over. "search s" is the search alone, "row s" the whole row with the scoring, on this machine.

See [compression.md](compression.md#compression-to-a-budget) for the method.

EOF
  cat "$TABLE"
} > "$ROOT/docs/auto.md"
echo "wrote docs/auto.md"
