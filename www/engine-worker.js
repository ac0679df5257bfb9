// modelslim's engine in a dedicated worker: the model, the photos, compression and benchmarks
// run here, so the page's main thread only handles the DOM and stays responsive. The page
// (www/engine.js) sends {type: 'init'} once, then {type: 'call', id, method, args}; function
// arguments (progress callbacks) arrive as {__callback: k} and are called back with
// {type: 'callback'} messages; {type: 'cancel', id} makes that call's callbacks answer false.
let engine = null;
const cancelled = new Set();

function state() {
  return {
    backend: engine.backend,
    backendKind: engine.backendKind,
    fallbackReason: engine.fallbackReason,
    modelInfo: engine.modelInfo,
    photoCount: engine.photoCount,
    training: engine.training,
  };
}

// A WebGPU device can be lost (driver reset, GPU process crash, `device.destroy()`): the
// engine's buffers go with it and nothing on it can run again. Watch every device the engine
// requests and tell the page, which starts a new engine (www/app.js, recoverFromLostDevice).
// The devices are kept in `__devices` so that a test can destroy them.
function watchDevices() {
  if (typeof GPUAdapter === 'undefined') return;
  globalThis.__devices = [];
  const request = GPUAdapter.prototype.requestDevice;
  GPUAdapter.prototype.requestDevice = async function (...args) {
    const device = await request.apply(this, args);
    globalThis.__devices.push(device);
    device.lost.then((info) => {
      postMessage({ type: 'lost', reason: (info.message || info.reason || 'unknown reason').replace(/\.$/, '') });
    });
    return device;
  };
}

function errorText(e) {
  return (e && e.message) || String(e);
}

onmessage = async (e) => {
  const m = e.data;
  if (m.type === 'cancel') {
    cancelled.add(m.id);
  } else if (m.type === 'init') {
    try {
      watchDevices();
      const bindings = await import(m.bindings);
      // The wasm memory, for the page's memory check (tests/e2e: 30 compressions in a row).
      globalThis.__wasmMemory = (await bindings.default({ module_or_path: m.wasm })).memory;
      engine = await bindings.createEngine(m.prefer, m.reason ?? undefined);
      postMessage({ type: 'ready', state: state() });
    } catch (err) {
      postMessage({ type: 'failed', error: errorText(err) });
    }
  } else if (m.type === 'call') {
    const args = m.args.map((a) => (a && a.__callback !== undefined
      ? (arg) => {
        postMessage({ type: 'callback', id: m.id, k: a.__callback, arg });
        return !cancelled.has(m.id);
      }
      : a));
    try {
      const result = await engine[m.method](...args);
      postMessage({ type: 'result', id: m.id, result, state: state() });
    } catch (err) {
      postMessage({ type: 'result', id: m.id, error: errorText(err), state: state() });
    } finally {
      cancelled.delete(m.id);
    }
  }
};
