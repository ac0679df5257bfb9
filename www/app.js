// modelslim page script: DOM only. Decoding, preprocessing and the network run in Rust (wasm).
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

async function start() {
  const wasm = await bindingsReady();
  const forceCpu = params.get('backend') === 'cpu';
  engine = await wasm.createEngine(forceCpu ? 'cpu' : 'auto',
    forceCpu ? 'the CPU backend was requested (?backend=cpu)' : undefined);
  window.modelslimEngine = engine; // for devtools and tests/e2e/bench.mjs
  $('backend').textContent = engine.backendKind === 'wgpu' ? await describeAdapter() : engine.backend;
  $('backend').dataset.kind = engine.backendKind;
  if (engine.fallbackReason) {
    const n = $('notice');
    n.textContent = `WebGPU is not in use — running on the CPU fallback, which is slower. Reason: ${engine.fallbackReason}.`;
    n.hidden = false;
  }
  const weights = params.get('weights') || DEFAULT_WEIGHTS_URL;
  if (weights === 'seeded') useSeeded();
  else if (weights === 'none') setStatus('ready: load a weights file to begin');
  else await downloadWeights(weights);
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
  setStatus('model ready: add photos');
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
    engine.loadWeights(bytes, `ResNet18 ImageNet weights${cached ? ' (from this browser\'s cache)' : ''}`);
    modelLoaded(false);
  } catch (e) {
    setStatus('no model loaded');
    showError(
      `Could not download the ResNet18 weights from ${url} (${message(e)}). You may be offline, or ` +
      'the download is blocked. Load a weights file with "Load weights file…", or use random weights for a demo.');
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
    setStatus(`downloading ImageNet weights… ${(got / 1e6).toFixed(1)} / ${(total / 1e6).toFixed(1)} MB`);
  }
  return bytes.subarray(0, got);
}

function useSeeded() {
  clearError();
  engine.loadSeeded(42);
  modelLoaded(true);
}

async function loadWeightsFile(file) {
  clearError();
  setStatus(`reading ${file.name}…`);
  try {
    const bytes = new Uint8Array(await file.arrayBuffer());
    engine.loadWeights(bytes, file.name);
    modelLoaded(false);
  } catch (e) {
    setStatus(engine.modelInfo ? 'model ready: add photos' : 'no model loaded');
    showError(`${file.name}: ${message(e)}`);
  }
}

function card(name) {
  const el = document.createElement('div');
  el.className = 'card';
  el.innerHTML = '<img alt=""><div class="body"><div class="name"></div><div class="out"></div></div>';
  el.querySelector('.name').textContent = name;
  $('results').append(el);
  return el;
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor((s.length - 1) / 2)];
}

function showTiming() {
  const parts = [];
  if (coldTime !== null) parts.push(`first run (cold: includes shader compilation) ${coldTime.toFixed(0)} ms`);
  if (warmTimes.length) parts.push(`warm median ${median(warmTimes).toFixed(0)} ms over ${warmTimes.length} run(s)`);
  $('timing').textContent = parts.length ? `Inference on ${$('backend').textContent}: ${parts.join(', ')}.` : '';
}

async function classify(file) {
  const el = card(file.name);
  const out = el.querySelector('.out');
  if (!engine || !engine.modelInfo) {
    out.innerHTML = '<p class="err"></p>';
    out.firstChild.textContent = 'Load a model first.';
    showError(`${file.name}: load a model first (download the ImageNet weights, pick a file, or use random weights).`);
    return;
  }
  setStatus(`classifying ${file.name}…`);
  try {
    const bytes = new Uint8Array(await file.arrayBuffer());
    const result = JSON.parse(await engine.predict(bytes));
    el.querySelector('img').src = URL.createObjectURL(file);
    const ol = document.createElement('ol');
    ol.dataset.testid = 'top5-original';
    ol.setAttribute('data-testid', 'top5-original');
    ol.dataset.image = file.name;
    for (const c of result.top5) {
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
    out.append(ol);
    const t = document.createElement('p');
    t.className = 'small';
    t.textContent = `${result.inference_ms.toFixed(0)} ms${result.cold ? ' (cold)' : ''} + ${result.preprocess_ms.toFixed(0)} ms preprocessing`;
    out.append(t);
    if (result.cold) coldTime = result.inference_ms;
    else warmTimes.push(result.inference_ms);
    showTiming();
    setStatus(`done: ${file.name}`);
  } catch (e) {
    el.classList.add('failed');
    out.innerHTML = '<p class="err"></p>';
    out.firstChild.textContent = message(e);
    showError(`${file.name}: ${message(e)}`);
    setStatus('ready');
  }
}

function classifyAll(files) {
  clearError();
  for (const f of files) enqueue(() => classify(f));
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
$('use-seeded').addEventListener('click', () => enqueue(async () => useSeeded()));
$('retry-download').addEventListener('click', () =>
  enqueue(() => downloadWeights(params.get('weights') || DEFAULT_WEIGHTS_URL)));
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
