// "Check in ONNX Runtime": the page's two ONNX files (the original as fp32, the compressed
// one as downloaded) run in onnxruntime-web on the kept photos. Its top-1 must be the page's,
// and its latencies are a deployment runtime's, where int8 QDQ graphs run on integer kernels:
// the speed-up of quantization and pruning measured, not simulated in float as this page
// computes. Imported by
// www/actions-compress.js only when the user asks; the runtime itself loads in ./ort-worker.js.

/** onnxruntime-web's worker (./ort-worker.js), speaking {id, ...} → {id, result | error}. */
export function ortWorker() {
  const worker = new Worker('ort-worker.js', { type: 'module' });
  let next = 0;
  const pending = new Map();
  worker.onmessage = (e) => {
    const p = pending.get(e.data.id);
    pending.delete(e.data.id);
    if (e.data.error !== undefined) p?.reject(new Error(`ONNX Runtime: ${e.data.error}`));
    else p?.resolve(e.data.result);
  };
  worker.onerror = (e) => {
    for (const p of pending.values()) p.reject(new Error(`ONNX Runtime's worker stopped: ${e.message || 'worker error'}`));
    pending.clear();
  };
  const call = (msg) => new Promise((resolve, reject) => {
    const id = next++;
    pending.set(id, { resolve, reject });
    worker.postMessage({ ...msg, id });
  });
  return { call, terminate: () => worker.terminate() };
}

/**
 * Run both files on up to `maxPhotos` kept photos, then time `runs` warm inferences of each
 * on the first. `engine` is the page's engine client (./engine.js), `topFive(logits)` resolves to the
 * engine's top-5 of another runtime's logits,
 * `status(text)` shows progress. Resolves to {threads, version, photos: [{index, original,
 * compressed}] (each an ONNX Runtime top-5), original: times, compressed: times}.
 */
export async function checkInOnnxRuntime({ engine, topFive, runs, maxPhotos, status }) {
  const n = Math.min(engine.photoCount, maxPhotos);
  if (!n) throw new Error('Checking in ONNX Runtime needs photos: add some in step 2 first.');
  const ort = ortWorker();
  try {
    const threads = self.crossOriginIsolated ? Math.min(4, navigator.hardwareConcurrency || 1) : 1;
    status('loading onnxruntime-web and both ONNX files…');
    const files = { original: await engine.originalOnnx(), compressed: await engine.download('onnx') };
    let info = null;
    for (const [name, bytes] of Object.entries(files)) info = await ort.call({ type: 'load', name, bytes, threads });
    const out = { threads: info.threads, version: info.version, photos: [] };
    let first = null;
    for (let i = 0; i < n; i++) {
      status(`ONNX Runtime: photo ${i + 1} of ${n}…`);
      const input = await engine.photoInput(i);
      const side = Math.round(Math.sqrt(input.length / 3));
      first ??= { input, side };
      const row = { index: i };
      for (const name of ['original', 'compressed']) {
        const r = await ort.call({ type: 'run', name, input, side, runs: 1 });
        row[name] = { top5: await topFive(r.logits), logits: Array.from(r.logits) };
      }
      out.photos.push(row);
    }
    for (const name of ['original', 'compressed']) {
      status(`ONNX Runtime: timing the ${name} file, ${runs} runs after a warm-up…`);
      const r = await ort.call({ type: 'run', name, ...first, runs: runs + 1 });
      out[name] = r.times.slice(1);
    }
    return out;
  } finally {
    ort.terminate();
  }
}
