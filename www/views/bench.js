// Step 4: sizes and latency of both models, the downloads, the check in ONNX Runtime.
import { byId, clone, text, on } from './dom.js';
import { fmtBytes, fmtCapacity, fmtCount, shortLabel } from '../format.js';
import { benchNote } from '../policy.js';

const SIZE_CELLS = ['params', 'macs', 'onnx', 'st'];
const TIME_CELLS = ['cold', 'median', 'p90'];

function sizeTexts(m) {
  const file = (b) => `${fmtBytes(b.raw)} (${fmtBytes(b.gzip)})`;
  return [fmtCount(m.params), `${(m.macs / 1e9).toFixed(3)} G`, file(m.bytes.onnx), file(m.bytes.safetensors)];
}

// One model's row; its dataset carries the numbers for the tests (written, never read).
function renderRow(row, sizes, t) {
  SIZE_CELLS.forEach((c, i) => text(row.querySelector(`.${c}`), sizes ? sizeTexts(sizes)[i] : '–'));
  const d = row.dataset;
  if (sizes) Object.assign(d, { params: sizes.params, macs: sizes.macs, bytesOnnx: sizes.bytes.onnx.raw, bytesSafetensors: sizes.bytes.safetensors.raw });
  else for (const k of ['params', 'macs', 'bytesOnnx', 'bytesSafetensors']) delete d[k];
  text(row.querySelector('.cold'), !t ? '–' : t.cold === null ? 'warmed up' : `${t.cold.toFixed(0)} ms`);
  text(row.querySelector('.median'), t ? `${t.median.toFixed(0)} ms` : '–');
  text(row.querySelector('.p90'), t ? `${t.p90.toFixed(0)} ms` : '–');
  row.querySelector('.median').title = t ? `${t.source}: ${t.warmRuns ? `${t.warmRuns} warm` : 'cold only'}` : '';
  if (t) Object.assign(d, { msMedian: t.median, msP90: t.p90, msSource: t.source });
  else for (const k of ['msMedian', 'msP90', 'msSource']) delete d[k];
}

// A check in another runtime (`kind`: ort, litert; `runtime`: its package; `short`: its name in
// the table's head): per photo both runtimes' top-1s, then its version and latencies.
function renderCheck(box, o, { kind, runtime, short }) {
  if (!o) {
    box.replaceChildren();
    for (const k of ['agree', 'threads', 'originalMs', 'compressedMs', 'photos']) delete box.dataset[k];
    return;
  }
  const label = (c) => (c ? shortLabel(c.label) : '–');
  const table = clone('tpl-ort-table');
  table.querySelectorAll('th.runtime').forEach((th) => { th.textContent = short; });
  for (const r of o.rows) {
    const tr = clone('tpl-ort-row');
    tr.dataset.testid = `${kind}-row`;
    Object.assign(tr.dataset, {
      pageTop1: r.page.compressed?.index ?? '', ortTop1: r.ort.compressed.index,
      pageOriginalTop1: r.page.original?.index ?? '', ortOriginalTop1: r.ort.original.index, delta: r.delta,
    });
    tr.classList.toggle('differs', !r.same);
    [r.name, label(r.page.original), label(r.ort.original), label(r.page.compressed), label(r.ort.compressed), r.delta.toFixed(3)]
      .forEach((v, i) => { tr.children[i].textContent = v; });
    table.querySelector('tbody').append(tr);
  }
  const note = document.createElement('p');
  note.textContent = `${runtime} ${o.version} (wasm, ${o.threads} thread${o.threads === 1 ? '' : 's'}), ` +
    `warm median of ${o.runs} run(s) on the first photo: original ${o.originalMs.toFixed(1)} ms, ` +
    `compressed ${o.compressedMs.toFixed(1)} ms (latency ×${(o.compressedMs / o.originalMs).toFixed(2)}). ` +
    (o.agree ? 'Its top-1 is this page\'s on every photo.' : 'Its top-1 differs from this page\'s on the marked photos.') +
    (runtime === 'LiteRT.js' ? ' A full-integer file stores the logits as int8, and with int8 activations this page rounds them to the same step: two classes on one integer tie, and both take the lower class number.' : '') +
    (o.threads === 1 && runtime === 'onnxruntime-web' ? ' One thread: this host does not send the page\'s cross-origin isolation headers (dist/_headers).' : '');
  box.replaceChildren(table, note);
  Object.assign(box.dataset, { agree: o.agree, threads: o.threads, originalMs: o.originalMs, compressedMs: o.compressedMs, photos: o.rows.length });
}

