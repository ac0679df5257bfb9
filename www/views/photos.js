// Step 2 and the predictions: adding photos (files, drop, samples, calibration images made from
// the model) and one card per photo, the original's and the compressed model's top-5 side by side.
import { byId, clone, text, on } from './dom.js';
import { buildForm } from './form.js';
import { synthFields } from '../fields.js';
import { latencyStats, shortLabel, tiedWithTop } from '../format.js';
import { isPhotoLabels } from '../policy.js';

function top5List(answer, testid, image) {
  const ol = clone('tpl-top5');
  ol.dataset.testid = testid;
  ol.dataset.image = image;
  // The raw logits, for the tests that compare them with onnxruntime's on the downloaded file.
  ol.dataset.logits = JSON.stringify(answer.logits);
  for (const c of answer.top5) {
    const li = clone('tpl-top5-item');
    li.dataset.classIndex = c.index;
    li.dataset.prob = c.prob;
    const name = li.querySelector('.cname');
    name.textContent = shortLabel(c.label);
    name.title = `${c.label} (class ${c.index})`;
    li.querySelector('b').textContent = `${(c.prob * 100).toFixed(1)}%`;
    li.querySelector('.bar-fg').style.width = `${Math.max(1, c.prob * 100)}%`;
    ol.append(li);
  }
  return ol;
}

function renderCard(el, p) {
  const img = el.querySelector('img');
  if (p.thumb && img.getAttribute('src') !== p.thumb) img.src = p.thumb;
  text(el.querySelector('.name'), p.name);
  const orig = el.querySelector('.orig');
  const comp = el.querySelector('.comp');
  orig.querySelector('ol')?.remove();
  comp.querySelector('ol')?.remove();
  if (p.original) orig.append(top5List(p.original, 'top5-original', p.name));
  if (p.compressed) comp.append(top5List(p.compressed, 'top5-compressed', p.name));
  comp.querySelector('.none').hidden = Boolean(p.compressed) || !p.original;
  const tied = p.compressed ? tiedWithTop(p.compressed) : null;
  const tie = comp.querySelector('.tie');
  tie.hidden = !tied;
  text(tie, tied ? `Tied with ${shortLabel(tied.label)} (the same int8 logit): the lower class number wins, here and in the downloaded files.` : '');
  const differs = Boolean(p.original && p.compressed && p.original.top5[0].index !== p.compressed.top5[0].index);
  el.classList.toggle('differs', differs);
  el.classList.toggle('failed', Boolean(p.error));
  const mark = el.querySelector('.mark');
  mark.className = `mark ${differs ? 'differs-mark' : 'same-mark'}`;
  text(mark, !p.compressed ? '' : differs ? '≠ top-1 differs' : '= same top-1');
  el.querySelector('.pair').hidden = Boolean(p.error) && !p.original;
  const err = el.querySelector('.err');
  err.hidden = !p.error;
  text(err, p.error ?? '');
  text(el.querySelector('.time'), p.original
    ? `${p.original.inference_ms.toFixed(0)} ms${p.original.cold ? ' (cold)' : ''} + ${p.preprocessMs.toFixed(0)} ms preprocessing`
    : p.error ? '' : 'classifying…');
}

// An image, or a labels file for them (labels.csv: rows `file,class`).
const isImage = (f) => (f.file ?? f).type.startsWith('image/') || /\.(jpe?g|png|webp)$/i.test((f.file ?? f).name) || isPhotoLabels(f.file ?? f);

// The files under a dropped entry, each with its path: {file, path}.
async function collect(entry, out) {
  if (entry.isFile) {
    const file = await new Promise((resolve, reject) => entry.file(resolve, reject));
    out.push({ file, path: entry.fullPath.replace(/^\//, '') });
    return;
  }
  const reader = entry.createReader();
  // readEntries answers in batches until an empty one.
  for (;;) {
    const batch = await new Promise((resolve, reject) => reader.readEntries(resolve, reject));
    if (!batch.length) break;
    for (const e of batch) await collect(e, out);
  }
}

export function mountPhotos(store, actions) {
  byId('upload').addEventListener('change', (ev) => {
    actions.addPhotos([...ev.target.files]);
    ev.target.value = '';
  });
  // A folder: its images, each named by its path (the folders name the classes).
  byId('upload-folder').addEventListener('change', (ev) => {
    actions.addPhotos([...ev.target.files].filter(isImage));
    ev.target.value = '';
  });
  byId('samples').addEventListener('click', actions.samples);
  byId('clear-photos').addEventListener('click', actions.clearPhotos);
  byId('synthesize').addEventListener('click', actions.synthesize);
  const drop = byId('drop');
  drop.addEventListener('dragover', (ev) => { ev.preventDefault(); drop.classList.add('over'); });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', async (ev) => {
    ev.preventDefault();
    drop.classList.remove('over');
    const entries = [...ev.dataTransfer.items].map((i) => i.webkitGetAsEntry?.()).filter(Boolean);
    if (!entries.some((e) => e.isDirectory)) {
      actions.addPhotos([...ev.dataTransfer.files]);
      return;
    }
    const found = [];
    for (const e of entries) await collect(e, found);
    actions.addPhotos(found.filter(({ file }) => isImage(file)));
  });

  let syncSynth = null;
  on(store, ['spec'], (s) => {
    if (!s.spec) return;
    syncSynth = buildForm(byId('synth-form'), synthFields(s.spec), {
      idOf: (name) => `synth-${name === 'n' ? 'count' : name}`,
      onInput: actions.setSynthField,
    });
  });
  on(store, ['synthForm', 'spec'], (s) => syncSynth?.(s.synthForm));

  // Cards by photo id; a card is redrawn when its photo changed.
  const cards = new Map(); // id → {el, photo}
  on(store, ['photos'], (s) => {
    const ids = new Set(s.photos.map((p) => p.id));
    for (const [id, c] of cards) if (!ids.has(id)) { c.el.remove(); cards.delete(id); }
    for (const p of s.photos) {
      let c = cards.get(p.id);
      if (!c) {
        c = { el: clone('tpl-card'), photo: null };
        byId('results').append(c.el);
        cards.set(p.id, c);
      }
      if (c.photo !== p) renderCard(c.el, p);
      c.photo = p;
    }
  });

  on(store, ['timing', 'backend'], (s) => {
    const parts = [];
    const { cold, warm } = s.timing;
    // Shaders compile on WebGPU only; the CPU backend's first run sets up its buffers.
    const coldWhy = s.backend?.kind === 'wgpu' ? 'includes shader compilation' : 'includes first allocations';
    if (cold !== null) parts.push(`first run (cold: ${coldWhy}) ${cold.toFixed(0)} ms`);
    if (warm.length) parts.push(`warm median ${latencyStats(warm).median_ms.toFixed(0)} ms over ${warm.length} run(s)`);
    if (parts.length) text(byId('timing'), `Original model on ${s.backend?.name}: ${parts.join(', ')}.`);
  });
}
