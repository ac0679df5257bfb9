// The page's handle on the engine: in a dedicated worker (www/engine-worker.js) where the
// browser can run it there, else on the main thread. Either way every method returns a
// promise and the getters (backend, backendKind, fallbackReason, modelInfo, photoCount,
// training) read the engine's state as of its last answer.
//
// The engine comes in two modules. The page loads the one without training (Burn's autodiff
// would add a tenth to it); the one with it (distillation, synthesized images) is built beside
// it (scripts/training-module.sh) and loaded only when the user first asks for those.

const GETTERS = ['backend', 'backendKind', 'fallbackReason', 'modelInfo', 'photoCount', 'training'];

// The training module's files, next to the page.
const TRAINING = { js: 'modelslim-training.js', wasm: 'modelslim-training_bg.wasm' };

// The URLs of a wasm-bindgen module and its .wasm: the page's as Trunk linked them into the
// page, or the training module's. Trunk names the page's files by a hash of the build; the
// training module's carry that hash as a query, so a browser never pairs a cached training
// module with a newer page.
function bindingUrls(training) {
  const js = document.querySelector('link[rel=modulepreload][href*="modelslim"]')?.href;
  const wasm = document.querySelector('link[rel=preload][href$=".wasm"]')?.href;
  if (!js || !wasm) return null;
  if (!training) return { js, wasm };
  const build = js.match(/modelslim-([0-9a-f]+)\.js/)?.[1] ?? 'dev';
  const url = (file) => new URL(`${file}?build=${build}`, document.baseURI).href;
  return { js: url(TRAINING.js), wasm: url(TRAINING.wasm) };
}

async function workerEngine(prefer, reason, training) {
  const urls = bindingUrls(training);
  if (typeof Worker === 'undefined' || !urls) throw new Error('this browser has no module workers');
  const worker = new Worker('engine-worker.js', { type: 'module' });
  let state = {};
  await new Promise((resolve, reject) => {
    worker.onmessage = (e) => {
      if (e.data.type === 'ready') { state = e.data.state; resolve(); } else reject(new Error(e.data.error));
    };
    worker.onerror = (e) => reject(new Error(e.message || 'the worker did not start'));
    worker.postMessage({ type: 'init', bindings: urls.js, wasm: urls.wasm, prefer, reason });
  });
  let next = 0;
  const pending = new Map(); // id → {resolve, reject, callbacks}
  const target = { inWorker: true, onLost: null, terminate: () => worker.terminate() };
  worker.onmessage = (e) => {
    const m = e.data;
    if (m.type === 'lost') {
      // Calls in flight will not finish on a lost device: fail them, and let the page recover.
      for (const p of pending.values()) p.reject(new Error(`the WebGPU device was lost (${m.reason})`));
      pending.clear();
      target.onLost?.(m.reason);
      return;
    }
    const p = pending.get(m.id);
    if (!p) return;
    if (m.type === 'callback') {
      if (p.callbacks[m.k](m.arg) === false) worker.postMessage({ type: 'cancel', id: m.id });
      return;
    }
    pending.delete(m.id);
    state = m.state;
    if (m.error !== undefined) p.reject(new Error(m.error));
    else p.resolve(m.result);
  };
  worker.onerror = (e) => {
    for (const p of pending.values()) p.reject(new Error(`the engine stopped: ${e.message || 'worker error'}`));
    pending.clear();
  };
  const call = (method, args) => new Promise((resolve, reject) => {
    const id = next++;
    const callbacks = [];
    const sent = args.map((a) => (typeof a === 'function' ? { __callback: callbacks.push(a) - 1 } : a));
    pending.set(id, { resolve, reject, callbacks });
    worker.postMessage({ type: 'call', id, method, args: sent });
  });
  return new Proxy(target, {
    get(t, prop) {
      if (prop in t) return t[prop];
      if (GETTERS.includes(prop)) return state[prop];
      if (prop === 'then') return undefined; // not a promise itself
      return (...args) => call(prop, args);
    },
  });
}

// The engine on the main thread, with the worker engine's promise-returning interface.
function mainThreadEngine(engine, whyNotWorker) {
  // Device loss is watched in the worker only (see engine-worker.js).
  return new Proxy({ inWorker: false, whyNotWorker, onLost: null, terminate: () => {} }, {
    get(target, prop) {
      if (prop in target) return target[prop];
      if (GETTERS.includes(prop)) return engine[prop];
      if (prop === 'then') return undefined;
      return async (...args) => engine[prop](...args);
    },
  });
}

// The training module's bindings, for an engine on the main thread.
async function trainingBindings() {
  const urls = bindingUrls(true);
  const bindings = await import(urls.js);
  await bindings.default({ module_or_path: urls.wasm });
  return bindings;
}

// `wasm`: the page's bindings (or a promise of them), for a main-thread engine of the page's
// module; `training`: the module with training instead.
export async function createEngine(wasm, prefer, reason, { mainThread = false, training = false } = {}) {
  try {
    if (mainThread) throw new Error('the main thread was requested (?engine=main)');
    return await workerEngine(prefer, reason, training);
  } catch (e) {
    const bindings = training ? await trainingBindings() : await wasm;
    return mainThreadEngine(await bindings.createEngine(prefer, reason), (e && e.message) || String(e));
  }
}
