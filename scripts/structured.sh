#!/usr/bin/env bash
# Prints the table of faster models (structured compression) on EfficientNet-Lite0 with its
# real ImageNet weights: uniform channel pruning, block dropping alone, per-group budgets from
# measured loss for a MAC target (channels and blocks), and distillation of a network with
# blocks dropped. Everything is fitted on `imagenet-samples` photos without their labels (the
# first 200; the block choices measure on the first 64 of them, distillation trains on the
# other 136), scored by `modelslim eval --reference` on the `imagenet-val` photos against fp32,
# and on the 50 samples not used.
#   bash scripts/structured.sh DATA_DIR     DATA_DIR holds imagenet-val/ and imagenet-samples/
#   ONLY=blocks bash scripts/structured.sh   only the rows whose name contains the word
#   DOC=1 bash scripts/structured.sh         also writes docs/structured.md
#   STEPS=100 BATCH=16 bash scripts/structured.sh   the distillation runs (defaults shown)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/setup.sh" >/dev/null
source "$ROOT/scripts/doc-header.sh"
DATA="${1:-${MODELSLIM_DATA:-$ROOT/../shared/data}}"
for d in imagenet-val imagenet-samples; do
  [ -d "$DATA/$d" ] || { echo "structured.sh: no $DATA/$d (pass DATA_DIR)" >&2; exit 1; }
done
STEPS="${STEPS:-100}"; BATCH="${BATCH:-16}"
# Before anything changes: "-dirty" then means the code measured was not the commit named.
HEADER="$(doc_header "Faster models: block dropping and measured budgets" "DOC=1 bash scripts/structured.sh DATA_DIR")"
START=$SECONDS
cargo build --release --quiet
W="$MODELSLIM_EFFNET_PTH"
OUT="$(mktemp -d)"
trap 'rm -rf "$OUT"' EXIT
# A copy: a build beside the run must not swap the binary between rows.
BIN="$OUT/modelslim"; cp "$CARGO_TARGET_DIR/release/modelslim" "$BIN"
copy_jpegs "$DATA/imagenet-samples" 1 200 "$OUT/calib200"
copy_jpegs "$DATA/imagenet-samples" 65 200 "$OUT/train136"
copy_jpegs "$DATA/imagenet-samples" 201 '$' "$OUT/held-out"
C="--calibrate $OUT/calib200"
REFIT="--round-to 8 --importance output --reconstruct $C"
# Block choices read the first 64 photos only; a dropped network is distilled on the next
# 136, so the photos distillation keeps its best step by were never fitted on.

