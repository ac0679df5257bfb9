#!/usr/bin/env bash
# Writes docs/performance.md: native CPU latency (`modelslim bench`), the preset table of
# scripts/presets.sh (sizes and the CLI's time), what dropping blocks saves in latency
# (scripts/blocks-latency.sh), the page's three wasm modules
# (scripts/module-sizes.py after `trunk build --release`) and, in headless Chromium, modelslim
# against onnxruntime-web (scripts/bench-browser.sh) and before / after compression in the page
# (tests/e2e/bench.mjs).
#   bash scripts/performance.sh          a benchmark: run it when nothing else runs
#   BROWSER=0 bash scripts/performance.sh   without the headless Chromium sections
#   RUNS=10 (default)                    timed runs per measurement in the browser
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/setup.sh" >/dev/null
source "$ROOT/scripts/doc-header.sh"
cd "$ROOT"
DOC="$ROOT/docs/performance.md"
BROWSER="${BROWSER:-1}"; RUNS="${RUNS:-10}"
COMMAND="bash scripts/performance.sh"
[[ "$BROWSER" != 0 ]] || COMMAND="BROWSER=0 $COMMAND"
[[ "$RUNS" == 10 ]] || COMMAND="RUNS=$RUNS $COMMAND"
HEADER="$(doc_header "Performance" "$COMMAND")"
OUT="$(mktemp -d)"
trap 'rm -rf "$OUT"' EXIT
START=$SECONDS
load() { cut -d' ' -f1 /proc/loadavg; }
LOAD_START="$(load)"
took() {
  local s=$(( SECONDS - $1 ))
  if (( s < 120 )); then printf '%s s' "$s"; else printf '%s min' "$(( (s + 30) / 60 ))"; fi
}

cargo build --release --quiet
BIN="$CARGO_TARGET_DIR/release/modelslim"

# Native latency on the CPU backend.
t=$SECONDS
{
  printf '| model | weights | cold | warm min | warm median | warm p90 | command |\n'
  printf '|---|---|---:|---:|---:|---:|---|\n'
  for m in "ResNet18|seeded:42|seeded:42" "EfficientNet-Lite0|$MODELSLIM_EFFNET_PTH|efficientnet-lite0-57934424.pth"; do
    IFS='|' read -r name weights shown <<< "$m"
    "$BIN" bench --weights "$weights" --backend cpu --runs 20 > "$OUT/bench.txt"
    python3 - "$name" "$shown" "$OUT/bench.txt" <<'PY'
import re, sys
name, shown, text = sys.argv[1], sys.argv[2], open(sys.argv[3]).read()
cold = re.search(r"cold first forward: ([\d.]+) ms", text)
warm = re.search(r"min ([\d.]+) ms, median ([\d.]+) ms, p90 ([\d.]+) ms", text)
cold = f"{float(cold.group(1)):.1f} ms" if cold else "–"
mn, med, p90 = (f"{float(x):.1f} ms" for x in warm.groups())
print(f"| {name} | {'random (seeded)' if shown.startswith('seeded') else 'ImageNet'} | {cold} | {mn} | {med} | {p90} "
      f"| `modelslim bench --weights {shown} --backend cpu --runs 20` |")
PY
  done
} | tee "$OUT/native.md"
NATIVE_TIME="$(took $t)"

t=$SECONDS
bash scripts/presets.sh | tee "$OUT/presets.md"
PRESETS_TIME="$(took $t)"

t=$SECONDS
RUNS=20 bash scripts/blocks-latency.sh | tee "$OUT/blocks.md"
BLOCKS_TIME="$(took $t)"

t=$SECONDS
trunk build --release >/dev/null
python3 scripts/module-sizes.py dist | tee "$OUT/modules.txt"
python3 - "$OUT/modules.txt" > "$OUT/modules.md" <<'PY'
import re, sys
print("| module | raw | gzip | file |\n|---|---:|---:|---|")
for line in open(sys.argv[1]):
    m = re.match(r"(\w+) module: ([\d.]+) MB raw, ([\d.]+) MB gzip \((.+)\)", line)
    if m:
        what = {"page": "the page's engine (no training)", "training": "the training engine (autodiff)",
                "threaded": "the threaded engine (CPU only, with training)"}[m.group(1)]
        print(f"| {what} | {m.group(2)} MB | {m.group(3)} MB | `{m.group(4)}` |")
PY
MODULES_TIME="$(took $t)"

if [[ "$BROWSER" != 0 ]]; then
  t=$SECONDS
  RUNS="$RUNS" bash scripts/bench-browser.sh 2> "$OUT/ort.err" | tee "$OUT/ort.txt"
  ORT_TIME="$(took $t)"
  t=$SECONDS
  RUNS="$RUNS" npm run --silent bench --prefix tests/e2e 2>&1 | tee "$OUT/bench-page.txt"
  PAGE_TIME="$(took $t)"
fi

