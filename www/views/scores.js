// The result's labelled photos: accuracy of the original and the compressed model with their
// 95 % intervals, agreement with its count, a per-class table, the new confusions and the
// photos whose answer changed — the engine's `evaluate`, as `modelslim eval` prints it.
import { byId, on } from './dom.js';
import { shortLabel } from '../format.js';

const pct = (x) => `${(100 * x).toFixed(1)} %`;
/** `{k, n, share, low, high}` → "7 of 10 (70.0 %, 95 % interval 39.7–89.2 %)". */
const count = (c) => `${c.k} of ${c.n} (${pct(c.share)}, 95 % interval ${(100 * c.low).toFixed(1)}–${(100 * c.high).toFixed(1)} %)`;

function table(head, rows) {
  const t = document.createElement('table');
  t.className = 'bench';
  const tr = (cells, tag) => {
    const r = document.createElement('tr');
    for (const c of cells) {
      const d = document.createElement(tag);
      d.textContent = c;
      r.append(d);
    }
    return r;
  };
  const thead = document.createElement('thead');
  thead.append(tr(head, 'th'));
  const tbody = document.createElement('tbody');
  for (const r of rows) tbody.append(tr(r, 'td'));
  t.append(thead, tbody);
  const wrap = document.createElement('div');
  wrap.className = 'scroll';
  wrap.append(t);
  return wrap;
}

function para(s) {
  const p = document.createElement('p');
  p.textContent = s;
  return p;
}

function render(box, e) {
  box.hidden = !e;
  if (!e) {
    box.replaceChildren();
    for (const k of ['labelled', 'originalTop1', 'compressedTop1']) delete box.dataset[k];
    return;
  }
  // `top1_count` is the model scored: the compressed one, its reference the original; before
  // any compression the original alone.
  const compressed = !!e.reference_top1;
  const [original, after] = compressed ? [e.reference_top1, e.top1_count] : [e.top1_count, null];
  delete box.dataset.compressedTop1;
  Object.assign(box.dataset, { labelled: e.labelled, originalTop1: original.k, ...(after ? { compressedTop1: after.k } : {}) });
  const unknown = e.unknown_classes?.length ? ` labels.csv names classes this model does not have (those photos count as unlabelled): ${e.unknown_classes.join(', ')}.` : '';
  const parts = [para(`Labelled photos: ${e.labelled} of ${e.n} (a labels.csv row, their folder or their name gives the class).${unknown} ` +
    `Top-1 of the original: ${count(original)}` + (after ? `; of the compressed model: ${count(after)}.` : '.') +
    (e.agreement_count ? ` Both give the same top-1 on ${count(e.agreement_count)} of all photos (fitted on or not).` : '') +
    (e.labelled < 30 ? ' Few photos: the intervals are wide; a difference inside them may be chance.' : ''))];
  parts.push(table(['class', 'photos', 'original right', ...(compressed ? ['compressed right'] : [])],
    (e.classes ?? []).map((c) => [shortLabel(c.name), c.photos, compressed ? c.reference_correct : c.correct, ...(compressed ? [c.correct] : [])])));
  if (e.new_confusions?.length) {
    parts.push(para('New confusions (the original was right):'));
    parts.push(table(['class', 'now called', 'photos'], e.new_confusions.map((c) => [shortLabel(c.truth_name), shortLabel(c.answer_name), c.photos])));
  }
  if (e.changed?.length) {
    parts.push(para('Photos whose answer changed, the ones it got wrong first:'));
    const list = document.createElement('ul');
    for (const c of e.changed) {
      const li = document.createElement('li');
      li.className = c.change;
      li.dataset.testid = 'score-changed';
      li.textContent = `${c.change === 'lost' ? 'now wrong' : c.change === 'gained' ? 'now right' : 'changed'}: ${c.photo}`;
      list.append(li);
    }
    parts.push(list);
  }
  box.replaceChildren(...parts);
}

export function mountScores(store) {
  on(store, ['scores'], (s) => render(byId('scores'), s.scores));
}
