// Step 3's Auto panel: the budget and floor as typed, and the search's candidates drawn as
// budget measure (MB, % of the MACs, ms) against agreement on the held-out photos — the Pareto
// front filled, the kept one ringed, the presets the user ran as squares. Clicking a candidate
// makes it the compressed model.
import { byId, clone, text, on } from './dom.js';
import { svgEl as el, tickLabel as label, axes } from './svg.js';
import { budgetMeasure, deployRuntime } from '../policy.js';

const BOX = { W: 560, H: 240, LEFT: 48, RIGHT: 12, TOP: 10, BOTTOM: 34 };
const { W, H, LEFT, RIGHT, TOP, BOTTOM } = BOX;
const UNIT = { bytes: 'MB', macs: '% of the MACs', ms: 'ms per photo' };
const FORMAT = { onnx: 'ONNX', tflite: 'TFLite' };

// The budget's unit for people: "MB of TFLite".
const unitOf = (a) => (a.options.budget.kind === 'bytes' ? `MB of ${FORMAT[a.options.format] ?? 'ONNX'}` : UNIT[a.options.budget.kind]);

function draw(svg, a, presets, actions) {
  const kind = a.options.budget.kind;
  const unit = unitOf(a);
  const macs0 = a.candidates[0].macs;
  const limit = kind === 'bytes' ? a.options.budget.value / 1e6 : kind === 'macs' ? 100 * a.options.budget.value : a.options.budget.value;
  const points = a.candidates.map((c, i) => ({ c, i, x: budgetMeasure(kind, c, macs0), y: c.agreement }))
    .filter((p) => p.x !== null && Number.isFinite(p.x));
  // A preset's point is its ONNX file's: beside a TFLite budget it would mislead.
  const shown = kind === 'ms' || (kind === 'bytes' && a.options.format === 'tflite') ? [] : Object.entries(presets)
    .map(([id, p]) => ({ id, p, x: kind === 'bytes' ? p.bytes / 1e6 : 100 * p.macsShare, y: p.agreement }))
    .filter((q) => q.y !== null && Number.isFinite(q.x));
  // Zoomed on the budget: the axis spans what lies within twice the budget; anything beyond
  // (the fp32 original, often) sits on the right edge, its value in its tooltip. A budget far
  // beyond every candidate (a device's flash) is not drawn to scale: its line sits on the
  // right edge, labelled with its value.
  const near = [...points.map((p) => p.x), ...shown.map((q) => q.x)].filter((x) => x <= 2 * limit);
  const farBudget = near.length > 0 && limit > 1.5 * Math.max(...near);
  const lo = Math.min(...(farBudget ? near : [limit, ...near]));
  const hi = Math.max(...(farBudget ? near : [limit, ...near]));
  const pad = (hi - lo) * 0.08 || hi * 0.05 || 1;
  const xMin = Math.max(0, lo - pad), xMax = hi + pad;
  const ys = [...points.map((p) => p.y), ...shown.map((q) => q.y)];
  const yMin = Math.max(0, Math.min(...ys, 1) - 0.05);
  const sx = (x) => LEFT + ((W - LEFT - RIGHT) * (Math.min(x, xMax) - xMin)) / (xMax - xMin);
  const sy = (y) => TOP + ((H - TOP - BOTTOM) * (1 - y)) / Math.max(1e-9, 1 - yMin);
  const parts = [
    ...axes(BOX, 'agreement (held-out photos)', 14),
    el('line', { x1: sx(limit), y1: TOP, x2: sx(limit), y2: H - BOTTOM, class: 'budget' }, `budget: ${limit} ${unit}`),
  ];
  parts.push(label((LEFT + W - RIGHT) / 2, H - 4, `${unit} (dashed: the budget)`));
  parts.push(label(4, TOP + 8, `${(100).toFixed(0)} %`, 'start'));
  parts.push(label(4, H - BOTTOM, `${(100 * yMin).toFixed(0)} %`, 'start'));
  parts.push(label(LEFT, H - BOTTOM + 14, xMin.toPrecision(3), 'start'));
  parts.push(label(W - RIGHT, H - BOTTOM + 14, xMax.toPrecision(3), 'end'));
  if (farBudget) parts.push(label(W - RIGHT - 4, TOP + 12, `budget ${limit.toPrecision(3)} →`, 'end'));
  for (const q of shown) {
    parts.push(el('rect', { x: sx(q.x) - 5, y: sy(q.y) - 5, width: 10, height: 10, class: 'preset', 'data-preset': q.id },
      `preset "${q.p.name}": ${q.x.toPrecision(3)} ${unit}, agreement ${(100 * q.y).toFixed(0)} % (on the photos its own run measured)`));
  }
  // The shown one first, so that it never covers another drawn at the same place.
  points.sort((p, q) => (q.i === a.shown) - (p.i === a.shown));
  for (const p of points) {
    const c = p.c;
    const cls = ['candidate', c.pareto ? 'pareto' : '', c.fits ? '' : 'over', p.i === a.shown ? 'shown' : '', p.x > xMax ? 'beyond' : ''].filter(Boolean).join(' ');
    const data = { 'data-candidate': p.i, 'data-bytes': c.bytes, 'data-fits': c.fits, 'data-full-integer': c.full_integer };
    if (c.tflite_bytes != null) Object.assign(data, { 'data-tflite-bytes': c.tflite_bytes, 'data-peak-bytes': c.peak_activation_bytes });
    const dot = el('circle', { cx: sx(p.x), cy: sy(p.y), r: p.i === a.shown ? 7 : 5, class: cls, ...data, tabindex: 0 },
      `${p.i + 1}. ${c.label}: ${p.x.toPrecision(3)} ${unit}${p.x > xMax ? ' (beyond the axis)' : ''}, agreement ${(100 * c.agreement).toFixed(0)} %, KL ${c.kl.toExponential(2)}` +
      `${c.target_problem ? `, not for the device: ${c.target_problem.replace(/; would fit: .*$/, '')}` : c.fits ? '' : ', over the budget'}${c.pareto ? ', on the Pareto front' : ''} — click to use it`);
    dot.addEventListener('click', () => actions.chooseCandidate(p.i));
    dot.addEventListener('keydown', (e) => { if (e.key === 'Enter') actions.chooseCandidate(p.i); });
    parts.push(dot);
  }
  svg.replaceChildren(...parts);
}

