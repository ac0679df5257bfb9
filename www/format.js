// Numbers for people, and the statistics the page derives from the engine's answers: pure
// functions, no DOM, no engine.

/**
 * Min, median and p90 of `times` (ms) exactly as the engine defines them (src/timing.rs):
 * sorted ascending, the value at index round((n − 1) · p) (nearest rank; Rust's round, half
 * away from zero, is Math.round for these non-negative indices). `null` for no runs.
 */
export function latencyStats(times) {
  if (!times.length) return null;
  // f64::total_cmp: NaN after every number.
  const t = [...times].sort((a, b) => (Number.isNaN(a) ? 1 : Number.isNaN(b) ? -1 : a - b));
  const at = (p) => t[Math.round((t.length - 1) * p)];
  return { runs: t.length, min_ms: t[0], median_ms: at(0.5), p90_ms: at(0.9) };
}

export const fmtBytes = (n) => (n >= 1e6 ? `${(n / 1e6).toFixed(2)} MB` : `${(n / 1e3).toFixed(1)} kB`);
/** A board's flash or RAM, in the binary units boards are sold in: "16 GiB", "8 MiB", "512 KiB". */
export const fmtCapacity = (n) => {
  const [unit, size] = n >= 2 ** 30 ? ['GiB', 2 ** 30] : n >= 2 ** 20 ? ['MiB', 2 ** 20] : ['KiB', 2 ** 10];
  const v = n / size;
  return `${Number.isInteger(v) ? v : v.toFixed(1)} ${unit}`;
};
export const fmtCount = (n) => (n >= 1e6 ? `${(n / 1e6).toFixed(2)} M` : n.toLocaleString('en'));
export const fmtSeconds = (s) => (s >= 90 ? `${(s / 60).toFixed(0)} min` : `${s.toFixed(0)} s`);
export const fmtMs = (ms) => `${ms.toFixed(0)} ms`;

/**
 * A run's times at `now` (ms): elapsed since `t0`, and what is left of the numbered steps
 * counted from `stepsT0` (a candidate's start in Auto, else `t0`) at the pace of the steps done
 * — "1 min elapsed, about 40 s left" — or "…, this candidate about 40 s left" in Auto, whose
 * number of candidates is not known in advance.
 */
export function runTimes({ t0, stepsT0 = t0, step = 0, steps = 0, candidate = false }, now) {
  const elapsed = `${fmtSeconds((now - t0) / 1e3)} elapsed`;
  const done = step - 1;
  if (!(steps > 0 && done >= 1 && done < steps)) return elapsed;
  const left = fmtSeconds(((now - stepsT0) / done) * (steps - done) / 1e3);
  return `${elapsed}, ${candidate ? 'this candidate ' : ''}about ${left} left`;
}
export const plural = (n, word) => `${n} ${word}${n === 1 ? '' : 's'}`;
/** `{agreement, n, kl}` → "3 of 4 agree, KL 0.0123". */
export const fmtAgreement = (a) => `${Math.round(a.agreement * a.n)} of ${a.n} agree, KL ${a.kl.toFixed(4)}`;
/** A class label's first name ("tabby, tabby cat" → "tabby"). */
export const shortLabel = (label) => label.split(',')[0];

// The kind of a step's label: the layer's name taken out, so that the 60 layers of one step
// count as one row ("GPTQ: layer1.0.conv1 (layer 3 of 21)" → "GPTQ"; "refitting layer2.0.conv1
// to the original outputs (layer 4 of 9)" → "refitting … to the original outputs").
export function stepKind(label) {
  const m = label.match(/^(.*?)\s*\(layer \d+ of \d+\)$/);
  if (!m) return label;
  const text = m[1];
  const colon = text.indexOf(': ');
  if (colon > 0) return text.slice(0, colon);
  const words = text.split(' ');
  return words.length > 2 ? [words[0], '…', ...words.slice(2)].join(' ') : words[0];
}

/** `[{label, seconds}]` → `[{label, count, seconds}]` by step kind, in first-seen order. */
export function stepTable(steps) {
  const rows = new Map();
  for (const st of steps) {
    const k = stepKind(st.label);
    const row = rows.get(k) ?? { label: k, count: 0, seconds: 0 };
    row.count += 1;
    row.seconds += st.seconds;
    rows.set(k, row);
  }
  return [...rows.values()];
}

/** Per-step seconds from the times each progress message arrived (ms) and the run's end. */
export function stepSeconds(stepTimes, end) {
  return stepTimes.map((st, i) => ({ label: st.label, seconds: ((stepTimes[i + 1]?.start ?? end) - st.start) / 1e3 }));
}

/**
 * The class tied with an answer's top-1 (the same logit), or null. With int8 activations the
 * logits are rounded to the step the files store them in, so two classes can tie; the lower
 * class number wins, on the page (the engine's top-5) and in every runtime that runs the files.
 */
export function tiedWithTop(answer) {
  const [first, second] = answer.top5;
  return second && answer.logits[first.index] === answer.logits[second.index] ? second : null;
}

/** The largest |a[k] − b[k]|. */
export function maxAbsDiff(a, b) {
  return Math.max(...a.map((v, k) => Math.abs(v - b[k])));
}

/**
 * Another runtime's answers (www/runtime-check.js: ONNX Runtime, LiteRT) beside the page's `photos`: per photo both top-1s
 * of both models, whether they are the same, and the largest logit difference on the
 * compressed model; `agree` when every photo's are the same.
 */
export function ortComparison(r, photos) {
  const rows = r.photos.map((row) => {
    const p = photos.find((q) => q.index === row.index);
    const page = { original: p?.original?.top5[0] ?? null, compressed: p?.compressed?.top5[0] ?? null };
    const ort = { original: row.original.top5[0], compressed: row.compressed.top5[0] };
    return {
      name: p?.name ?? `photo ${row.index + 1}`, page, ort,
      same: page.original?.index === ort.original.index && page.compressed?.index === ort.compressed.index,
      delta: p?.compressed ? maxAbsDiff(row.compressed.logits, p.compressed.logits) : NaN,
    };
  });
  return {
    rows, agree: rows.every((x) => x.same), version: r.version, threads: r.threads,
    originalMs: latencyStats(r.original).median_ms, compressedMs: latencyStats(r.compressed).median_ms,
  };
}
