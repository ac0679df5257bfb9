// Step 3: the compress form (generated from the core's settings), its presets, the run's
// progress, and the result's headline and step times.
import { byId, clone, text, on } from './dom.js';
import { buildForm } from './form.js';
import { settingsFields } from '../fields.js';
import { agreementText, calibrationAdvice } from '../policy.js';
import { stepTable } from '../format.js';

export function mountCompress(store, actions) {
  byId('compress').addEventListener('click', actions.compress);
  byId('cancel').addEventListener('click', actions.cancel);

  let sync = null;
  on(store, ['spec'], (s) => {
    if (!s.spec) return;
    sync = buildForm(byId('compress-form'), settingsFields(s.spec), {
      idOf: (name) => name.replaceAll('_', '-'), onInput: actions.setField, grouped: true,
    });
    const presets = byId('presets');
    presets.replaceChildren('Presets: ');
    for (const p of s.spec.presets) {
      const b = clone('tpl-preset');
      b.textContent = p.name;
      b.title = p.note;
      b.dataset.preset = p.id;
      b.addEventListener('click', () => actions.applyPreset(p.id));
      presets.append(b);
    }
    text(byId('calibration-advice'), calibrationAdvice(s.spec.calibration));
  });
  // Once run, a preset's button says what it kept.
  on(store, ['spec', 'presetRuns'], (s) => {
    for (const p of s.spec?.presets ?? []) {
      const b = byId('presets').querySelector(`[data-preset="${p.id}"]`);
      const run = s.presetRuns[p.id];
      if (b) text(b, run?.agreement != null ? `${p.name} · ${(100 * run.agreement).toFixed(0)} % agree` : p.name);
    }
  });
  on(store, ['form', 'spec'], (s) => {
    sync?.(s.form.values);
    text(byId('preset-note'), s.form.presetNote);
  });

  on(store, ['run'], (s) => {
    const r = s.run;
    const busy = Boolean(r);
    byId('compress').disabled = busy;
    byId('distill').disabled = busy;
    byId('cancel').hidden = !r || r.kind === 'distill';
    byId('auto').disabled = busy;
    byId('distill-stop').hidden = r?.kind !== 'distill';
    const p = r?.progress;
    byId('progress').hidden = !p || r.kind === 'distill';
    if (p) {
      byId('progress-bar').value = p.steps ? (p.step - 1) / p.steps : 0.95;
      const step = p.steps ? `step ${p.step} of ${p.steps}: ${p.label}` : p.label;
      text(byId('progress-label'), r.candidate && r.candidate !== p.label ? `${r.candidate} — ${step}` : step);
    }
  });

  on(store, ['report', 'backend'], (s) => {
    const r = s.report;
    const ag = byId('agreement');
    ag.hidden = !r || Boolean(r.agreementHidden);
    const details = byId('steps-timing');
    details.hidden = !r;
    if (!r) return;
    text(ag, agreementText(r));
    // For the tests: the agreement as measured, and on what.
    if (r.agreement) {
      ag.dataset.agreement = r.agreement.agreement;
      ag.dataset.n = r.agreement.n;
    } else {
      delete ag.dataset.agreement;
      delete ag.dataset.n;
    }
    if (r.agreement_photos) ag.dataset.agreementPhotos = r.agreement_photos;
    else delete ag.dataset.agreementPhotos;
    const rows = stepTable(r.steps);
    // A candidate loaded from Auto's search ran no step here: its steps ran in the search.
    text(byId('steps-summary'), r.steps.length
      ? `Compression took ${r.page_seconds.toFixed(1)} s on ${s.backend?.name}: ${rows.length} kind(s) of step, ${r.steps.length} in all.`
      : `Loaded in ${r.page_seconds.toFixed(1)} s from the search, which built it.`);
    details.dataset.steps = JSON.stringify(r.steps);
    byId('steps-rows').replaceChildren(...rows.map((row) => {
      const tr = clone('tpl-step-row');
      tr.querySelector('.label').textContent = row.label;
      tr.querySelector('.count').textContent = row.count;
      tr.querySelector('.seconds').textContent = row.seconds.toFixed(1);
      return tr;
    }));
  });
}