// Every candidate as a row, for points drawn on top of each other and for keyboards.
function rows(a, actions) {
  const macs0 = a.candidates[0].macs;
  return a.candidates.map((c, i) => {
    const tr = clone('tpl-auto-row');
    const cell = (cls, v) => { tr.querySelector(`.${cls}`).textContent = v; };
    cell('n', `${i + 1}${i === a.chosen ? '*' : ''}`);
    cell('label', `${c.label}${c.target_problem ? ` (not for the device: ${c.target_problem.replace(/; would fit: .*$/, '')})` : c.fits ? '' : ' (over the budget)'}`);
    cell('mb', (c.bytes / 1e6).toFixed(2));
    cell('macs', `${((100 * c.macs) / macs0).toFixed(0)} %${c.ms != null ? `, ${c.ms.toFixed(1)} ms` : ''}`);
    cell('agreement', `${(100 * c.agreement).toFixed(0)} %`);
    cell('kl', c.kl.toExponential(2));
    const rt = a.runtime?.ms[i];
    cell('rt', rt != null ? rt.toFixed(1) : '');
    if (rt != null) tr.querySelector('.rt').dataset.ms = rt;
    tr.title = `built and measured in ${c.seconds.toFixed(1)} s${i === a.chosen ? '; * the one the search kept' : ''}`;
    if (i === a.shown) tr.classList.add('shown');
    const use = tr.querySelector('.use');
    use.dataset.candidate = i;
    use.disabled = i === a.shown;
    use.textContent = i === a.shown ? 'in use' : 'Use';
    use.addEventListener('click', () => actions.chooseCandidate(i));
    return tr;
  });
}

