// onnxruntime-web in a worker of its own, for the page's "Check in ONNX Runtime"
// (www/runtime-check.js) and the browser benchmark (tests/e2e/bench-ort.mjs): the runtime's
// inferences never block the page, and its timings are not disturbed by the page's work.
// ./ort/ holds the pinned npm package's wasm backend (copied by scripts/setup.sh, served with
// the page: no CDN); it is imported only when asked. The benchmark points `dir` at the whole
// package for its WebGPU backend.
let ort = null;
const sessions = new Map();

// {name, bytes, threads, backend = 'wasm' | 'webgpu', dir = './ort/'}: the first call picks
// the runtime's module for this worker.
async function load(m) {
  const backend = m.backend ?? 'wasm';
  if (!ort) {
    const dir = new URL(m.dir ?? './ort/', self.location.href).href;
    const file = `${dir}ort.${backend}.min.mjs`;
    try {
      ort = await import(file);
    } catch (e) {
      throw new Error(`this site does not serve onnxruntime-web (${file}: ${e.message}); build the page after scripts/setup.sh, which copies it into www/ort/`);
    }
    ort.env.wasm.wasmPaths = dir;
    // Threads need SharedArrayBuffer, which browsers give cross-origin isolated pages only.
    ort.env.wasm.numThreads = m.threads;
  }
  sessions.set(m.name, await ort.InferenceSession.create(m.bytes, {
    executionProviders: [backend],
    graphOptimizationLevel: 'all',
  }));
  return { threads: ort.env.wasm.numThreads, version: ort.env.versions?.web ?? ort.env.versions?.common };
}

// `runs` inferences of one input; the logits of the last and every run's time (ms).
async function run(m) {
  const s = sessions.get(m.name);
  if (!s) throw new Error(`no ONNX session '${m.name}'`);
  const feeds = { [s.inputNames[0]]: new ort.Tensor('float32', m.input, [1, 3, ...m.hw]) };
  const times = [];
  let logits = null;
  for (let i = 0; i < m.runs; i++) {
    const t0 = performance.now();
    const out = await s.run(feeds);
    times.push(performance.now() - t0);
    logits = out[s.outputNames[0]].data;
  }
  return { logits, times };
}

onmessage = async (e) => {
  const m = e.data;
  try {
    const result = m.type === 'load' ? await load(m) : await run(m);
    postMessage({ id: m.id, result });
  } catch (err) {
    postMessage({ id: m.id, error: (err && err.message) || String(err) });
  }
};
