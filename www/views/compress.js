// Step 3: the compress form (generated from the core's settings), its presets, the run's
// progress, and the result's headline and step times.
import { byId, clone, text, on } from './dom.js';
import { buildForm } from './form.js';
import { settingsFields } from '../fields.js';
import { agreementText, calibrationAdvice, presetVerdict, presetSlower } from '../policy.js';
import { stepTable, runTimes } from '../format.js';

// The button each kind of run starts from: its progress is shown under that button's row.
const RUN_BUTTON = { compress: 'compress', auto: 'auto', sensitivity: 'sensitivity', synthesize: 'synthesize' };

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
  // One that cost more than the floor or slowed the model down says so, on it and under it.
  on(store, ['spec', 'presetRuns', 'backend', 'report'], (s) => {
    const backend = s.backend?.name ?? 'this backend';
    for (const p of s.spec?.presets ?? []) {
      const b = byId('presets').querySelector(`[data-preset="${p.id}"]`);
      if (!b) continue;
      const run = s.presetRuns[p.id];
      const verdict = run ? presetVerdict(run, backend) : null;
      const slower = run && presetSlower(run) ? ` · ×${(1 / run.speedup).toFixed(2)} slower` : '';
      text(b, run?.agreement != null ? `${verdict ? '⚠ ' : ''}${p.name} · ${(100 * run.agreement).toFixed(0)} % agree${slower}` : p.name);
      b.title = verdict ?? p.note;
      b.classList.toggle('warn', Boolean(verdict));
    }
    // Under the result while the result is that preset's.
    const run = s.report?.preset ? s.presetRuns[s.report.preset] : null;
    const verdict = run ? presetVerdict(run, backend) : null;
    const v = byId('preset-verdict');
    v.hidden = !verdict;
    text(v, verdict ?? '');
  });
  on(store, ['form', 'spec'], (s) => {
    sync?.(s.form.values);
    text(byId('preset-note'), s.form.presetNote);
  });

  // The progress sits under the button that started the run, its times ticking each second.
  const box = byId('progress');
  const render = (r) => {
    const p = r?.progress;
    box.hidden = !p || r.kind === 'distill';
    if (box.hidden) return;
    byId('progress-bar').value = p.steps ? (p.step - 1) / p.steps : 0.95;
    const step = p.steps ? `step ${p.step} of ${p.steps}: ${p.label}` : p.label;
    text(byId('progress-label'), r.candidate && r.candidate !== p.label ? `${r.candidate} — ${step}` : step);
    text(byId('progress-times'), `(${runTimes({ ...r, step: p.step, steps: p.steps, candidate: Boolean(r.candidate) }, performance.now())})`);
  };
  let tick = null;
  on(store, ['run'], (s) => {
    const r = s.run;
    const busy = Boolean(r);
    byId('compress').disabled = busy;
    byId('distill').disabled = busy;
    byId('cancel').hidden = !r || r.kind === 'distill';
    byId('auto').disabled = busy;
    byId('distill-stop').hidden = r?.kind !== 'distill';
    const anchor = r && RUN_BUTTON[r.kind] && byId(RUN_BUTTON[r.kind]).parentElement;
    if (anchor && anchor.nextElementSibling !== box) anchor.after(box);
    render(r);
    if (r && !tick) tick = setInterval(() => render(store.get().run), 1000);
    if (!r && tick) { clearInterval(tick); tick = null; }
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
