// Step 3b: recovering accuracy. The form from the core's distillation fields, the loss drawn
// as it falls, the held-back photos before and after.
import { byId, text, on } from './dom.js';
import { buildForm } from './form.js';
import { distillFields } from '../fields.js';
import { fmtAgreement, fmtSeconds } from '../format.js';

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
      text(svg.querySelector('title'), 'distillation loss per step');
    } else {
      const lo = Math.min(...d.losses);
      const span = Math.max(...d.losses) - lo || 1;
      const n = Math.max(d.losses.length - 1, 1);
      line.setAttribute('points', d.losses.map((l, i) => `${((400 * i) / n).toFixed(1)},${(115 - (105 * (l - lo)) / span).toFixed(1)}`).join(' '));
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
