// Actions of the compress form and the results: compress, benchmark, check in ONNX Runtime or
// LiteRT, sensitivity. Part of ./actions.js (same `ctx`).
import { settingsFields } from './fields.js';
import { readFields, presetValues, autoOptions, presetPoint, runtimeLimit, runtimePick, deployRuntime } from './policy.js';
import { latencyStats, stepSeconds, ortComparison } from './format.js';
import { derivedFromCompressed } from './store.js';

const message = (e) => (e && e.message) || String(e);
const CHECK_MAX_PHOTOS = 8;

/** The warm (else cold) latencies of photo runs as a benchmark row's latency. */
function latencyFromRuns(warm, cold, source) {
  const t = latencyStats(warm.length ? warm : cold !== null ? [cold] : []);
  return t && { cold, median: t.median_ms, p90: t.p90_ms, source, warmRuns: warm.length };
}

export function compressActions(ctx) {
  const { get, set } = ctx;

  // Forget the last compression: its files, its comparison, what was measured of it.
  ctx.resetCompressed = () => {
    const s = get();
    for (const f of s.report?.files ?? []) URL.revokeObjectURL(f.url);
    ctx.resetTflite?.();
    set({
      ...derivedFromCompressed(s, 'Compress first; then distillation trains the compressed model.'),
      report: null,
      auto: null,
      photos: s.photos.map((p) => (p.compressed ? { ...p, compressed: null } : p)),
    });
  };

  // The compressed model changed: forget what was derived from the previous one (see
  // store.js), and measure again how its TFLite file fits each device where the module that
  // writes TFLite is loaded (elsewhere the table appears with the TFLite file).
  ctx.compressedChanged = async ({ keepDistill = false } = {}) => {
    ctx.resetTflite?.();
    const s = get();
    const derived = derivedFromCompressed(s, 'Ready: distillation trains the compressed model to give the original\'s answers on your photos.');
    set(keepDistill ? { ...derived, distill: s.distill } : derived);
    if (s.backend?.training) {
      try {
        set({ targets: JSON.parse(await ctx.engine.targets()) });
      } catch (e) {
        // A model TFLite cannot hold (scales per group, say): the table says why, no error.
        set({ targets: { error: message(e) } });
      }
    }
    await ctx.score();
  };

  // Score the photos whose folder or name gives their class (nothing shown when none does).
  ctx.score = async () => {
    if (!ctx.engine?.modelInfo || !ctx.engine.photoCount) return;
    try {
      const e = JSON.parse(await ctx.engine.evaluate());
      set({ scores: e.labelled ? e : null });
    } catch (e) {
      ctx.fail(`Scoring the labelled photos failed: ${message(e)}`);
    }
  };

  // The compressed model's files, read from the engine, offered as blob URLs (the previous
  // ones released: a blob URL holds its file until revoked). Its callers then call
  // compressedChanged, which forgets the previous model's TFLite file.
  ctx.readFiles = async () => {
    const files = [];
    for (const format of ['onnx', 'safetensors', 'card']) {
      const bytes = await ctx.engine.download(format);
      const type = format === 'card' ? 'application/json' : 'application/octet-stream';
      files.push({ format, name: await ctx.engine.downloadName(format), size: bytes.length, url: URL.createObjectURL(new Blob([bytes], { type })) });
    }
    for (const f of get().report?.files ?? []) URL.revokeObjectURL(f.url);
    return files;
  };

  // A progress sink for `run.kind`: the store hears each step; answers false once cancelled.
  ctx.progress = (stepTimes) => (json) => {
    const p = JSON.parse(json);
    stepTimes?.push({ label: p.label, start: performance.now() });
    // Auto announces each candidate before its steps: the steps are shown under its name.
    const announced = /^candidate \d+: /.test(p.label) && !p.steps;
    const candidate = announced ? p.label : get().run.candidate;
    const stepsT0 = announced ? performance.now() : get().run.stepsT0;
    set({ run: { ...get().run, progress: p, candidate, stepsT0 } });
    return !get().run.cancel;
  };

  ctx.photosFrom = (answers) => {
    const byIndex = new Map(answers.map((a, i) => [i, a]));
    return get().photos.map((p) => (byIndex.has(p.index) ? { ...p, compressed: byIndex.get(p.index) } : p));
  };

  async function compress() {
    ctx.clearError();
    const s = get();
    let opts;
    try {
      opts = readFields(settingsFields(s.spec), s.form.values);
    } catch (e) {
      ctx.fail(message(e));
      return;
    }
    if (!ctx.engine?.modelInfo) { ctx.fail('Load a model first.'); return; }
    const need = JSON.parse(await ctx.engine.calibrationNeed(JSON.stringify(opts)));
    if (need && ctx.engine.photoCount < need.min) {
      ctx.fail(`${need.message} (step 2: your photos, or "Make calibration images" from the model).`);
      return;
    }
    const stepTimes = [];
    set({ run: ctx.newRun('compress'), status: 'compressing…' });
    const t0 = performance.now();
    try {
      const report = JSON.parse(await ctx.engine.compress(JSON.stringify(opts), ctx.progress(stepTimes)));
      await showCompression(report, t0, stepTimes);
      const preset = get().form.preset;
      if (preset) {
        const p = s.spec.presets.find((q) => q.id === preset);
        const floor = Number(get().autoForm.floor);
        const run = presetPoint(p.name, report, get().bench, floor >= 0 && floor <= 100 ? floor / 100 : null);
        set({ presetRuns: { ...get().presetRuns, [preset]: run }, report: { ...get().report, preset } });
      }
    } catch (e) {
      const m = message(e);
      if (m === 'cancelled') ctx.status('compression cancelled; the original model is unchanged');
      else {
        ctx.fail(`Compression failed: ${m}. The original model is unchanged; adjust the settings and try again.`);
        ctx.status('ready');
      }
    } finally {
      set({ run: null });
    }
  }

  // A compression's report (from `compress`, `auto` or a chosen candidate) as the page's result:
  // its files, the compressed answers, first latencies from the photo runs.
  async function showCompression(report, t0, stepTimes) {
    const end = performance.now();
    // The files first, so that the whole report appears at once.
    const files = await ctx.readFiles();
    await ctx.compressedChanged();
    const t = get().timing;
    const warmC = report.photos.filter((a) => !a.cold).map((a) => a.inference_ms);
    const coldC = report.photos.find((a) => a.cold)?.inference_ms ?? null;
    set({
      report: { ...report, page_seconds: (end - t0) / 1e3, steps: stepSeconds(stepTimes, end), files },
      photos: ctx.photosFrom(report.photos),
      // First latencies from the photo runs already made (cold runs apart); "Measure latency"
      // replaces them with N timed runs after a warm-up.
      bench: { original: latencyFromRuns(t.warm, t.cold, 'from your photos'), compressed: latencyFromRuns(warmC, coldC, 'from your photos') },
      status: `compressed in ${report.seconds.toFixed(1)} s: ${report.file_stem}`,
    });
  }

  // The Auto panel: search within the budget, keep the best candidate, show every one.
  async function autoSearch() {
    ctx.clearError();
    const s = get();
    let options;
    try {
      options = autoOptions(s.autoForm);
    } catch (e) {
      ctx.fail(message(e));
      return;
    }
    if (!ctx.engine?.modelInfo) { ctx.fail('Load a model first.'); return; }
    if (ctx.engine.photoCount < 2) {
      ctx.fail('Auto fits on some of your photos and measures on others: upload at least 2 in step 2 (16 or more are better).');
      return;
    }
    const stepTimes = [];
    // A TFLite file, or a device's, is measured by the module that writes TFLite.
    if (options.format === 'tflite') {
      try {
        await ctx.ensureTraining('engine that writes TFLite');
      } catch (e) {
        ctx.fail(`Auto failed: ${message(e)}. The original model is unchanged.`);
        return;
      }
    }
    set({ run: ctx.newRun('auto'), status: 'searching…' });
    const t0 = performance.now();
    try {
      const r = JSON.parse(await ctx.engine.auto(JSON.stringify(options), ctx.progress(stepTimes)));
      await showCompression(r.compression, t0, stepTimes);
      const { compression, ...search } = r;
      set({ auto: { ...search, shown: r.chosen, page_seconds: (performance.now() - t0) / 1e3 } });
      const k = r.candidates[r.chosen];
      ctx.status(`${r.cancelled ? 'search stopped; ' : ''}kept candidate ${r.chosen + 1} of ${r.candidates.length}: ${k.label}`);
      if (r.message) ctx.fail(r.message);
    } catch (e) {
      const m = message(e);
      if (m === 'cancelled') ctx.status('search cancelled before any candidate was measured; the original model is unchanged');
      else ctx.fail(`Auto failed: ${m}. The original model is unchanged.`);
    } finally {
      set({ run: null });
    }
  }

  // Make candidate `i` of the last search the compressed model.
  async function chooseCandidate(i) {
    ctx.clearError();
    const a = get().auto;
    if (!a || i === a.shown) return;
    set({ run: ctx.newRun('auto'), status: `loading candidate ${i + 1}…` });
    const t0 = performance.now();
    try {
      const r = JSON.parse(await ctx.engine.chooseCandidate(i));
      await showCompression(r.compression, t0, []);
      set({ auto: { ...get().auto, shown: i, plan: r.plan } });
      ctx.status(`candidate ${i + 1} is the compressed model: ${a.candidates[i].label}`);
    } catch (e) {
      ctx.fail(`Loading candidate ${i + 1} failed: ${message(e)}`);
    } finally {
      set({ run: null });
    }
  }

  // Auto's candidates timed in the runtime their file deploys to (ONNX Runtime for ONNX,
  // LiteRT for TFLite); with a limit typed, the most faithful candidate under it is kept.
  async function timeInRuntime() {
    ctx.clearError();
    const a = get().auto;
    if (!a) { ctx.fail('Search first: Auto\'s candidates are what is timed in the runtime.'); return; }
    let limit;
    try {
      limit = runtimeLimit(get().autoForm.runtimeMs);
    } catch (e) {
      ctx.fail(message(e));
      return;
    }
    const runtime = deployRuntime(a.options.format);
    try {
      if (runtime.id === 'litert') await ctx.ensureTraining('engine that writes TFLite');
      const checks = await import('./runtime-check.js');
      const ms = await checks.timeCandidates({
        runtime,
        count: a.candidates.length,
        choose: async (i) => {
          await chooseCandidate(i);
          if (get().auto.shown !== i) throw new Error(`candidate ${i + 1} could not be loaded`);
        },
        file: () => (runtime.id === 'litert' ? ctx.engine.tflite('float') : ctx.engine.download('onnx')),
        engine: ctx.engine,
        runs: benchRuns(),
        status: ctx.status,
      });
      const pick = runtimePick(get().auto, ms, limit, runtime.label);
      set({ auto: { ...get().auto, runtime: { ms, limit, pick: pick.index, message: `${pick.message}.` } } });
      await chooseCandidate(pick.index);
      ctx.status(`${pick.message}.`);
      if (!pick.under_limit) ctx.fail(`${pick.message}: raise the limit, or search with a smaller budget.`);
    } catch (e) {
      ctx.fail(`Timing the candidates failed: ${message(e)}.`);
    }
  }

  // The benchmark panel's "Runs", within the field's bounds.
  const benchRuns = () => Math.max(1, Math.min(50, Math.round(Number(get().benchRuns) || 5)));

  async function benchmark() {
    ctx.clearError();
    const runs = benchRuns();
    for (const which of ['original', 'compressed']) {
      if (which === 'compressed' && !get().report) continue;
      ctx.status(`benchmarking the ${which} model: ${runs} runs after a warm-up…`);
      const b = JSON.parse(await ctx.engine.benchmark(which, runs));
      const row = { cold: b.cold_ms, median: b.median_ms, p90: b.p90_ms, source: `${b.runs} runs after a warm-up`, warmRuns: b.runs };
      set({ bench: { ...get().bench, [which]: row } });
    }
    ctx.status(`benchmark done (${runs} warm runs each, on ${get().backend.name})`);
  }

  // A check in another runtime: `ort` (the ONNX files in onnxruntime-web) or `litert` (the
  // TFLite files in LiteRT.js, written by the engine module loaded on demand).
  async function runtimeCheck(kind) {
    ctx.clearError();
    const what = kind === 'ort' ? { label: 'ONNX Runtime', files: 'ONNX' } : { label: 'LiteRT', files: 'TFLite' };
    if (!get().report) {
      ctx.fail(`Compress first: the check runs the original and the compressed ${what.files} file in ${what.label}.`);
      return;
    }
    if (kind === 'litert') await ctx.ensureTraining('engine that writes TFLite');
    const runs = benchRuns();
    const checks = await import('./runtime-check.js');
    const r = await (kind === 'ort' ? checks.checkInOnnxRuntime : checks.checkInLiteRt)({
      engine: ctx.engine,
      topFive: async (logits) => JSON.parse(await ctx.engine.topFive(logits)),
      runs,
      maxPhotos: CHECK_MAX_PHOTOS,
      status: ctx.status,
    });
    set({
      [kind]: { ...ortComparison(r, get().photos.filter((p) => p.index !== undefined)), runs },
      status: `${what.label} check done on ${r.photos.length} photo(s)`,
    });
  }

  async function sensitivity(quant) {
    ctx.clearError();
    if (!ctx.engine.photoCount) {
      ctx.fail('Sensitivity is measured on your photos: upload some in step 2 first.');
      return;
    }
    set({ run: ctx.newRun('sensitivity') });
    try {
      const rows = JSON.parse(await ctx.engine.sensitivity(quant, ctx.progress(null)));
      set({ sensitivity: rows, status: `sensitivity measured on ${ctx.engine.photoCount} photo(s); the top layers are candidates to keep in higher precision` });
    } catch (e) {
      if (message(e) !== 'cancelled') ctx.fail(`Sensitivity failed: ${message(e)}`);
    } finally {
      set({ run: null });
    }
  }

  function setField(name, value) {
    const f = get().form;
    set({ form: { ...f, values: { ...f.values, [name]: value }, methodChosen: f.methodChosen || name === 'quant_method', preset: null } });
    if (name === 'quant') ctx.suggest();
  }

  function applyPreset(id) {
    const s = get();
    const p = s.spec?.presets.find((q) => q.id === id);
    if (!p) return;
    const values = { ...s.form.values, ...presetValues(settingsFields(s.spec), p.settings) };
    set({ form: { ...s.form, values, presetNote: p.note, preset: p.id } });
    ctx.suggest();
  }

  ctx.public = {
    ...ctx.public,
    setField,
    applyPreset,
    compress: () => ctx.enqueue(compress),
    cancel: () => { if (get().run) set({ run: { ...get().run, cancel: true }, status: 'cancelling after the current step…' }); },
    setBenchRuns: (v) => set({ benchRuns: v }),
    setAutoForm: (name, value) => {
      const f = { ...get().autoForm, [name]: value };
      // A device's own budget is its flash: the box empties for it, and refills for a file.
      if (name === 'deploy' && value.startsWith('target:') && f.kind === 'bytes') f.value = '';
      if (name === 'deploy' && !value.startsWith('target:') && f.value === '') f.value = '8';
      set({ autoForm: f });
    },
    // The targets table's "Auto for this device": Auto for it, the floor as typed.
    autoForTarget: (name) => {
      set({ autoForm: { ...get().autoForm, kind: 'bytes', value: '', deploy: `target:${name}` } });
      return ctx.enqueue(autoSearch);
    },
    autoSearch: () => ctx.enqueue(autoSearch),
    chooseCandidate: (i) => ctx.enqueue(() => chooseCandidate(i)),
    timeInRuntime: () => ctx.enqueue(timeInRuntime),
    benchmark: () => ctx.enqueue(benchmark),
    ortCheck: () => ctx.enqueue(() => runtimeCheck('ort')),
    litertCheck: () => ctx.enqueue(() => runtimeCheck('litert')),
    sensitivity: (quant) => ctx.enqueue(() => sensitivity(quant)),
  };
  return {};
}
