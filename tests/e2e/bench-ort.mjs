// modelslim against onnxruntime-web, from one headless Chromium run: the same fp32 model
// (seeded ResNet18, real EfficientNet-Lite0) and the same preprocessed photo, warm medians of
// modelslim's CPU fallback (Burn flex in wasm) and WebGPU path against onnxruntime-web's wasm
// backend (one thread) and WebGPU backend, and their ratios (below 1: modelslim faster). Also
// the time from page load to the first top-5 on the CPU fallback (weights served with the page
// or from its cache); then the threaded module against the single-threaded one and
// onnxruntime-web on one thread and on as many. A benchmark, not a test: it prints, it asserts
// nothing.
//   bash scripts/bench-browser.sh        (builds the page first)
//   RUNS=10 npm run bench-ort --prefix tests/e2e
//   CPU_ONLY=1 …     the CPU fallback against onnxruntime-web's wasm backend only (minutes faster)
import { join } from 'node:path';
import { serveDist, launchChromium, ROOT } from './harness.mjs';

const RUNS = Number(process.env.RUNS || 10);
const ORT_ALL = join(ROOT, 'www', 'vendor', 'node_modules', 'onnxruntime-web', 'dist');
const MODELS = [['ResNet18 (seeded)', 'seeded'], ['EfficientNet-Lite0', 'efficientnet-lite0']];
const { server, base } = await serveDist({ '/ort-all/': ORT_ALL });
const browser = await launchChromium();
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return (s[Math.floor((s.length - 1) / 2)] + s[Math.ceil((s.length - 1) / 2)]) / 2;
};

// In one page: modelslim on `backend` (warm median of RUNS predictions of a sample photo, and
// page load → first top-5), then, when `ort` lists backends, onnxruntime-web on each with the
// model's ONNX and that photo's input as the engine gives them (the bytes stay in the page).
// `threads`: the page's `?threads=N` (1: the single-threaded module); `ort` lists
// [backend, threads] pairs, and the results are keyed `${backend}${threads}`.
async function measure(weights, backend, ort, threads = null) {
  const page = await browser.newPage();
  const t0 = Date.now();
  await page.goto(`${base}?weights=${weights}${backend === 'cpu' ? '&backend=cpu' : ''}${threads ? `&threads=${threads}` : ''}`);
  await page.waitForFunction(() => window.modelslimEngine?.modelInfo, null, { timeout: 300_000 });
  return page.evaluate(async ([runs, t0, eps]) => {
    const e = window.modelslimEngine;
    const bytes = new Uint8Array(await (await fetch('samples/chelsea.png')).arrayBuffer());
    const times = [];
    let firstTop5 = null;
    for (let i = 0; i < runs + 1; i++) {
      times.push(JSON.parse(await e.predict(bytes)).inference_ms);
      firstTop5 ??= Date.now() - t0;
    }
    const out = { modelslim: times.slice(1), cold: times[0], firstTop5, backend: document.querySelector('[data-testid=backend]').textContent };
    let onnx, input;
    try {
      if (eps.length) {
        await e.keepPhoto(bytes, 'chelsea.png');
        [onnx, input] = [await e.originalOnnx(), await e.photoInput(0)];
      }
    } catch (err) {
      out.wasmError = out.webgpuError = `this page cannot give its model to another runtime: ${err.message || err}`;
      return out;
    }
    const side = Math.round(Math.sqrt(input?.length / 3));
    // The page's own onnxruntime-web worker (www/ort-worker.js), one per backend, given the
    // whole npm package (served at /ort-all/) for its WebGPU backend.
    const { ortWorker } = await import('./runtime-check.js');
    for (const [ep, threads] of eps) {
      const ort = ortWorker();
      try {
        await ort.call({ type: 'load', name: 'fp32', bytes: onnx, threads, backend: ep, dir: '/ort-all/' });
        out[`${ep}${threads}`] = (await ort.call({ type: 'run', name: 'fp32', input, runs: runs + 1, hw: [side, side] })).times.slice(1);
      } catch (err) {
        out[`${ep}${threads}Error`] = String(err.message || err).split('\n')[0];
      } finally {
        ort.terminate();
      }
    }
    return out;
  }, [RUNS, t0, ort]).finally(() => page.close());
}

const m = (times) => (times ? median(times) : NaN);
const ms = (x) => (Number.isFinite(x) ? `${x.toFixed(0)} ms` : '–');
const errors = (name, r) => {
  for (const [k, v] of Object.entries(r)) if (k.endsWith('Error')) console.error(`onnxruntime-web ${k.slice(0, -5)} on ${name}: ${v}`);
};
console.log(`warm medians of ${RUNS} runs after one, one 224×224 photo, fp32; ratio = modelslim / onnxruntime-web\n`);
console.log('| model | modelslim CPU fallback, 1 thread | onnxruntime-web wasm, 1 thread | ratio | modelslim WebGPU | onnxruntime-web WebGPU | ratio | page load → first top-5 (CPU fallback, 1 thread) |');
console.log('|---|---:|---:|---:|---:|---:|---:|---:|');
const cpuOnly = Boolean(process.env.CPU_ONLY);
for (const [name, weights] of MODELS) {
  const cpu = await measure(weights, 'cpu', cpuOnly ? [['wasm', 1]] : [['wasm', 1], ['webgpu', 1]], 1);
  const gpu = cpuOnly ? { modelslim: null, cold: NaN, backend: 'WebGPU (not run)' } : await measure(weights, 'webgpu', []);
  errors(name, cpu);
  const [c, ow, g, og] = [m(cpu.modelslim), m(cpu.wasm1), m(gpu.modelslim), m(cpu.webgpu1)];
  console.log(`| ${name} | ${ms(c)} | ${ms(ow)} | ${(c / ow).toFixed(2)} | ${ms(g)} | ${ms(og)} | ${(g / og).toFixed(2)} | ` +
    `${(cpu.firstTop5 / 1e3).toFixed(2)} s |`);
  console.error(`${name}: ${cpu.backend} cold ${cpu.cold.toFixed(0)} ms; ${gpu.backend} cold ${gpu.cold.toFixed(0)} ms`);
}

// The CPU engine on every core: the threaded module with as many threads as the browser
// reports cores (up to 8, as the page starts it), against the single-threaded module and
// onnxruntime-web on as many threads and on one; ratio = modelslim / onnxruntime-web at its
// faster thread count.
const cores = await (async () => {
  const page = await browser.newPage();
  try { return await page.evaluate(() => navigator.hardwareConcurrency); } finally { await page.close(); }
})();
const n = Math.max(2, Math.min(8, cores));
console.log(`\n${cores} cores reported; ${n} threads\n`);
console.log(`| model | modelslim, 1 thread | modelslim, ${n} threads | speed-up | onnxruntime-web wasm, 1 thread | onnxruntime-web wasm, ${n} threads | ratio to its best |`);
console.log('|---|---:|---:|---:|---:|---:|---:|');
for (const [name, weights] of MODELS) {
  const one = await measure(weights, 'cpu', [['wasm', 1], ['wasm', n]], 1);
  const many = await measure(weights, 'cpu', [], n);
  errors(name, one);
  const [c1, cn, o1, on] = [m(one.modelslim), m(many.modelslim), m(one.wasm1), m(one[`wasm${n}`])];
  console.log(`| ${name} | ${ms(c1)} | ${ms(cn)} | ${(c1 / cn).toFixed(2)}× | ${ms(o1)} | ${ms(on)} | ${(cn / Math.min(o1, on)).toFixed(2)} |`);
  console.error(`${name}: ${many.backend}`);
}
await browser.close();
server.close();
