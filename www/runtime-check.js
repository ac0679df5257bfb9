// "Check in ONNX Runtime" and "Check in LiteRT": the page's original model and its compressed one,
// as the files a user downloads, run in another runtime on the kept photos. Its top-1 must be the
// page's, and its latencies are a deployment runtime's, where int8 graphs run on integer
// kernels: the speed-up of quantization and pruning measured, not simulated in float as this
// page computes. Imported by www/actions-compress.js only when the user asks; each runtime loads
// in a worker of its own (./ort-worker.js, ./litert-worker.js).

import { latencyStats } from './format.js';

/** A runtime's worker at `url`, speaking {id, ...} → {id, result | error}. */
function runtimeWorker(url, label, options) {
  const worker = new Worker(url, options);
  let next = 0;
  const pending = new Map();
  worker.onmessage = (e) => {
    const p = pending.get(e.data.id);
    pending.delete(e.data.id);
    if (e.data.error !== undefined) p?.reject(new Error(`${label}: ${e.data.error}`));
    else p?.resolve(e.data.result);
  };
  worker.onerror = (e) => {
    for (const p of pending.values()) p.reject(new Error(`${label}'s worker stopped: ${e.message || 'worker error'}`));
    pending.clear();
  };
  const call = (msg) => new Promise((resolve, reject) => {
    const id = next++;
    pending.set(id, { resolve, reject });
    worker.postMessage({ ...msg, id });
  });
  return { call, terminate: () => worker.terminate() };
}

/** onnxruntime-web's worker (./ort-worker.js). */
export const ortWorker = () => runtimeWorker('ort-worker.js', 'ONNX Runtime', { type: 'module' });

/** LiteRT.js's worker (./litert-worker.js): a classic worker, LiteRT.js loads with importScripts. */
export const litertWorker = () => runtimeWorker('litert-worker.js', 'LiteRT');

// Threads need SharedArrayBuffer, which browsers give cross-origin isolated pages only.
const ortThreads = () => (self.crossOriginIsolated ? Math.min(4, navigator.hardwareConcurrency || 1) : 1);

/**
 * Auto's candidates timed in the runtime their file deploys to (`runtime`: policy.js's
 * deployRuntime): each made the compressed model in turn (`choose(i)`), its file (`file()`:
 * ONNX, or the TFLite file) loaded in ONNX Runtime or LiteRT, `runs` warm inferences of the
 * first photo after one to warm up. Resolves to each candidate's median ms, in candidate
 * order; `status(text)` shows progress.
 */
export async function timeCandidates({ runtime, count, choose, file, engine, runs, status }) {
  const { id, label } = runtime;
  const rt = id === 'litert' ? litertWorker() : ortWorker();
  try {
    const pre = JSON.parse(await engine.preprocessing());
    const run = { input: await engine.photoInput(0), hw: [pre.crop, pre.crop_width ?? pre.crop] };
    const ms = [];
    for (let i = 0; i < count; i++) {
      status(`${label}: candidate ${i + 1} of ${count}…`);
      await choose(i);
      await rt.call({ type: 'load', name: `c${i}`, bytes: await file(), threads: id === 'litert' ? 1 : ortThreads() });
      const r = await rt.call({ type: 'run', name: `c${i}`, ...run, runs: runs + 1 });
      ms.push(latencyStats(r.times.slice(1)).median_ms);
    }
    return ms;
  } finally {
    rt.terminate();
  }
}

/**
 * Run both files on up to `maxPhotos` kept photos in `runtime` ({label, worker(), files(engine),
 * threads}), then time `runs` warm inferences of each on the first. `engine` is the page's engine
 * client (./engine.js), `topFive(logits)` resolves to the engine's top-5 of another runtime's
 * logits, `status(text)` shows progress. Resolves to {threads, version, photos: [{index,
 * original, compressed}] (each the runtime's top-5), original: times, compressed: times}.
 */
async function checkIn(runtime, { engine, topFive, runs, maxPhotos, status }) {
  const n = Math.min(engine.photoCount, maxPhotos);
  if (!n) throw new Error(`Checking in ${runtime.label} needs photos: add some in step 2 first.`);
  const rt = runtime.worker();
  try {
    status(`loading ${runtime.label} and both files…`);
    const files = await runtime.files(engine);
    let info = null;
    for (const [name, bytes] of Object.entries(files)) info = await rt.call({ type: 'load', name, bytes, threads: runtime.threads });
    const out = { threads: info.threads, version: info.version, photos: [] };
    const pre = JSON.parse(await engine.preprocessing());
    const hw = [pre.crop, pre.crop_width ?? pre.crop];
    let first = null;
    for (let i = 0; i < n; i++) {
      status(`${runtime.label}: photo ${i + 1} of ${n}…`);
      const input = await engine.photoInput(i);
      first ??= { input, hw };
      const row = { index: i };
      for (const name of ['original', 'compressed']) {
        const r = await rt.call({ type: 'run', name, input, hw, runs: 1 });
        row[name] = { top5: await topFive(r.logits), logits: Array.from(r.logits) };
      }
      out.photos.push(row);
    }
    for (const name of ['original', 'compressed']) {
      status(`${runtime.label}: timing the ${name} file, ${runs} runs after a warm-up…`);
      const r = await rt.call({ type: 'run', name, ...first, runs: runs + 1 });
      out[name] = r.times.slice(1);
    }
    return out;
  } finally {
    rt.terminate();
  }
}

/** The two ONNX files (the original as fp32, the compressed one as downloaded) in onnxruntime-web. */
export const checkInOnnxRuntime = (opts) => checkIn({
  label: 'ONNX Runtime',
  worker: ortWorker,
  files: async (engine) => ({ original: await engine.originalOnnx(), compressed: await engine.download('onnx') }),
  threads: ortThreads(),
}, opts);

/**
 * The two TFLite files (the original as fp32, the compressed one as the page's TFLite download)
 * in LiteRT.js on its CPU (wasm) runtime. `engine` must be the module that writes TFLite.
 */
export const checkInLiteRt = (opts) => checkIn({
  label: 'LiteRT',
  worker: litertWorker,
  files: async (engine) => ({ original: await engine.originalTflite(), compressed: await engine.tflite('float') }),
  threads: 1,
}, opts);