const FIELDS = [['auto-kind', 'kind'], ['auto-value', 'value'], ['auto-floor', 'floor'], ['auto-deploy', 'deploy'], ['auto-runtime-ms', 'runtimeMs']];

export function mountAuto(store, actions) {
  for (const [id, name] of FIELDS) {
    byId(id).addEventListener('input', (e) => actions.setAutoForm(name, e.target.value));
  }
  byId('auto').addEventListener('click', actions.autoSearch);
  byId('auto-runtime').addEventListener('click', actions.timeInRuntime);
  // The devices of the targets table, after the two files.
  on(store, ['spec'], (s) => {
    const select = byId('auto-deploy');
    select.querySelectorAll('option[data-target]').forEach((o) => o.remove());
    for (const t of s.spec?.targets ?? []) {
      const o = document.createElement('option');
      Object.assign(o, { value: `target:${t.name}`, textContent: `on ${t.name} (TFLite${t.full_integer_only ? ', full integer' : ''})` });
      o.dataset.target = t.name;
      select.append(o);
    }
  });
  // The form as the store holds it (a device empties the budget; its button fills the form).
  on(store, ['autoForm', 'spec'], (s) => {
    for (const [id, name] of FIELDS) {
      const e = byId(id);
      if (e.value !== s.autoForm[name]) e.value = s.autoForm[name];
    }
    byId('auto-value').placeholder = s.autoForm.deploy.startsWith('target:') ? 'its flash' : '';
  });
  on(store, ['auto', 'presetRuns'], (s) => {
    const a = s.auto;
    const svg = byId('auto-chart');
    // An SVG element has no `hidden` property: the attribute itself.
    svg.toggleAttribute('hidden', !a);
    byId('auto-table').hidden = !a;
    byId('auto-runtime-row').hidden = !a;
    if (!a) return;
    // The runtime the kept file deploys to: ONNX Runtime for ONNX, LiteRT for TFLite.
    const runtime = deployRuntime(a.options.format).label;
    text(byId('auto-runtime'), `Time the candidates in ${runtime}`);
    text(byId('auto-rt-head'), `ms in ${runtime}`);
    draw(svg, a, s.presetRuns, actions);
    byId('auto-rows').replaceChildren(...rows(a, actions));
    const k = a.candidates[a.chosen];
    text(byId('auto-status'),
      `${a.candidates.length} candidates in ${a.page_seconds.toFixed(1)} s` +
      `${a.cost_seconds > 0 ? ` (per-layer costs ${a.cost_seconds.toFixed(1)} s)` : a.candidates.some((c) => /^(per channel|per tensor|groups of)/.test(c.label)) ? ' (per-layer costs of the last search reused)' : ''}, ` +
      `fitted on ${a.fit_images} photos and measured on ${a.held_out_images} held out. ` +
      `Kept ${a.chosen + 1}: ${k.label} — agreement ${(100 * k.agreement).toFixed(0)} %, KL ${k.kl.toExponential(2)}` +
      `${k.tflite_bytes != null ? `; TFLite ${(k.tflite_bytes / 1e6).toFixed(2)} MB, activations ${(k.peak_activation_bytes / 1e6).toFixed(2)} MB${k.full_integer ? ', full integer' : ''}` : ''}` +
      `${a.options.target ? `, for ${a.options.target}` : ''}` +
      `${a.shown !== a.chosen ? `; showing ${a.shown + 1}` : ''}.` +
      `${a.floor_note ? ` Note: ${a.floor_note}.` : ''}` +
      `${a.runtime ? ` ${a.runtime.message}` : ''}`);
  });
}
