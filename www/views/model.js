// Step 1: the model (weights file, ResNet18 download, EfficientNet-Lite0, random weights) and
// the class names.
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
  const intro = byId('labels-info').textContent;
  on(store, ['labels'], (s) => {
    const l = s.labels;
    if (!l) { text(byId('labels-info'), intro); return; }
    text(byId('labels-info'), l.error ? `${l.file}: not used (${l.error})` : `${l.count} class names from ${l.file}.`);
  });
}
