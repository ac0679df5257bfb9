// The page's decisions, as small pure functions: which integers int4 uses, what a form's typed
// values mean to the engine, what the agreement was measured on. No DOM, no engine.

/**
 * GPTQ keeps int4 usable where rounding to nearest wrecks it (README: EfficientNet-Lite0 int4
 * per channel 0.18 → 0.59 top-1), but it needs photos: once `advised` photos are there it is
 * int4's method, unless the user chose one. Returns the method the form should show.
 */
export function suggestedMethod({ quant, method, methodChosen, photoCount, advised }) {
  if (methodChosen || quant !== 'int4' || photoCount < advised) return method;
  return 'gptq';
}

// A setting as the form shows it: the core's numbers are f32, so 0.3 arrives as
// 0.30000001192092896; seven significant digits are what an f32 holds.
function shown(f, v) {
  if (f.kind === 'bool') return Boolean(v);
  if (f.kind === 'pairs') return Object.entries(v ?? {}).map(([k, x]) => `${k}=${x}`).join(', ');
  if (typeof v === 'number') return String(Number(v.toPrecision(7)));
  return String(v ?? '');
}

/** A field's typed text as the form shows it first: its default. */
export function initialValues(fields) {
  return Object.fromEntries(fields.map((f) => [f.name, shown(f, f.default)]));
}

/** A preset's settings as typed values of `fields` (settings the form does not show are left out). */
export function presetValues(fields, settings) {
  const out = {};
  for (const f of fields) {
    if (!(f.name in settings)) continue;
    out[f.name] = shown(f, settings[f.name]);
  }
  return out;
}

const capital = (s) => s.charAt(0).toUpperCase() + s.slice(1);

/** `"layer1.0.conv1=int4, fc=fp16"` → `{"layer1.0.conv1": "int4", fc: "fp16"}`; throws on a pair without `=`. */
export function parsePairs(label, raw) {
  const out = {};
  for (const pair of raw.split(/[,\s]+/).filter(Boolean)) {
    const at = pair.indexOf('=');
    if (at <= 0 || at === pair.length - 1) throw new Error(`${capital(label)}: "${pair}" is not NAME=VALUE`);
    out[pair.slice(0, at)] = pair.slice(at + 1);
  }
  return out;
}

function range(f) {
  const lo = f.min === undefined ? null : f.min_exclusive ? `above ${f.min}` : `at least ${f.min}`;
  if (f.min !== undefined && f.max !== undefined && !f.min_exclusive) return `between ${f.min} and ${f.max}`;
  if (lo && f.max !== undefined) return `${lo} and at most ${f.max}`;
  return lo ?? (f.max !== undefined ? `at most ${f.max}` : 'a number');
}

/**
 * The engine's options from the typed `values` of `fields`: numbers within the field's limits
 * (integers rounded), booleans, choices, name=value pairs, and free text and optional numbers
 * (left to the engine's default when empty). Throws one line naming the field that is out of
 * bounds, in the core's words (`what`).
 */
export function readFields(fields, values) {
  const out = {};
  for (const f of fields) {
    const raw = values[f.name];
    const empty = raw === undefined || raw === '';
    if (f.kind === 'bool') { out[f.name] = Boolean(raw); continue; }
    if (f.kind === 'choice' || f.kind === 'text') {
      if (!empty) out[f.name] = raw;
      continue;
    }
    if (f.kind === 'pairs') {
      if (!empty) out[f.name] = parsePairs(f.label, raw);
      continue;
    }
    if ((f.kind === 'optional_integer' || f.kind === 'optional_number') && empty) continue;
    const v = Number(raw);
    const low = f.min === undefined || (f.min_exclusive ? v > f.min : v >= f.min);
    const high = f.max === undefined || v <= f.max;
    if (empty || !Number.isFinite(v) || !low || !high) throw new Error(`${capital(f.what ?? f.label)} must be ${range(f)}`);
    out[f.name] = f.kind === 'number' || f.kind === 'optional_number' ? v : Math.round(v);
  }
  return out;
}

