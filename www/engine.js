// The page's one RPC to the engine. The engine runs in a dedicated worker (./engine-worker.js)
// where the browser starts module workers, else on the main thread behind a MessageChannel;
// either way ./engine-host.js answers the same messages and owns the session (weights, photos'
// bytes, class names), and the page holds no copy of them.
//
// Protocol (structured-clone messages; `id` pairs an answer with its request):
//   page → host
//     {type: 'init', id, module: {js, wasm, threads?}, prefer: 'auto' | 'cpu', reason?, restore?: Snapshot}
//         `threads`: the threaded module, whose pool of that many threads the host starts
//     {type: 'call', id, method, args, progress?: true}   method: a key of METHODS; with
//         `progress`, the host passes a callback as the last argument
//     {type: 'cancel', id}       the call's callback answers false from now on (the engine stops
//         after its current step)
//     {type: 'snapshot', id, compressed: boolean}         the session, to start another engine
//   host → page
//     {type: 'progress', id, data: string}   a step of call `id` (JSON); the page may cancel
//     {type: 'result', id, result, state: State} | {type: 'error', id, error: string, state}
//     {type: 'lost', reason: string}          the WebGPU device is gone; nothing on it runs again
//   State    = {backend, backendKind: 'wgpu' | 'cpu', fallbackReason, modelInfo, photoCount, training, threads}
//   Snapshot = {weights: {bytes, info} | {seed} | null, input: string | null (setInput's JSON),
//               photos: [{bytes, name}], labels: {text, name} | null, photoLabels: [{text, name}],
//               compressed: {safetensors: Uint8Array, card: string} | null}
//
// The engine comes in three modules. The page's has no training (Burn's autodiff would add a
// tenth to it); the one with it (distillation, synthesized images) is built beside it
// (scripts/training-module.sh) and started only when the user first asks for those. The
// threaded one (scripts/threaded-module.sh) runs on the CPU only, on every core, with training:
// a page on the CPU starts it where threads can share memory (`threadPlan`).
/** The calls the page makes: arguments → result. `transfer`: the byte arguments move to the engine. */
export const METHODS = {
  loadWeights: { transfer: true }, // (bytes: Uint8Array, info: string)
  loadSeeded: {},                  // (seed: number)
  setInput: {},                    // (JSON {size?: [h, w], resize?, mean?, std?, bgr?}): an ONNX network's preprocessing
  preprocessing: {},               // () → JSON {crop, crop_width?, resize, mean, std, bgr, fixed_size}
  setLabels: {},                   // (text: string, fileName?: string) → number of class names
  addPhoto: { transfer: true },    // (bytes, name) → JSON {index, name, preprocess_ms, original, compressed}
  keepPhoto: {},                   // (bytes, name) → index, unclassified
  addPhotoLabels: {},              // (text, name) → rows of a photos' labels file (labels.csv: file,class)
  predict: {},                     // (bytes, name?) → JSON {top5, logits, inference_ms, cold, …}
  predictAll: {},                  // () → JSON [{index, name, original, compressed}]
  clearPhotos: {},                 // ()
  evaluate: {},                    // () → JSON as `modelslim eval --json`: the compressed model scored, the original its reference
  compress: { progress: true },    // (settings JSON, onStep) → report JSON
  auto: { progress: true },        // ({budget?, min_agreement, format?, target?, held_out?} JSON, onStep) → report JSON (TFLite and targets: training module)
  chooseCandidate: {},             // (index) → JSON {compression, plan}
  benchmark: {},                   // ('original' | 'compressed', runs) → JSON {cold_ms, median_ms, p90_ms, runs}
  sensitivity: { progress: true }, // (quant, onStep) → JSON [{layer, kl, agreement}]
  download: {},                    // ('onnx' | 'safetensors' | 'card') → Uint8Array
  downloadName: {},                // (format) → file name
  originalOnnx: {},                // () → Uint8Array
  photoInput: {},                  // (index) → Float32Array, the network's input
  distill: { progress: true },     // (options JSON, onStep) → report JSON (training module)
  synthesize: { progress: true },  // (options JSON, onStep) → {report, images: [Uint8Array]} (training module)
  tflite: {},                      // ('float' | 'int8') → Uint8Array, the compressed model (training module)
  originalTflite: {},              // () → Uint8Array, the original as fp32 (training module)
  cHeader: {},                     // (name) → string, the compressed model's TFLite file as a C header (training module)
  targets: {},                     // () → JSON [{name, flash_bytes, ram_bytes, file_bytes, peak_activation_bytes, unsupported_ops, fits, message}] (training module)
  settingsSpec: {},                // () → JSON: the core's settings, limits, presets
  calibrationNeed: {},             // (settings JSON) → JSON or 'null'
  topFive: {},                     // (logits: Float32Array) → JSON [{index, label, prob}]
};

