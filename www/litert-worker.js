// LiteRT.js in a worker of its own, for the page's "Check in LiteRT" (www/runtime-check.js): the
// runtime's inferences never block the page. ./litert/ holds the pinned npm package's module and
// CPU runtimes (copied by scripts/setup.sh, served with the page: no CDN), imported only when
// asked. A classic worker, because LiteRT.js loads its runtime script with importScripts.
let litert = null;
const models = new Map();

// {name, bytes}: compile one TFLite file for the CPU (wasm) runtime.
async function load(m) {
  if (!litert) {
    const dir = new URL('./litert/', self.location.href).href;
    try {
      litert = await import(`${dir}index.js`);
    } catch (e) {
      throw new Error(`this site does not serve LiteRT.js (${dir}index.js: ${e.message}); build the page after scripts/setup.sh, which copies it into www/litert/`);
    }
    // Its runtime looks for its .wasm beside this worker unless told where it is, and logs its
    // INFO and WARNING lines (which accelerators it registered) on stderr: those go to the
    // debug console, errors stay errors.
    const log = (line) => (/^(ERROR|FATAL)/.test(line) ? console.error : console.debug)(`LiteRT: ${line}`);
    self.Module = { locateFile: (file) => dir + file, print: log, printErr: log };
    await litert.loadLiteRt(dir);
  }
  models.set(m.name, await litert.loadAndCompile(new Uint8Array(m.bytes), { accelerator: 'wasm' }));
  return { threads: 1, version: '2.5.3' };
}

// `runs` inferences of one input (CHW floats, given to the file as NHWC); the logits of the last
// and every run's time (ms).
async function run(m) {
  const model = models.get(m.name);
  if (!model) throw new Error(`no LiteRT model '${m.name}'`);
  const { hw: [h, w], input } = m;
  const plane = h * w;
  const hwc = new Float32Array(3 * plane);
  for (let c = 0; c < 3; c++) for (let i = 0; i < plane; i++) hwc[i * 3 + c] = input[c * plane + i];
  const times = [];
  let logits = null;
  for (let r = 0; r < m.runs; r++) {
    const tensor = new litert.Tensor(hwc, [1, h, w, 3]);
    const t0 = performance.now();
    const out = await model.run(tensor);
    times.push(performance.now() - t0);
    tensor.delete();
    logits = out[0].toTypedArray().slice();
    for (const t of out) t.delete();
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
