// The per-layer charts: widths and zeroed weights after compressing, and the sensitivity of
// each layer to quantization.
import { byId, clone, on } from './dom.js';

function layerRow(l) {
  const max = l.width_before || 1;
  const row = clone('tpl-layer-row');
  row.querySelector('.lname').textContent = l.layer;
  row.querySelector('.before').style.width = `${(100 * l.width_before) / max}%`;
  row.querySelector('.after').style.width = `${(100 * l.width_after) / max}%`;
  row.querySelector('.zero').style.width = `${(100 * l.width_after * l.sparsity) / max}%`;
  if (l.dropped) {
    // Removed with its block: the block computes its shortcut.
    row.classList.add('dropped');
    row.querySelector('.val').textContent = `${l.width_before} · block dropped`;
    row.title = `${l.layer}: removed with its block, which now passes its input through`;
    return row;
  }
  row.querySelector('.val').textContent = `${l.width_before}→${l.width_after}` +
    (l.sparsity >= 0.005 ? `, ${(l.sparsity * 100).toFixed(0)} % zeros` : '') + ` · ${l.format}` +
    (l.fixed ? ' · kept whole' : '');
  row.title = `${l.layer}: ${l.width_before} → ${l.width_after} output channels, ${(l.sparsity * 100).toFixed(1)} % zero weights, stored as ${l.format}` +
    (l.fixed ? `; no pruning removes its channels: ${l.fixed}` : '');
  if (l.fixed) row.classList.add('fixed');
  return row;
}

function sensRow(r, max) {
  const row = clone('tpl-sens-row');
  row.querySelector('.lname').textContent = r.layer;
  row.querySelector('.sens').style.width = `${(100 * r.kl) / max}%`;
  row.querySelector('.val').textContent = `KL ${r.kl.toExponential(1)}, ${(r.agreement * 100).toFixed(0)} % agree`;
  return row;
}

export function mountCharts(store, actions) {
  byId('sensitivity').addEventListener('click', () => actions.sensitivity(byId('sens-quant').value));
  const layersIntro = byId('layers').textContent;
  on(store, ['report'], (s) => {
    const box = byId('layers');
    const layers = s.report?.layers;
    if (!layers) { box.textContent = layersIntro; return; }
    const legend = document.createElement('p');
    legend.textContent = 'Each bar is one layer\'s output channels: blue the share kept, grey the share removed; ' +
      'the orange underline is the share of its weights that are zero (pruned, or rounded to zero by quantization); ' +
      'struck-through layers were removed with their block.' +
      (layers.some((l) => l.fixed)
        ? ' Layers marked "kept whole" keep every output channel, because no pruning rule keeps them in step with the layers that read them (hover for why).'
        : '');
    box.replaceChildren(...layers.map(layerRow), legend);
  });
  on(store, ['sensitivity'], (s) => {
    if (!s.sensitivity) return;
    const max = Math.max(...s.sensitivity.map((r) => r.kl), 1e-12);
    byId('sens').replaceChildren(...s.sensitivity.map((r) => sensRow(r, max)));
  });
}
