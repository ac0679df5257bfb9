// The page's one state: every view renders from it, only actions (./actions.js) change it.
//
// Vanilla ES modules, no framework and no build step: nothing to install, audit or update, no
// bundler between these files and the browser (Trunk copies www/ as it is), and a state this
// small needs no more than an object, `update(patch)` and `subscribe(fn)`.
//
// The state is replaced, never mutated: `update({photos: [...]})` swaps the top-level keys it
// names, so a view can tell what changed by comparing references. This module holds the page's
// only mutable variables; the engine's own state (weights, photos' bytes) lives in its worker.

/** The page before the engine answers. */
export function initialState() {
  return {
    status: 'loading the engine…',
    error: null,           // one line for the user, or null
    // The engine's answer to "where do you run": see engine.js's State.
    backend: null,         // {name, kind, inWorker, whyNotWorker, fallbackReason, training, trainingMs, threads, whyOneThread}
    startup: { engine: null, model: null, firstTop5: null }, // ms since navigation
    spec: null,            // the core's settingsSpec()
    model: null,           // {info, random}
    labels: null,          // {file, count} once a class-names file was read, or {file, error}
    photos: [],            // [{id, name, thumb, original, compressed, preprocessMs, error}]
    timing: { cold: null, warm: [] }, // the original model's per-photo latencies (ms)
    form: { values: {}, methodChosen: false, presetNote: '', preset: null }, // compression settings as typed; `preset` while a preset's values are unchanged
    distillForm: {},       // distillation options as typed
    synthForm: {},         // synthesis options as typed
    run: null,             // {kind, progress: {step, steps, label}, cancel, stepTimes}
    report: null,          // the last compression's report, with page_seconds, steps and files
    bench: { original: null, compressed: null }, // {cold, median, p90, source, runs}
    ort: null,             // the last check in ONNX Runtime
    litert: null,          // the last check in LiteRT
    tflite: null,          // the compressed model's TFLite file {name, size, url}
    targets: null,         // how the compressed model's TFLite file fits each device (rows of `modelslim targets --json`), or {error} when TFLite cannot hold it
    sensitivity: null,     // rows, most sensitive first
    scores: null,          // labelled photos' scores (the engine's `evaluate`), or null when none is labelled
    autoForm: { kind: 'bytes', value: '8', floor: '80', deploy: 'onnx', runtimeMs: '' }, // the Auto panel as typed
    auto: null,            // the last search: {candidates, chosen, shown, options, message, …}
    presetRuns: {},        // preset id → {name, bytes, macsShare, agreement} of its last run
    distill: { losses: [], status: 'Compress first; then distillation trains the compressed model.', result: null, stopping: false },
    synthRuns: 0,          // seeds of the calibration images made so far
    benchRuns: '5',        // the benchmark's runs, as typed
  };
}

/**
 * What the page derived from the compressed model, as it is before anything is: the runtime
 * checks, the TFLite file and how it fits each device, the compressed model's latency, and
 * distillation's result. One rule: whenever the compressed model changes (a compression, Auto,
 * a chosen candidate, distillation) or is gone, all of it is patched back to this, and what is
 * cheap to measure again is measured again (the targets table, where the TFLite writer is
 * loaded). Keys whose value is an object are merged by the caller (`bench`).
 */
export function derivedFromCompressed(state, distillStatus) {
  return {
    ort: null,
    litert: null,
    tflite: null,
    targets: null,
    scores: null,
    bench: { ...state.bench, compressed: null },
    distill: { losses: [], status: distillStatus, result: null, stopping: false },
  };
}

/** A store over `state`: `get()`, `update(patch)`, `subscribe(fn)` (fn(state, changedKeys)). */
export function createStore(state = initialState()) {
  const listeners = new Set();
  return {
    get: () => state,
    update(patch) {
      const next = typeof patch === 'function' ? patch(state) : patch;
      const changed = Object.keys(next).filter((k) => next[k] !== state[k]);
      if (!changed.length) return;
      state = { ...state, ...next };
      for (const fn of listeners) fn(state, changed);
    },
    subscribe(fn) {
      listeners.add(fn);
      fn(state, Object.keys(state));
      return () => listeners.delete(fn);
    },
  };
}