LOAD_END="$(load)"
{
  printf '%s\n\n' "$HEADER"
  cat <<EOF
Everything below ran on the CPU named above (the browser sections in headless Chromium, whose
WebGPU is SwiftShader, a software GPU: a correctness target, not a speed target). The whole run
took $(took $START). Timings depend on what else runs: the 1-minute load average was
$LOAD_START when the run started and $LOAD_END when it ended ($(nproc) cores).

## Native CLI, CPU backend ($NATIVE_TIME)

\`modelslim bench\` loads the model, runs one forward pass of a 224×224 image (cold: the first,
after loading) and then 20 more (warm: their minimum, median and 90th percentile). The CPU
backend is Burn's flex with modelslim's own convolution and pooling kernels, on every core.

EOF
  cat "$OUT/native.md"
  cat <<EOF

## Presets on ResNet18: sizes and time ($PRESETS_TIME)

\`bash scripts/presets.sh\`: each preset compressed by \`modelslim compress --json\` from
ResNet18 with seeded random weights (sizes and MACs are those of real weights; accuracy is not:
see [accuracy.md](accuracy.md)), the ONNX and safetensors files written and measured. "vs fp32
ONNX" is the ONNX file's size over the fp32 one's. "time" is the whole CLI run: loading,
compressing, writing and measuring both files. Calibration photos, where a preset needs them,
are the repository's sample photos (\`www/samples\`). Folding batch norms into the
convolutions replaces each norm's γ and β by one bias per channel, hence fewer parameters in
the quantized rows.

EOF
  cat "$OUT/presets.md"
  cat <<EOF

modelslim computes in float and simulates integer rounding, so quantization does not change its
own latency; pruning does. The speed-up of integer weights and activations is measured in an
integer runtime: the page's "Check in ONNX Runtime".

## Dropping blocks: ResNet18 latency ($BLOCKS_TIME)

\`bash scripts/blocks-latency.sh\`: ResNet18 (seeded weights: latency does not depend on their
values) whole and with two or three of its basic blocks dropped (\`--drop-blocks\`), timed by
\`modelslim bench --backend cpu\` and by onnxruntime (CPU, its default threads) on the ONNX file
\`modelslim compress --onnx\` wrote; ratio = the shorter network's median over the whole
one's. With real weights, \`--drop-blocks N\` chooses the blocks on photos; here they are
named, and every droppable block of ResNet18 costs about the same MACs. Two blocks are about
a quarter of the MACs. The page's own benchmark of the two-block network is in the last
section.

EOF
  cat "$OUT/blocks.md"
  cat <<EOF

## The page's wasm modules ($MODULES_TIME)

\`trunk build --release\`, then \`python3 scripts/module-sizes.py dist\` (gzip level 9, as a
static host would serve them). Every visitor downloads the page's module before the first
prediction; \`scripts/test.sh\` fails when it is over 3.6 MB gzipped, or when training leaks
into it. The training module is fetched only when the user first recovers accuracy or makes
calibration images. A page on the CPU that is cross-origin isolated fetches the threaded
module instead of both (it has training in it, and no WebGPU).

EOF
  cat "$OUT/modules.md"
  if [[ "$BROWSER" != 0 ]]; then
    cat <<EOF

## In the browser: modelslim against onnxruntime-web ($ORT_TIME)

\`bash scripts/bench-browser.sh\` (\`tests/e2e/bench-ort.mjs\`, RUNS=$RUNS): in one headless
Chromium, each fp32 model is loaded in the page and one photo classified on the CPU fallback
(Burn flex and modelslim's kernels in wasm, SIMD) and on WebGPU; then the page's own ONNX
export of the model and the same preprocessed input go to onnxruntime-web (the version pinned
in \`www/vendor/\`) in the page's runtime worker, on its wasm backend (one thread) and its
WebGPU backend. Times are warm medians; ratio = modelslim / onnxruntime-web, below 1 means
modelslim is faster. The last column is the time from navigation to the first top-5 of a photo
given as soon as the model is ready, on the CPU fallback (the seeded ResNet18's weights are
generated in the page, EfficientNet-Lite0's served with it).

EOF
    # The benchmark's first table, then its second (the CPU engine on every core).
    awk '/^[|]/ { print; next } /cores reported/ { exit }' "$OUT/ort.txt"
    cat <<EOF

The CPU engine on every core, in the same run: where the page is cross-origin isolated it
starts the threaded module (rayon's threads are web workers on one shared memory) with as
many threads as the browser reports cores, up to 8; \`?threads=1\` starts the single-threaded
module. onnxruntime-web runs on one thread and on as many; the ratio is modelslim's threaded
time over onnxruntime-web's faster one. $(grep -m1 'cores reported' "$OUT/ort.txt").

EOF
    awk 'seen && /^[|]/ { print } /cores reported/ { seen = 1 }' "$OUT/ort.txt"
    if grep -qE 'cold|onnxruntime-web ' "$OUT/ort.err"; then
      printf '\nWhat the benchmark printed besides the table (cold first runs, errors):\n\n```\n'
      grep -E 'cold|onnxruntime-web ' "$OUT/ort.err" || true
      printf '```\n'
    fi
    cat <<EOF

## In the browser: before and after compression ($PAGE_TIME)

\`RUNS=$RUNS npm run bench --prefix tests/e2e\` (\`tests/e2e/bench.mjs\`, after the build
above): seeded ResNet18 in the page on WebGPU and on the CPU fallback, the cold first
prediction and the warm runs, then each preset, and two blocks dropped (layer3.1 and
layer4.1), compressed in the page and the engine's own benchmark of the original and the
compressed model (ratio = compressed / original warm
median). Its output as printed:

\`\`\`
EOF
    grep -v '^>' "$OUT/bench-page.txt" | grep . || true
    printf '```\n'
  fi
} > "$DOC"
echo "wrote $DOC"