// The training module's files, next to the page; and the threaded module's (CPU only, with
// training: scripts/threaded-module.sh).
const TRAINING = { js: 'modelslim-training.js', wasm: 'modelslim-training_bg.wasm' };
const THREADED = { js: 'modelslim-threads.js', wasm: 'modelslim-threads_bg.wasm' };
// The most threads the engine starts: past this, a pool's wake-ups cost more than the cores give.
const MAX_THREADS = 8;

// The URLs of a wasm-bindgen module and its .wasm: the page's, which Trunk names by a hash of
// the build and writes into <meta> elements (Trunk.toml: no loader script, so the main thread
// never loads it), or the training or threaded module's (`which`), which carry that hash as a
// query so that a browser never pairs a cached module with a newer page.
function moduleUrls(which) {
  const meta = (name) => document.querySelector(`meta[name="${name}"]`)?.content;
  const js = meta('modelslim-engine');
  const wasm = meta('modelslim-engine-wasm');
  if (!js || !wasm) throw new Error('this page names no engine module (built without Trunk?)');
  const abs = (u) => new URL(u, document.baseURI).href;
  if (!which) return { js: abs(js), wasm: abs(wasm) };
  const build = js.match(/modelslim-([0-9a-f]+)\.js/)?.[1] ?? 'dev';
  return { js: abs(`${which.js}?build=${build}`), wasm: abs(`${which.wasm}?build=${build}`) };
}

/**
 * How many threads the engine on the CPU gets here: `{threads, why}`, `why` saying why it runs
 * on one. Threads share one memory, which browsers give only to cross-origin isolated pages; a
 * thread waiting for the others blocks, which only a worker may. `asked`: `?threads=N`.
 */
export function threadPlan({ asked = null, mainThread = false } = {}) {
  const one = (why) => ({ threads: 1, why });
  const cores = globalThis.navigator?.hardwareConcurrency || 1;
  let threads = Math.min(MAX_THREADS, cores);
  if (asked !== null) {
    threads = Number(asked);
    if (!Number.isInteger(threads) || threads < 1 || threads > 64) return one(`?threads=${asked} is not a thread count from 1 to 64`);
    if (threads === 1) return one('one thread was requested (?threads=1)');
  }
  if (mainThread) return one('the engine runs on the main thread, which may not wait for other threads');
  if (!globalThis.crossOriginIsolated || typeof SharedArrayBuffer === 'undefined') {
    return one('this page is not cross-origin isolated (its server sends no Cross-Origin-Opener-Policy and Cross-Origin-Embedder-Policy headers), so its threads cannot share memory');
  }
  if (threads < 2) return one('this browser reports one core');
  return { threads, why: null };
}

// A channel to a host: {post(message, transfer), onmessage, terminate()}.
function workerChannel() {
  if (typeof Worker === 'undefined') throw new Error('this browser has no module workers');
  const worker = new Worker('engine-worker.js', { type: 'module' });
  const ch = { inWorker: true, onmessage: null, onfail: null, post: (m, t) => worker.postMessage(m, t), terminate: () => worker.terminate() };
  worker.onmessage = (e) => ch.onmessage(e.data);
  worker.onerror = (e) => ch.onfail(e.message || 'the worker stopped');
  return ch;
}

// The host on this thread (imported only then): the engine's module loads here too.
async function mainThreadChannel() {
  const { engineHost } = await import('./engine-host.js');
  const { port1, port2 } = new MessageChannel();
  const host = engineHost((m, t) => port2.postMessage(m, t));
  port2.onmessage = (e) => host(e.data);
  const ch = { inWorker: false, onmessage: null, onfail: null, post: (m, t) => port1.postMessage(m, t), terminate: () => { port1.close(); port2.close(); } };
  port1.onmessage = (e) => ch.onmessage(e.data);
  return ch;
}

// One started host: `request(message, onProgress)` resolves to the result.
async function connect(channel, init) {
  let next = 0;
  const pending = new Map(); // id → {resolve, reject, onProgress}
  const conn = { state: null, onLost: null, inWorker: channel.inWorker };
  const failAll = (why) => {
    for (const p of pending.values()) p.reject(new Error(why));
    pending.clear();
  };
  channel.onmessage = (m) => {
    if (m.type === 'lost') {
      // Calls in flight will not finish on a lost device: fail them, and let the page recover.
      failAll(`the WebGPU device was lost (${m.reason})`);
      conn.onLost?.(m.reason);
      return;
    }
    const p = pending.get(m.id);
    if (!p) return;
    if (m.type === 'progress') {
      if (p.onProgress(m.data) === false) channel.post({ type: 'cancel', id: m.id });
      return;
    }
    pending.delete(m.id);
    if (m.state) conn.state = m.state;
    if (m.type === 'error') p.reject(new Error(m.error));
    else p.resolve(m.result);
  };
  channel.onfail = (why) => failAll(`the engine stopped: ${why}`);
  conn.request = (message, { onProgress, transfer = [] } = {}) => new Promise((resolve, reject) => {
    const id = next++;
    pending.set(id, { resolve, reject, onProgress });
    channel.post({ ...message, id }, transfer);
  });
  conn.terminate = () => { failAll('the engine was replaced'); channel.terminate(); };
  await conn.request({ type: 'init', ...init });
  return conn;
}