/** What the agreement of `report` was measured on, in words (the report's `agreement_photos`). */
export function agreementBasis(r) {
  const n = r.agreement?.n ?? 0;
  const photos = `${n} photo${n === 1 ? '' : 's'}`;
  switch (r.agreement_photos) {
    case 'held_back': {
      // A candidate of Auto's reports none: it was fitted during the search.
      const fitted = r.calibration_photos ? `; fitted on the other ${r.calibration_photos}` : '';
      return `on ${n} held-back photo${n === 1 ? '' : 's'} (not fitted on${fitted})`;
    }
    case 'fitting': return `on the ${photos} it was fitted on (optimistic: add photos so that some are held back)`;
    case 'unfitted': return `on ${photos} (no step fitted on photos)`;
    default: return `on ${photos}`;
  }
}

/** The compression result's headline. */
export function agreementText(r) {
  if (!r.agreement) return `No photos to compare on: upload some to see the agreement. Quantization: ${r.quantization}.`;
  const a = r.agreement;
  const same = Math.round(a.agreement * a.n);
  const interval = a.high > 0 ? `, 95 % interval ${(100 * a.low).toFixed(0)}–${(100 * a.high).toFixed(0)} %` : '';
  return `Top-1 agreement with the original ${agreementBasis(r)}: ${same} of ${a.n} ` +
    `(${(a.agreement * 100).toFixed(0)} %${interval}), mean KL ${a.kl.toFixed(4)}. Quantization: ${r.quantization}.`;
}

/** Why latency may not follow size here. */
export function benchNote(r, { kind, threads = 1 } = {}) {
  const backend = kind === 'wgpu' ? 'WebGPU' : `the CPU (wasm, ${threads === 1 ? 'one thread' : `${threads} threads`})`;
  let s = `Latency is measured here on ${backend}. Fewer channels mean fewer MACs and usually run faster;` +
    ' on WebGPU keep widths multiples of 8 ("round widths"): odd widths can cancel the gain.';
  if (r.quantization !== 'fp32') {
    s += ' Quantization makes the files smaller, but this page computes in float32 (it simulates the integer rounding to show you the exact predictions), so it does not run faster here; on int8 runtimes (ONNX Runtime, TFLite on ARM) the QDQ graph runs with integer kernels.';
  }
  return s;
}

/** The calibration advice under the form, from the core's counts. */
export function calibrationAdvice(c) {
  return 'Calibration (refitting after pruning, importance on photos, GPTQ, activations, bias correction, batch norms) uses the photos you uploaded in step 2: ' +
    `at least ${c.advised}, better ${c.better} or more, of the kind of images the model will see. ` +
    `With ${c.advised} or more, int4 uses GPTQ unless you choose otherwise.`;
}

/**
 * The engine's auto options from the panel's typed `form` ({kind, value, floor, deploy}): MB
 * become bytes, a percentage of the MACs a share, the floor a share; `deploy` is `onnx`,
 * `tflite` or `target:NAME` (a device: an empty budget is then the device's flash). Throws a
 * message naming the box.
 */
export function autoOptions(form) {
  const deploy = form.deploy || 'onnx';
  const target = deploy.startsWith('target:') ? deploy.slice('target:'.length) : null;
  const format = target ? 'tflite' : deploy;
  const floor = Number(form.floor);
  if (!(floor >= 0 && floor <= 100)) throw new Error('Auto: the agreement floor is a percentage between 0 and 100');
  const options = { min_agreement: floor / 100, format, ...(target ? { target } : {}) };
  if (target && String(form.value ?? '').trim() === '') return options;
  const value = Number(form.value);
  if (!(value > 0) || !Number.isFinite(value)) throw new Error(`Auto: the budget must be a number above 0${target ? ' (or empty: the device\'s flash)' : ''}`);
  let budget;
  if (form.kind === 'bytes') budget = { kind: 'bytes', value: Math.floor(value * 1e6) };
  else if (form.kind === 'macs') {
    if (value > 100) throw new Error('Auto: the share of the MACs to keep is at most 100 %');
    budget = { kind: 'macs', value: value / 100 };
  } else budget = { kind: 'ms', value };
  return { ...options, budget };
}

/** A preset's run as a point beside the search's candidates: its ONNX bytes, MAC share, agreement. */
export function presetPoint(name, report, bench = {}, floor = null) {
  const { original: o, compressed: c } = bench;
  return {
    name,
    bytes: report.after.bytes.onnx?.raw ?? null,
    macsShare: report.before.macs ? report.after.macs / report.before.macs : null,
    agreement: report.agreement?.agreement ?? null,
    agreementN: report.agreement?.n ?? null,
    agreementPhotos: report.agreement_photos ?? null,
    // The original's latency over the compressed model's, from warm runs of both (a cold run
    // alone says more of the first allocation than of the model).
    speedup: o?.warmRuns && c?.warmRuns ? o.median / c.median : null,
    floor,
  };
}

