// The forms' fields, from the core's settings spec (`settingsSpec()`): `settings` for the
// compress form, `distill` and `synth` for the others, each field {name, label, help, group,
// kind, default, min?, max?, choices?, placeholder?, advanced}. An engine built before the spec
// listed its fields gets the form the page had then, its limits still the core's (`limits`).

const choice = (...pairs) => pairs.map(([value, label]) => ({ value, label }));

// The page's form before the core described it: the names are the engine's, the defaults and
// limits come from the spec.
const LEGACY = [
  { name: 'prune_channels', label: 'Channels to remove', group: 'prune', kind: 'number' },
  { name: 'importance', label: 'Ranked by', group: 'prune', kind: 'choice',
    choices: choice(['l1', 'L1 norm'], ['l2', 'L2 norm'], ['bn', 'BN scale |γ|'], ['output', 'output (photos)'], ['hessian', 'Hessian (photos)']) },
  { name: 'prune_scope', label: 'Channels from', group: 'prune', kind: 'choice', advanced: true,
    help: 'Inside blocks only: the residual streams every block reads and writes, and the final features, keep their width',
    choices: choice(['internal', 'inside blocks only'], ['all', 'every layer but the stem']) },
  { name: 'round_to', label: 'Round widths to multiples of', group: 'prune', kind: 'integer', advanced: true,
    help: 'On WebGPU, layer widths that are multiples of 8 run much faster' },
  { name: 'steps', label: 'Steps', group: 'prune', kind: 'integer', advanced: true },
  { name: 'reconstruct', label: 'Refit the remaining weights on your photos after pruning', group: 'prune', kind: 'bool',
    help: 'Least squares for the layers that read removed channels; SparseGPT chooses which weights to zero' },
  { name: 'sparsity', label: 'Zero smallest weights', group: 'sparsity', kind: 'number' },
  { name: 'quant', label: 'Weights', group: 'quantize', kind: 'choice',
    choices: choice(['none', 'fp32 (no quantization)'], ['int8', 'int8'], ['int4', 'int4'], ['fp16', 'fp16']) },
  { name: 'granularity', label: 'Scales', group: 'quantize', kind: 'choice', advanced: true,
    choices: choice(['channel', 'per channel'], ['tensor', 'per tensor'], ['group:32', 'groups of 32 inputs']) },
  { name: 'quant_method', label: 'Integers', group: 'quantize', kind: 'choice',
    help: 'GPTQ chooses each layer\'s integers so that its outputs on your photos change least; same file format',
    choices: choice(['rtn', 'round to nearest'], ['gptq', 'GPTQ on photos']) },
  { name: 'keep_first_last', label: 'Keep first conv and classifier in higher precision', group: 'quantize', kind: 'bool', advanced: true },
  { name: 'act_quant', label: 'int8 activations (calibrated on your photos)', group: 'quantize', kind: 'bool' },
  { name: 'augment', label: 'Photo copies', group: 'calibration', kind: 'choice', advanced: true,
    help: 'GPTQ, refitting and output/Hessian ranking measure each layer\'s inputs on your photos; mirrored and corner-cropped copies give them more samples when photos are few, at 2× or 4× the time',
    choices: choice(['none', 'none'], ['flip', '+ mirrored (2× time)'], ['flip-crop', '+ mirrored and cropped (4× time)']) },
  { name: 'bias_correction', label: 'Correct biases for the rounding (measured on your photos)', group: 'calibration', kind: 'bool', advanced: true },
  { name: 'recalibrate_bn', label: 'Recalibrate batch norms on your photos', group: 'calibration', kind: 'bool', advanced: true },
];

/** The compress form's fields. */
export function settingsFields(spec) {
  if (Array.isArray(spec.settings)) return spec.settings;
  return LEGACY.map((f) => {
    const limit = spec.limits.find((l) => l.name === f.name);
    return { advanced: false, help: '', ...f, default: spec.defaults[f.name], ...(limit ? { min: limit.min, max: limit.max, what: limit.what } : {}) };
  });
}

/** The distillation form's fields; without the spec's, the engine checks the bounds itself. */
export function distillFields(spec) {
  if (Array.isArray(spec.distill)) return spec.distill;
  return [
    { name: 'steps', label: 'Steps', kind: 'integer', default: 50, min: 1 },
    { name: 'lr', label: 'Learning rate', kind: 'number', default: 0.00005 },
    { name: 'batch', label: 'Photos per step', kind: 'integer', default: 4, min: 1 },
  ];
}

/** The synthesis form's fields (the page chooses the seed: a new one each time). */
export function synthFields(spec) {
  if (Array.isArray(spec.synth)) return spec.synth.filter((f) => f.name !== 'seed');
  return [{ name: 'n', label: 'Images', kind: 'integer', default: 8, min: 1 }];
}

/** The synthesis options the page adds where the spec leaves them to it. */
export function synthOptions(spec, read, seed) {
  if (Array.isArray(spec.synth)) return { ...read, seed };
  return { ...read, seed, steps: 50, batch: Math.min(read.n, 8) };
}
