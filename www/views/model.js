// Step 1: the model (an ONNX or weights file, ResNet18 download, EfficientNet-Lite0, random
// weights), the network's preprocessing, and the class names.
import { byId, text, on } from './dom.js';

export function mountModel(store, actions) {
  byId('weights-file').addEventListener('change', (ev) => {
    const f = ev.target.files[0];
    ev.target.value = '';
    if (f) actions.loadWeightsFile(f);
  });
  byId('use-seeded').addEventListener('click', actions.useSeeded);
  byId('use-effnet').addEventListener('click', actions.useEffnet);
  byId('retry-download').addEventListener('click', actions.downloadDefault);
  byId('labels-file').addEventListener('change', (ev) => {
    const f = ev.target.files[0];
    ev.target.value = '';
    if (f) actions.loadLabels(f);
  });
  on(store, ['model'], (s) => text(byId('model-info'), s.model ? `Loaded: ${s.model.info}` : ''));
  mountInputForm(store, actions);
  const intro = byId('labels-info').textContent;
  on(store, ['labels'], (s) => {
    const l = s.labels;
    if (!l) { text(byId('labels-info'), intro); return; }
    text(byId('labels-info'), l.error ? `${l.file}: not used (${l.error})` : `${l.count} class names from ${l.file}.`);
  });
}

const fmt3 = (v) => v.map((x) => Number(x.toFixed(4))).join(', ');

/** `[height, width]` from "N" or "HxW", or null. */
export function parseSize(text) {
  const v = text.trim().split(/\s*[xX×]\s*/).map(Number);
  const ok = (v.length === 1 || v.length === 2) && v.every((x) => Number.isInteger(x) && x > 0);
  return ok ? (v.length === 1 ? [v[0], v[0]] : v) : null;
}

/** Three numbers from "a, b, c", or null. */
export function parseTriple(text) {
  const v = text.split(',').map((x) => Number(x.trim()));
  return v.length === 3 && v.every((x) => Number.isFinite(x) && text.trim() !== '') ? v : null;
}

// The network's preprocessing, prefilled from the file (or the defaults); applying it
// preprocesses the kept photos again. Downloads carry it.
function mountInputForm(store, actions) {
  const form = byId('input-form');
  on(store, ['model'], (s) => {
    const input = s.model?.input;
    form.hidden = !input;
    if (!input) return;
    const width = input.crop_width ?? input.crop;
    byId('input-side').value = width === input.crop ? `${input.crop}` : `${input.crop}x${width}`;
    byId('input-side').disabled = input.fixed_size;
    byId('input-side').title = input.fixed_size ? 'fixed by the network' : '';
    byId('input-resize').value = input.resize;
    byId('input-mean').value = fmt3(input.mean);
    byId('input-std').value = fmt3(input.std);
    byId('input-bgr').checked = input.bgr;
  });
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const mean = parseTriple(byId('input-mean').value);
    const std = parseTriple(byId('input-std').value);
    if (!mean || !std) {
      actions.fail('Input: give the mean and the std as three numbers each, R, G, B (on pixel values in 0–1).');
      return;
    }
    const choice = { resize: Number(byId('input-resize').value), mean, std, bgr: byId('input-bgr').checked };
    if (!byId('input-side').disabled) {
      const size = parseSize(byId('input-side').value);
      if (!size) {
        actions.fail('Input: give the size as N (a square) or HxW, e.g. 48x192.');
        return;
      }
      choice.size = size;
    }
    actions.setInput(choice);
  });
}