// How the compressed model's TFLite file fits each target: sizes against the target's,
// operators it cannot run; where it does not fit, a button that runs Auto for that device.
function renderTargets(box, targets, tflite, actions) {
  if (!targets) {
    box.replaceChildren();
    return;
  }
  if (targets.error) {
    const p = document.createElement('p');
    p.dataset.testid = 'targets-none';
    p.textContent = `No TFLite file for this model, so no device to fit: ${targets.error}.`;
    box.replaceChildren(p);
    return;
  }
  const table = clone('tpl-targets-table');
  for (const r of targets) {
    const tr = clone('tpl-targets-row');
    Object.assign(tr.dataset, { name: r.name, fits: r.fits, fileBytes: r.file_bytes, peakBytes: r.peak_activation_bytes, flashBytes: r.flash_bytes, ramBytes: r.ram_bytes });
    tr.classList.toggle('differs', !r.fits);
    const way = [r.unsupported_ops.length ? `cannot run ${r.unsupported_ops.join(', ')}` : '', r.message.replace(/; would fit: .*$/, '')].filter(Boolean).join('; ');
    [r.name, `${fmtBytes(r.file_bytes)} / ${fmtCapacity(r.flash_bytes)}`, `${fmtBytes(r.peak_activation_bytes)} / ${fmtCapacity(r.ram_bytes)}`,
      r.fits ? 'yes' : 'no', way].forEach((v, i) => { tr.children[i].textContent = v; });
    if (!r.fits) {
      const b = document.createElement('button');
      b.type = 'button';
      b.dataset.testid = 'targets-auto';
      b.textContent = 'Auto for this device';
      b.title = `Search the most faithful model whose TFLite file fits ${r.name} (${r.message.match(/would fit: .*$/)?.[0] ?? 'its flash and RAM'})`;
      b.addEventListener('click', () => actions.autoForTarget(r.name));
      tr.children[4].append(' ', b);
    }
    table.querySelector('tbody').append(tr);
  }
  const note = document.createElement('p');
  const parts = [];
  if (tflite) {
    parts.push(`${tflite.name} (${fmtBytes(tflite.size)}) was saved; `);
    const a = document.createElement('a');
    Object.assign(a, { href: tflite.header.url, download: tflite.header.name, textContent: `${tflite.header.name} (C header for TensorFlow Lite Micro)` });
    a.dataset.testid = 'download-c-header';
    parts.push(a, '. ');
  }
  parts.push('The compressed model\'s TFLite file as a device takes it (int8 input and output when full integer). Peak activations are planned as TensorFlow Lite Micro plans its arena; flash and RAM are a typical board\'s.');
  note.append(...parts);
  box.replaceChildren(note, table);
}

export function mountBench(store, actions) {
  byId('download-tflite').addEventListener('click', actions.tflite);
  byId('bench').addEventListener('click', actions.benchmark);
  byId('ort-check').addEventListener('click', actions.ortCheck);
  byId('litert-check').addEventListener('click', actions.litertCheck);
  byId('bench-runs').addEventListener('input', (ev) => actions.setBenchRuns(ev.target.value));

  on(store, ['report', 'bench', 'backend'], (s) => {
    const r = s.report;
    renderRow(byId('bench-original'), r?.before, s.bench.original);
    renderRow(byId('bench-compressed'), r?.after, s.bench.compressed);
    text(byId('bench-compressed').querySelector('.stem'), r ? `(${r.file_stem})` : '');
    const ratio = byId('bench-ratio');
    const q = r?.ratios;
    const values = q ? [q.params.toFixed(3), q.macs.toFixed(3), `${q.onnx_raw.toFixed(3)} (${q.onnx_gzip.toFixed(3)})`,
      `${q.safetensors_raw.toFixed(3)} (${q.safetensors_gzip.toFixed(3)})`] : [];
    SIZE_CELLS.forEach((c, i) => text(ratio.querySelector(`.${c}`), values[i] ?? ''));
    const { original: o, compressed: c } = s.bench;
    text(ratio.querySelector('.median'), o && c ? `latency ×${(c.median / o.median).toFixed(2)}` : '');
    text(byId('bench-note'), r ? benchNote(r, s.backend ?? {}) : '');
    for (const f of ['onnx', 'safetensors', 'card']) {
      const a = byId(`download-${f}`);
      const file = r?.files.find((x) => x.format === f);
      a.classList.toggle('disabled', !file);
      if (file) {
        a.href = file.url;
        a.download = file.name;
        text(a, `${file.name} (${fmtBytes(file.size)})`);
      } else {
        a.removeAttribute('href');
        a.removeAttribute('download');
      }
    }
  });
  on(store, ['ort'], (s) => renderCheck(byId('ort-result'), s.ort, { kind: 'ort', runtime: 'onnxruntime-web', short: 'ONNX Runtime' }));
  on(store, ['litert'], (s) => renderCheck(byId('litert-result'), s.litert, { kind: 'litert', runtime: 'LiteRT.js', short: 'LiteRT' }));
  on(store, ['report'], (s) => { byId('download-tflite').disabled = !s.report; });
  on(store, ['targets', 'tflite'], (s) => renderTargets(byId('targets'), s.targets, s.tflite, actions));
}
