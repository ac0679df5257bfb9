// The forms' fields, from the core's settings spec (`settingsSpec()`): `settings` for the
// compress form, `distill` and `synth` for the others, each field {name, flag, label, help,
// group, kind, default, min?, max?, min_exclusive?, what, choices?, placeholder?, advanced}.
// The page keeps no copy of any of them.

function fieldsOf(spec, key) {
  if (!Array.isArray(spec[key])) throw new Error(`this engine describes no ${key} fields (an older build of modelslim than the page)`);
  return spec[key];
}

/** The compress form's fields. */
export const settingsFields = (spec) => fieldsOf(spec, 'settings');

/** The distillation form's fields. */
export const distillFields = (spec) => fieldsOf(spec, 'distill');

/** The synthesis form's fields but the seed: the page takes a new one each time. */
export const synthFields = (spec) => fieldsOf(spec, 'synth').filter((f) => f.name !== 'seed');

/** The synthesis options: the form's, and this run's seed. */
export const synthOptions = (read, seed) => ({ ...read, seed });
