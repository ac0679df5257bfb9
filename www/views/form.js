// Forms generated from the core's field descriptions (../fields.js): a control per field, its
// limits and choices from the spec, less common fields under a collapsed "Advanced".
import { clone } from './dom.js';

const GROUPS = { prune: 'Prune', sparsity: 'Zero weights', quantize: 'Quantize', calibration: 'Calibration' };

// A number input's step: fine for shares (at most 1), free otherwise.
function stepOf(f) {
  if (f.kind !== 'number' && f.kind !== 'optional_number') return '1';
  return f.max !== undefined && f.max <= 1 && (f.min ?? 0) >= 0 ? '0.05' : 'any';
}

// The template of each kind of field (../fields.js).
const TEMPLATE = { number: 'number', integer: 'number', optional_integer: 'number', optional_number: 'number', bool: 'bool', choice: 'choice', text: 'text', pairs: 'text' };

function control(f, id, onInput) {
  const kind = TEMPLATE[f.kind] ?? 'text';
  const label = clone(`tpl-field-${kind}`);
  label.querySelector('.flabel').textContent = f.label;
  if (f.help) label.title = f.help;
  const input = label.querySelector('input, select');
  input.id = id;
  input.dataset.testid = id;
  if (kind === 'number') {
    if (f.min !== undefined) input.min = f.min;
    if (f.max !== undefined) input.max = f.max;
    input.step = stepOf(f);
    if (f.kind === 'optional_integer') input.placeholder = 'auto';
    if (f.kind === 'optional_number') input.placeholder = 'none';
  } else if (kind === 'text') {
    input.placeholder = f.placeholder ?? (f.kind === 'pairs' ? 'NAME=VALUE, …' : '');
  } else if (kind === 'choice') {
    for (const c of f.choices) input.append(new Option(c.label, c.value));
    // A long choice takes the form's whole row: a select never clips its text.
    if (Math.max(...f.choices.map((c) => c.label.length)) > 22) label.classList.add('wide');
  }
  const read = () => (kind === 'bool' ? input.checked : input.value);
  input.addEventListener(kind === 'bool' || kind === 'choice' ? 'change' : 'input', () => onInput(f.name, read()));
  const write = (v) => {
    if (kind === 'bool') input.checked = Boolean(v);
    // Not under the user's cursor: a half-typed number ("0.") reads as "" and would be wiped.
    else if (input.value !== String(v ?? '') && !(kind !== 'choice' && document.activeElement === input)) input.value = String(v ?? '');
  };
  return { label, write };
}

/**
 * Fill `box` with a control per field; `idOf(name)` names each control (id and data-testid),
 * `onInput(name, value)` hears the user. With `grouped`, fields go into their group's fieldset
 * and advanced ones under "Advanced". Returns `sync(values)`, which shows typed values.
 */
export function buildForm(box, fields, { idOf, onInput, grouped = false }) {
  const writers = new Map();
  const add = (parent, f) => {
    const c = control(f, idOf(f.name), onInput);
    writers.set(f.name, c.write);
    parent.append(c.label);
  };
  box.replaceChildren();
  if (!grouped) {
    for (const f of fields.filter((x) => !x.advanced)) add(box, f);
    const advanced = fields.filter((f) => f.advanced);
    if (advanced.length) {
      const details = clone('tpl-advanced');
      const grid = document.createElement('div');
      grid.className = 'form';
      for (const f of advanced) add(grid, f);
      details.append(grid);
      box.append(details);
    }
  } else {
    const section = (parent, list) => {
      const names = [...new Set(list.map((f) => f.group))];
      for (const g of names) {
        const set = clone('tpl-group');
        set.querySelector('legend').textContent = GROUPS[g] ?? g;
        for (const f of list.filter((x) => x.group === g)) add(set.querySelector('.form'), f);
        parent.append(set);
      }
    };
    section(box, fields.filter((f) => !f.advanced));
    const advanced = fields.filter((f) => f.advanced);
    if (advanced.length) {
      const details = clone('tpl-advanced');
      section(details, advanced);
      box.append(details);
    }
  }
  return (values) => {
    for (const [name, write] of writers) write(values[name]);
  };
}
