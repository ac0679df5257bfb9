// The engine's side of the page's one RPC (protocol: ./engine.js): it owns the session. Runs in
// the dedicated worker (./engine-worker.js), or on the main thread behind a MessageChannel
// where no module worker starts. Besides the wasm engine it keeps what it was given — the
// weights file's bytes (or seed), every kept photo's bytes, the class names — so that a new
// engine (after a lost WebGPU device, or the training module) is restored from this snapshot
// without the page holding a second copy.

/** Engine methods (`engine[m](...)`) and module functions (`bindings[m](...)`) the page may call. */
const FUNCTIONS = new Set(['settingsSpec', 'calibrationNeed', 'topFive']);

function errorText(e) {
  return (e && e.message) || String(e);
}

// A WebGPU device can be lost (driver reset, GPU process crash, `device.destroy()`): the
// engine's buffers go with it. Watch every device the engine requests and tell the page, which
// restarts the engine on the CPU from this host's snapshot. The devices are kept in
// `__devices` so that a test can destroy them.
// On the main thread a later host wraps the earlier one's watch: a device's loss reaches every
// host, and the retired ones' closed ports drop it.
function watchDevices(post) {
  if (typeof GPUAdapter === 'undefined') return;
  globalThis.__devices ??= [];
  const request = GPUAdapter.prototype.requestDevice;
  GPUAdapter.prototype.requestDevice = async function (...args) {
    const device = await request.apply(this, args);
    if (!globalThis.__devices.includes(device)) globalThis.__devices.push(device);
    device.lost.then((info) => {
      post({ type: 'lost', reason: (info.message || info.reason || 'unknown reason').replace(/\.$/, '') });
    });
    return device;
  };
}

// A call's fresh byte arrays (a download, synthesized PNGs) move to the page instead of being
// copied; the snapshot's are the host's own and are copied.
function freshBuffers(result) {
  const arrays = ArrayBuffer.isView(result) ? [result] : Array.isArray(result?.images) ? result.images : [];
  return [...new Set(arrays.map((a) => a.buffer))];
}

/** A host answering messages with `post(message, transfer)`; returns its `onmessage(data)`. */
export function engineHost(post) {
  let bindings = null;
  let engine = null;
  // What the engine was given and kept, as given: the snapshot a new engine is restored from.
  let kept = { weights: null, input: null, photos: [], labels: null, photoLabels: [] };
  const cancelled = new Set();

  const state = () => ({
    backend: engine.backend,
    backendKind: engine.backendKind,
    fallbackReason: engine.fallbackReason ?? null,
    modelInfo: engine.modelInfo,
    photoCount: engine.photoCount,
    training: engine.training,
    threads: engine.threads ?? 1,
  });

  // After a call succeeds: remember what it gave the engine.
  const remember = {
    // A model brings its own class names (the ones a file carries, else ImageNet's).
    loadWeights: ([bytes, info]) => { kept = { ...kept, weights: { bytes, info }, input: null, labels: null }; },
    loadSeeded: ([seed]) => { kept = { ...kept, weights: { seed }, input: null, labels: null }; },
    setInput: ([json]) => { kept = { ...kept, input: json }; },
    addPhoto: ([bytes, name]) => { kept = { ...kept, photos: [...kept.photos, { bytes, name }] }; },
    keepPhoto: ([bytes, name]) => { kept = { ...kept, photos: [...kept.photos, { bytes, name }] }; },
    clearPhotos: () => { kept = { ...kept, photos: [], photoLabels: [] }; },
    addPhotoLabels: ([text, name]) => { kept = { ...kept, photoLabels: [...kept.photoLabels, { text, name }] }; },
    setLabels: ([text, name]) => { kept = { ...kept, labels: { text, name } }; },
  };

  // The session as given, and the last compression's files when `compressed` and there is one.
  function snapshot(compressed) {
    let files = null;
    if (compressed && engine.downloadName('safetensors')) {
      files = { safetensors: engine.download('safetensors'), card: new TextDecoder().decode(engine.download('card')) };
    }
    return { ...kept, compressed: files };
  }

  function restore(s) {
    if (s.weights?.seed !== undefined) engine.loadSeeded(s.weights.seed);
    else if (s.weights) engine.loadWeights(s.weights.bytes, s.weights.info);
    if (s.input) engine.setInput(s.input);
    if (s.labels !== null) engine.setLabels(s.labels.text, s.labels.name);
    for (const p of s.photos) engine.keepPhoto(p.bytes, p.name);
    for (const l of s.photoLabels ?? []) engine.addPhotoLabels(l.text, l.name);
    if (s.compressed) engine.adoptCompressed(s.compressed.safetensors, s.compressed.card);
    kept = { weights: s.weights, input: s.input ?? null, photos: s.photos, labels: s.labels, photoLabels: s.photoLabels ?? [] };
  }

  async function init(m) {
    watchDevices(post);
    bindings = await import(m.module.js);
    // The wasm memory, for the page's memory check (tests/e2e: 30 compressions in a row).
    const instance = await bindings.default({ module_or_path: m.module.wasm });
    if (typeof WorkerGlobalScope !== 'undefined') globalThis.__wasmMemory = instance.memory;
    // The threaded module's pool: its threads are workers started from this one.
    if (m.module.threads) await bindings.initThreadPool(m.module.threads);
    engine = await bindings.createEngine(m.prefer, m.reason ?? undefined);
    if (m.restore) restore(m.restore);
  }

  async function call(m) {
    const args = m.args;
    if (m.progress) {
      args.push((data) => {
        post({ type: 'progress', id: m.id, data });
        return !cancelled.has(m.id);
      });
    }
    if (FUNCTIONS.has(m.method)) return bindings[m.method](...args);
    if (typeof engine[m.method] !== 'function') {
      throw new Error(`this engine has no ${m.method}() (an older build of modelslim?)`);
    }
    const result = await engine[m.method](...args);
    remember[m.method]?.(m.args);
    return result;
  }

  return async function onmessage(m) {
    if (m.type === 'cancel') { cancelled.add(m.id); return; }
    try {
      let result;
      if (m.type === 'init') await init(m);
      else if (m.type === 'snapshot') result = snapshot(m.compressed);
      else if (m.type === 'call') result = await call(m);
      else throw new Error(`unknown message ${m.type}`);
      post({ type: 'result', id: m.id, result, state: state() }, m.type === 'call' ? freshBuffers(result) : []);
    } catch (err) {
      post({ type: 'error', id: m.id, error: errorText(err), state: engine ? state() : null });
    } finally {
      cancelled.delete(m.id);
    }
  };
}
