// Actions that need the engine module that can train: recovering accuracy (distillation) and
// calibration images made from the model. Part of ./actions.js (same `ctx`).
import { distillFields, synthFields, synthOptions } from './fields.js';
import { readFields } from './policy.js';
import { fmtAgreement, fmtSeconds } from './format.js';

const message = (e) => (e && e.message) || String(e);

export function trainActions(ctx) {
  const { get, set } = ctx;

  // The first time: the engine restarts as the training module on the same backend, restored
  // from its own snapshot with the last compression's files, so what it trains (or writes as
  // TFLite: ./actions-deploy.js) is byte for byte what was compressed.
  async function ensureTraining(what = 'training engine') {
    if (ctx.engine.training) return;
    ctx.status(`loading the ${what} (once; the page loaded without it)…`);
    const t0 = performance.now();
    const e = ctx.engine;
    await e.restart(ctx.engineOptions({ prefer: e.backendKind === 'wgpu' ? 'auto' : 'cpu', reason: e.fallbackReason ?? undefined, training: true }),
      { compressed: Boolean(get().report) })
      .catch((err) => { throw new Error(`the ${what} did not load: ${message(err)}`); });
    await ctx.refreshBackend();
    set({ backend: { ...get().backend, trainingMs: Math.round(performance.now() - t0) } });
  }

  ctx.ensureTraining = ensureTraining;

  function distillStep(json) {
    const s = JSON.parse(json);
    const d = get().distill;
    let text = `step ${s.step} of ${s.steps} · loss ${s.loss.toFixed(4)} · ${(s.ms_per_step / 1e3).toFixed(2)} s per step · about ${fmtSeconds(s.remaining_s)} left`;
    if (s.held_out) text += ` · held-back photos: ${fmtAgreement(s.held_out)}`;
    if (d.stopping) text += ' · stopping after this step…';
    set({ distill: { ...d, losses: [...d.losses, s.loss], status: text } });
    return !get().distill.stopping;
  }

  async function distill() {
    ctx.clearError();
    if (!get().report) { ctx.fail('Compress first: distillation trains the compressed model.'); return; }
    if (ctx.engine.photoCount < 2) {
      ctx.fail('Recovering accuracy needs at least 2 photos (one is held back to measure it): add photos in step 2, or make calibration images there.');
      return;
    }
    let opts;
    try { opts = readFields(distillFields(get().spec), get().distillForm); } catch (e) { ctx.fail(message(e)); return; }
    try { await ensureTraining(); } catch (e) { ctx.fail(`Recovering accuracy failed: ${message(e)}.`); ctx.status('ready'); return; }
    set({ distill: { losses: [], status: 'starting…', result: null, stopping: false }, run: ctx.newRun('distill'), status: 'recovering accuracy (distillation)…' });
    try {
      const r = JSON.parse(await ctx.engine.distill(JSON.stringify(opts), distillStep));
      if (!r.improved) {
        // The engine kept the compressed model: its files, names and checks stand.
        set({ distill: { ...get().distill, result: r }, status: 'distillation improved on nothing: the compressed model is unchanged' });
        return;
      }
      const files = await ctx.readFiles();
      await ctx.compressedChanged({ keepDistill: true });
      set({
        photos: ctx.photosFrom(r.photos),
        report: { ...get().report, file_stem: r.file_stem, files },
        distill: { ...get().distill, result: r },
        status: `distilled: ${r.file_stem}`,
      });
    } catch (e) {
      ctx.fail(`Recovering accuracy failed: ${message(e)}. The compressed model is unchanged.`);
      ctx.status('ready');
    } finally {
      set({ run: null, distill: { ...get().distill, stopping: false } });
    }
  }

  async function synthesize() {
    ctx.clearError();
    if (!ctx.engine?.modelInfo) { ctx.fail('Load a model first.'); return; }
    const spec = get().spec;
    let read;
    try { read = readFields(synthFields(spec), get().synthForm); } catch (e) { ctx.fail(message(e)); return; }
    try { await ensureTraining(); } catch (e) { ctx.fail(`Making calibration images failed: ${message(e)}.`); ctx.status('ready'); return; }
    const seed = get().synthRuns;
    const opts = synthOptions(read, seed);
    set({ synthRuns: seed + 1, run: ctx.newRun('synthesize'), status: `making ${opts.n} calibration images from the model…` });
    try {
      const out = await ctx.engine.synthesize(JSON.stringify(opts), (json) => {
        const s = JSON.parse(json);
        return ctx.progress(null)(JSON.stringify({ step: s.step, steps: s.steps, label: `image batch ${s.batch} of ${s.batches}: statistics loss ${s.loss.toFixed(2)}` }));
      });
      ctx.addPhotos(out.images.map((png, i) => new File([png], `synthesized-${seed}-${i + 1}.png`, { type: 'image/png' })));
    } catch (e) {
      if (message(e) !== 'cancelled') ctx.fail(`Making calibration images failed: ${message(e)}`);
      ctx.status('ready');
    } finally {
      set({ run: null });
    }
  }

  ctx.public = {
    ...ctx.public,
    distill: () => ctx.enqueue(distill),
    stopDistill: () => set({ distill: { ...get().distill, stopping: true, status: `${get().distill.status} · stopping after this step…` } }),
    synthesize: () => ctx.enqueue(synthesize),
    setDistillField: (name, value) => set({ distillForm: { ...get().distillForm, [name]: value } }),
    setSynthField: (name, value) => set({ synthForm: { ...get().synthForm, [name]: value } }),
  };
  return {};
}
