// Step 3b: recovering accuracy. The form from the core's distillation fields, the loss drawn
// as it falls, the held-back photos before and after.
import { byId, text, on } from './dom.js';
import { buildForm } from './form.js';
import { svgEl, tickLabel as tick, axes } from './svg.js';
import { distillFields } from '../fields.js';
import { fmtAgreement, fmtSeconds } from '../format.js';

const BOX = { W: 560, H: 170, LEFT: 62, RIGHT: 12, TOP: 10, BOTTOM: 34 };
const { W, H, LEFT, RIGHT, TOP, BOTTOM } = BOX;

// The loss of each step (step 1 first) on labelled axes; the step whose model was kept ringed.
function drawLoss(svg, losses, bestStep) {
  const lo = Math.min(...losses), hi = Math.max(...losses);
  const span = hi - lo || Math.abs(hi) || 1;
  const n = losses.length;
  const sx = (step) => LEFT + ((W - LEFT - RIGHT) * (step - 1)) / Math.max(n - 1, 1);
  const sy = (l) => TOP + ((H - TOP - BOTTOM) * (hi - l)) / span;
  svg.querySelector('polyline').setAttribute('points', losses.map((l, i) => `${sx(i + 1).toFixed(1)},${sy(l).toFixed(1)}`).join(' '));
  const parts = [
    ...axes(BOX, 'loss (KL to the original)', 12),
    tick(LEFT - 4, TOP + 8, hi.toPrecision(3), 'end'),
    tick(LEFT - 4, H - BOTTOM, lo.toPrecision(3), 'end'),
    tick(LEFT, H - BOTTOM + 14, '1', 'start'),
    tick(W - RIGHT, H - BOTTOM + 14, String(n), 'end'),
    tick((LEFT + W - RIGHT) / 2, H - 4, bestStep ? 'step (ringed: the step kept)' : 'step', 'middle'),
  ];
  if (bestStep >= 1 && bestStep <= n) parts.push(svgEl('circle', { cx: sx(bestStep), cy: sy(losses[bestStep - 1]), r: 5, class: 'best' }));
  svg.querySelector('.axes').replaceChildren(...parts);
}

export function mountDistill(store, actions) {
  byId('distill').addEventListener('click', actions.distill);
  byId('distill-stop').addEventListener('click', actions.stopDistill);
  let sync = null;
  on(store, ['spec'], (s) => {
    if (!s.spec) return;
    sync = buildForm(byId('distill-form'), distillFields(s.spec), { idOf: (name) => `distill-${name}`, onInput: actions.setDistillField });
  });
  on(store, ['distillForm', 'spec'], (s) => sync?.(s.distillForm));

  on(store, ['distill'], (s) => {
    const d = s.distill;
    text(byId('distill-status'), d.status);
    const svg = byId('loss-curve');
    const line = svg.querySelector('polyline');
    svg.dataset.points = d.losses.length;
    if (!d.losses.length) {
      line.setAttribute('points', '');
      svg.querySelector('.axes').replaceChildren();
      text(svg.querySelector('title'), 'distillation loss per step');
    } else {
      drawLoss(svg, d.losses, d.result?.best_step ?? null);
      text(svg.querySelector('title'), `loss ${d.losses[0].toFixed(4)} → ${d.losses[d.losses.length - 1].toFixed(4)} over ${d.losses.length} steps`);
    }
    svg.toggleAttribute('hidden', !d.losses.length); // an SVG element has no .hidden
    const res = byId('distill-result');
    const r = d.result;
    res.hidden = !r;
    if (!r) {
      for (const k of ['before', 'after', 'bestStep']) delete res.dataset[k];
      return;
    }
    Object.assign(res.dataset, { before: r.before.agreement, after: r.after.agreement, bestStep: r.best_step });
    text(res, `Held-back photos (${r.held_out_images}, not trained on): before ${fmtAgreement(r.before)}; after ${fmtAgreement(r.after)}` +
      ` (the model of step ${r.best_step} of ${r.steps}${r.cancelled ? ', stopped early' : ''}). ` +
      `${r.steps} steps on ${r.train_images} photo(s), ${(r.ms_per_step / 1e3).toFixed(2)} s per step, ${fmtSeconds(r.seconds)} in all. ` +
      (r.improved ? 'The downloads are the distilled model.' : 'No step improved on the start: the compressed model and its downloads stay as they were (try more steps, another learning rate or more photos).'));
  });
}