// Slower by less than this is within the noise of a few timed photos.
const SLOWER = 1.1;

/** Whether a preset's run (its presetPoint) made the model slower, beyond the timing noise. */
export const presetSlower = (run) => run.speedup !== null && run.speedup < 1 / SLOWER;

/**
 * What a preset cost on this model, once run (`run`: its presetPoint): null when it kept the
 * agreement floor and did not slow the model down on `backend`; else one sentence saying which.
 */
export function presetVerdict(run, backend) {
  const bad = [];
  if (run.agreement !== null && run.floor !== null && run.agreement < run.floor) {
    const of = run.agreementN ? `${Math.round(run.agreement * run.agreementN)} of ${run.agreementN} photos (${(100 * run.agreement).toFixed(0)} %)` : `${(100 * run.agreement).toFixed(0)} % of the photos`;
    bad.push(`agrees with the original on ${of}, below the ${(100 * run.floor).toFixed(0)} % floor set under Auto`);
  }
  if (presetSlower(run)) bad.push(`runs ×${(1 / run.speedup).toFixed(2)} slower than the original on ${backend}`);
  if (!bad.length) return null;
  return `"${run.name}" on this model ${bad.join(', and ')}: try another preset, or Auto with your budget and floor.`;
}

/** Whether a picked or dropped file is a photos' labels file (labels.csv: rows `file,class`). */
export const isPhotoLabels = (file) => file.name.toLowerCase() === 'labels.csv';

/** The runtime a deployed file runs in, as the page loads it: LiteRT for TFLite, else ONNX Runtime. */
export const deployRuntime = (format) => (format === 'tflite' ? { id: 'litert', label: 'LiteRT' } : { id: 'ort', label: 'ONNX Runtime' });

/** The runtime limit as typed: ms above 0, or null when the box is empty (time only). */
export function runtimeLimit(typed) {
  const t = String(typed ?? '').trim();
  if (t === '') return null;
  const ms = Number(t);
  if (!(ms > 0)) throw new Error('Auto: the limit in the runtime is a number of ms above 0 (or leave it empty to time only)');
  return ms;
}

/**
 * The candidate to keep once each was timed in `runtime` (`ms`, in candidate order), decided
 * as src/compress/auto/runtime.rs decides it for `modelslim auto --time-with` (a mirror: the
 * page's module has no room for the binding; both are tested on the same cases): among those
 * within the search's budget and fit for its device, under `limit` ms, the least KL of those
 * keeping the floor, else the most agreeing; none under it: the fastest of them. No limit: the
 * one shown stays. {index, under_limit, message}.
 */
export function runtimePick(a, ms, limit, runtime) {
  const at = (i) => `${i + 1} (${ms[i].toFixed(1)} ms)`;
  const idx = ms.map((_, i) => i);
  const fastest = (among) => among.reduce((b, i) => (b === undefined || ms[i] < ms[b] ? i : b), undefined);
  const timed = `${ms.length} candidates timed in ${runtime}, the fastest ${at(fastest(idx))}`;
  if (limit === null) return { index: a.shown, under_limit: true, message: timed };
  const c = a.candidates;
  const ok = (i) => c[i].fits && !c[i].target_problem;
  const under = idx.filter((i) => ok(i) && ms[i] <= limit);
  if (!under.length) {
    const index = fastest(idx.filter(ok)) ?? a.shown;
    return { index, under_limit: false, message: `${timed}: none within the budget runs under ${limit} ms there; the fastest is ${at(index)}` };
  }
  const floor = under.filter((i) => c[i].agreement >= a.options.min_agreement);
  const index = floor.length
    ? floor.reduce((b, i) => (c[i].kl < c[b].kl ? i : b))
    : under.reduce((b, i) => (c[i].agreement > c[b].agreement ? i : b));
  return {
    index,
    under_limit: true,
    message: `${timed}: kept ${at(index)}, the ${floor.length ? 'most faithful' : 'most agreeing (none keeps the floor)'} of the ${under.length} under ${limit} ms`,
  };
}

/** Where a candidate lies on the budget's axis: MB, % of the MACs, or ms. */
export function budgetMeasure(kind, c, macs0) {
  if (kind === 'bytes') return c.bytes / 1e6;
  if (kind === 'macs') return (100 * c.macs) / macs0;
  return c.ms ?? null;
}