// On the CPU, where threads can share memory (`threadPlan`): the threaded module in a worker,
// `threads` of them. It has training in it, so it also serves a request for the training
// module. Resolves to `{conn, …}`, or `{why}` it does not run (then the single-threaded module
// does, and the page says why).
async function startThreaded(init, opts) {
  const plan = threadPlan({ asked: opts.threads ?? null, mainThread: opts.mainThread });
  if (plan.why !== null) return plan;
  let channel = null;
  try {
    channel = workerChannel();
    const conn = await connect(channel, { ...init, module: { ...moduleUrls(THREADED), threads: plan.threads } });
    return { conn, whyNotWorker: null, whyOneThread: null };
  } catch (e) {
    channel?.terminate();
    return { why: `the threaded engine did not start (${(e && e.message) || String(e)})` };
  }
}

async function start(opts, restore) {
  const init = { module: null, prefer: opts.prefer, reason: opts.reason, restore };
  const module = moduleUrls(opts.training ? TRAINING : null);
  // WebGPU runs the network where the page has it; the CPU engine runs on every core it may.
  const onCpu = opts.prefer === 'cpu' || !globalThis.navigator?.gpu;
  let whyOneThread = null;
  if (onCpu) {
    const threaded = await startThreaded(init, opts);
    if (threaded.conn) return threaded;
    whyOneThread = threaded.why;
  }
  let whyNotWorker = null;
  if (!opts.mainThread) {
    let channel = null;
    try {
      channel = workerChannel();
      const conn = await connect(channel, { ...init, module });
      // WebGPU exposed but no adapter or device (a blocklisted GPU): the engine fell back to
      // the CPU, where the threaded module runs faster, told why the CPU.
      if (!onCpu && conn.state.backendKind === 'cpu') {
        const threaded = await startThreaded({ ...init, prefer: 'cpu', reason: conn.state.fallbackReason }, opts);
        if (threaded.conn) {
          conn.terminate();
          return threaded;
        }
        whyOneThread = threaded.why;
      }
      return { conn, whyNotWorker, whyOneThread };
    } catch (e) {
      channel?.terminate();
      whyNotWorker = (e && e.message) || String(e);
    }
  } else {
    whyNotWorker = 'the main thread was requested (?engine=main)';
  }
  return { conn: await connect(await mainThreadChannel(), { ...init, module }), whyNotWorker, whyOneThread };
}

/**
 * Start an engine: `{prefer, reason, mainThread, training, threads}` (`threads`: `?threads=N`).
 * Resolves to a client with a method per METHODS entry (the last argument a callback for those
 * with `progress`), the engine's State as of its last answer (`state`, and a getter per field),
 * `inWorker`, `whyNotWorker`, `whyOneThread` (why an engine on the CPU runs on one thread),
 * `onLost`, and `restart(opts, {compressed})`: a new engine (another backend,
 * the training module) restored from this one's snapshot, replacing it in this same client.
 */
export async function createEngine(opts) {
  let current = await start(opts);
  const client = {
    get state() { return current.conn.state; },
    get inWorker() { return current.conn.inWorker; },
    get whyNotWorker() { return current.whyNotWorker; },
    get whyOneThread() { return current.whyOneThread; },
    onLost: null,
    call(method, args = []) {
      const spec = METHODS[method] ?? {};
      const onProgress = spec.progress ? args[args.length - 1] : undefined;
      const sent = spec.progress ? args.slice(0, -1) : args;
      const transfer = spec.transfer ? sent.filter((a) => ArrayBuffer.isView(a)).map((a) => a.buffer) : [];
      return current.conn.request({ type: 'call', method, args: sent, progress: Boolean(spec.progress) }, { onProgress, transfer });
    },
    async restart(next, { compressed }) {
      const snapshot = await current.conn.request({ type: 'snapshot', compressed }).catch(() => null);
      if (!snapshot) throw new Error('the engine did not hand over its session');
      const started = await start(next, snapshot);
      current.conn.terminate();
      current = started;
      current.conn.onLost = (why) => client.onLost?.(why);
    },
  };
  current.conn.onLost = (why) => client.onLost?.(why);
  for (const k of ['backend', 'backendKind', 'fallbackReason', 'modelInfo', 'photoCount', 'training', 'threads']) {
    Object.defineProperty(client, k, { get: () => current.conn.state?.[k] });
  }
  for (const m of Object.keys(METHODS)) client[m] = (...args) => client.call(m, args);
  return client;
}