# name | compress flags | distill flags (empty: not distilled; "defaults": no flag)
rows=(
  "fp32||"
  "30 % channels inside blocks, refit (uniform)|--prune-channels 0.3 --prune-scope internal $REFIT|"
  "blocks: 1 dropped|--drop-blocks 1 $C|"
  "blocks: 2 dropped|--drop-blocks 2 $C|"
  "blocks: 3 dropped|--drop-blocks 3 $C|"
  "blocks: 4 dropped|--drop-blocks 4 $C|"
  "blocks: 5 dropped|--drop-blocks 5 $C|"
  "blocks: 5 dropped, distilled (defaults)|--drop-blocks 5 $C|defaults"
  "blocks: 5 dropped, distilled, frozen head + head features|--drop-blocks 5 $C|--freeze-head --head-features 1"
  "budget: 75 % of the MACs, channels and blocks, refit|--target-macs 0.75 $REFIT|"
  "budget: 60 % of the MACs, channels and blocks, refit|--target-macs 0.6 $REFIT|"
)
TABLE="$OUT/table.md"
{
  printf '| method | MACs | fewer MACs | top-1 | top-5 | agreement with fp32 | mean KL | held-out samples: top-1, agreement | dropped blocks | minutes |\n'
  printf '|---|---:|---:|---:|---:|---:|---:|---:|---|---:|\n'
} | tee "$TABLE"
last_flags="-"; compress_s=0
for r in "${rows[@]}"; do
  IFS='|' read -r name flags distill <<< "$r"
  [[ -z "${ONLY:-}" || "$name" == *"$ONLY"* ]] || continue
  t=$SECONDS
  # Rows with the flags of the row before distil its file; their minutes count that
  # compression too.
  if [[ "$flags" != "$last_flags" ]]; then
    # shellcheck disable=SC2086
    "$BIN" compress --weights "$W" --out "$OUT/m.safetensors" $flags --json > "$OUT/c.json"
    last_flags="$flags"; compress_s=$(( SECONDS - t ))
  else
    t=$(( t - compress_s ))
  fi
  model="$OUT/m.safetensors"
  if [[ -n "$distill" ]]; then
    extra=""; [[ "$distill" == defaults ]] || extra="$distill"
    # shellcheck disable=SC2086
    "$BIN" distill --weights "$OUT/m.safetensors" --teacher "$W" --images "$OUT/train136" \
      --out "$OUT/d.safetensors" --steps "$STEPS" --batch "$BATCH" $extra --json > "$OUT/d.json"
    model="$OUT/d.safetensors"
  fi
  "$BIN" eval --weights "$model" --reference "$W" --images "$DATA/imagenet-val" --json > "$OUT/e.json"
  "$BIN" eval --weights "$model" --reference "$W" --images "$OUT/held-out" --json > "$OUT/h.json"
  python3 - "$name" "$(( (SECONDS - t + 30) / 60 ))" "$OUT/c.json" "$OUT/e.json" "$OUT/h.json" <<'PY' | tee -a "$TABLE"
import json, sys
name, minutes = sys.argv[1], sys.argv[2]
c, e, h = (json.load(open(f)) for f in sys.argv[3:])
b, a = c["before"]["macs"], c["after"]["macs"]
blocks = ", ".join(d["name"] for d in c.get("dropped_blocks", [])) or "–"
print(f"| {name} | {a / 1e6:.0f} M | {1 - a / b:.0%} | {e['top1']:.3f} | {e['top5']:.3f} "
      f"| {e['agreement']:.3f} | {e['kl']:.4f} | {h['top1']:.3f}, {h['agreement']:.3f} | {blocks} | {minutes} |")
PY
done
NVAL=$(find "$DATA/imagenet-val" -name '*.JPEG' | wc -l)
echo
echo "($NVAL ImageNet validation photos, 1000-way; fitted on 200 imagenet-samples photos; $(( (SECONDS - START + 59) / 60 )) min)"
[[ -n "${DOC:-}" && -z "${ONLY:-}" ]] || exit 0
{
  printf '%s\n\n' "$HEADER"
  cat <<EOF
EfficientNet-Lite0 with its real ImageNet weights, compressed by \`modelslim compress\` on the
first 200 \`imagenet-samples\` photos (their labels unused), scored by \`modelslim eval
--reference\` on the $NVAL \`imagenet-val\` photos against fp32, and on the 50 samples after
the first 200 (never fitted on). "minutes" is the whole row on this machine: compression,
distillation and both evaluations. Distilled rows run \`modelslim distill\` for $STEPS steps of
$BATCH photos on samples 65 to 200, which the block choice never read (a fifth of them held
back to keep the best step by). A distilled row equal to the row above it means no step beat
the start on those held-back photos, so the file written is the undistilled one.

- **blocks: N dropped** (\`--drop-blocks N\`): the N residual blocks whose absence costs the
  least KL on the first 64 photos, chosen greedily; nothing is refit.
- **budget** (\`--target-macs R --reconstruct\`): each block-internal group is measured with 25,
  50 and 75 % of its channels removed and refit, and without its block, on the first 64 photos
  (the refits fit on the next 64); the table's combination at the least summed KL competes with
  greedy block drops completed by channels, each built, refit and measured; the least KL is
  built and refit on all 200.

See [compression.md](compression.md) for the methods.

EOF
  cat "$TABLE"
} > "$ROOT/docs/structured.md"
echo "wrote docs/structured.md"
