// The page's pure functions (www/format.js, www/policy.js), without a browser: the latency
// statistics must be the engine's (src/timing.rs, the same cases as its test), and the
// page's decisions what the UI promises.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { latencyStats, stepTable, ortComparison, tiedWithTop, fmtCapacity, runTimes } from '../../www/format.js';
import { suggestedMethod, readFields, agreementText, presetValues, autoOptions, presetPoint, presetVerdict, runtimeLimit, runtimePick } from '../../www/policy.js';

test('Auto\'s form: a file\'s budget in its bytes; a device\'s flash when the box is empty', () => {
  assert.deepEqual(autoOptions({ kind: 'bytes', value: '3.5', floor: '80', deploy: 'tflite' }),
    { min_agreement: 0.8, format: 'tflite', budget: { kind: 'bytes', value: 3500000 } });
  assert.deepEqual(autoOptions({ kind: 'bytes', value: '', floor: '0', deploy: 'target:ESP32-S3' }),
    { min_agreement: 0, format: 'tflite', target: 'ESP32-S3' });
  assert.deepEqual(autoOptions({ kind: 'macs', value: '50', floor: '0', deploy: 'target:ESP32-S3' }).budget, { kind: 'macs', value: 0.5 });
  assert.equal(autoOptions({ kind: 'bytes', value: '8', floor: '80' }).format, 'onnx');
  assert.throws(() => autoOptions({ kind: 'bytes', value: '', floor: '80', deploy: 'onnx' }), /budget/);
});

test('boards\' flash and RAM in the binary units they are sold in', () => {
  assert.equal(fmtCapacity(16 * 2 ** 30), '16 GiB');
  assert.equal(fmtCapacity(8 * 2 ** 20), '8 MiB');
  assert.equal(fmtCapacity(512 * 2 ** 10), '512 KiB');
});

test('latency statistics are the engine\'s: nearest rank on the sorted times', () => {
  const t = latencyStats([9, 1, 5, 3, 7, 2, 4, 6, 8, 10, 11]);
  assert.deepEqual([t.runs, t.min_ms, t.median_ms, t.p90_ms], [11, 1, 6, 10]);
  assert.equal(latencyStats([4]).p90_ms, 4);
  assert.equal(latencyStats([]), null);
  // Two runs: index round(0.5) = 1 (half away from zero, as Rust rounds), the larger one.
  assert.equal(latencyStats([3, 1]).median_ms, 3);
  // Four runs: p90 at round(2.7) = 3.
  assert.equal(latencyStats([1, 2, 3, 4]).p90_ms, 4);
});

test('a tie at the top names the class it ties with; distinct logits do not', () => {
  const top5 = [{ index: 3, label: 'a' }, { index: 7, label: 'b' }];
  const logits = Array(10).fill(0);
  logits[3] = 2.5;
  logits[7] = 2.5;
  assert.equal(tiedWithTop({ top5, logits }).index, 7);
  logits[7] = 2.375;
  assert.equal(tiedWithTop({ top5, logits }), null);
  assert.equal(tiedWithTop({ top5: top5.slice(0, 1), logits }), null);
});

test('int4 switches to GPTQ with the advised photos, unless the user chose a method', () => {
  const base = { quant: 'int4', method: 'rtn', methodChosen: false, photoCount: 4, advised: 4 };
  assert.equal(suggestedMethod(base), 'gptq');
  assert.equal(suggestedMethod({ ...base, photoCount: 3 }), 'rtn');
  assert.equal(suggestedMethod({ ...base, methodChosen: true }), 'rtn');
  assert.equal(suggestedMethod({ ...base, quant: 'int8' }), 'rtn');
});

test('form values become the engine\'s options within the spec\'s limits', () => {
  const fields = [
    { name: 'prune_channels', label: 'channels to remove', kind: 'number', min: 0, max: 0.9 },
    { name: 'steps', label: 'steps', kind: 'integer', min: 1 },
    { name: 'reconstruct', label: 'refit', kind: 'bool' },
    { name: 'calibration', label: 'ranges', kind: 'text' },
  ];
  assert.deepEqual(readFields(fields, { prune_channels: '0.3', steps: '2.4', reconstruct: true, calibration: '' }),
    { prune_channels: 0.3, steps: 2, reconstruct: true });
  assert.throws(() => readFields(fields, { prune_channels: '0.95', steps: '1' }), /Channels to remove must be between 0 and 0.9/);
  assert.throws(() => readFields(fields, { prune_channels: '0', steps: '0' }), /Steps must be at least 1/);
  // The core's f32 settings show as typed (0.3, not 0.30000001192092896).
  assert.deepEqual(presetValues(fields, { prune_channels: Math.fround(0.3), reconstruct: 1 }), { prune_channels: '0.3', reconstruct: true });
});

test('step times count the layers of one kind of step as one row', () => {
  const rows = stepTable([
    { label: 'GPTQ: layer1.0.conv1 (layer 1 of 2)', seconds: 1 },
    { label: 'GPTQ: layer1.0.conv2 (layer 2 of 2)', seconds: 2 },
    { label: 'refitting layer2.0.conv1 to the original outputs (layer 1 of 1)', seconds: 0.5 },
    { label: 'writing the ONNX file', seconds: 0.25 },
  ]);
  assert.deepEqual(rows, [
    { label: 'GPTQ', count: 2, seconds: 3 },
    { label: 'refitting … to the original outputs', count: 1, seconds: 0.5 },
    { label: 'writing the ONNX file', count: 1, seconds: 0.25 },
  ]);
});

test('the agreement says what it was measured on', () => {
  const a = { agreement: 0.5, n: 2, kl: 0.01 };
  assert.match(agreementText({ agreement: a, agreement_photos: 'held_back', quantization: 'int8' }), /on 2 held-back photos \(not fitted on\): 1 of 2/);
  assert.match(agreementText({ agreement: a, agreement_photos: 'fitting', quantization: 'int8' }), /fitted on \(optimistic/);
  // With the interval the core measured: what 1 of 2 can tell.
  const wide = { ...a, low: 0.0945, high: 0.9055 };
  assert.match(agreementText({ agreement: wide, agreement_photos: 'held_back', quantization: 'int8' }), /1 of 2 \(50 %, 95 % interval 9–91 %\)/);
});

test('the check in ONNX Runtime agrees only when both top-1s of every photo are the page\'s', () => {
  const answer = (index, logits = [0, 1]) => ({ top5: [{ index }], logits });
  const r = { version: '1', threads: 1, original: [2, 1, 3], compressed: [1],
    photos: [{ index: 0, original: answer(1), compressed: answer(1, [0, 1.5]) }, { index: 1, original: answer(1), compressed: answer(2) }] };
  const photos = [{ index: 0, name: 'a', original: answer(1), compressed: answer(1) }, { index: 1, name: 'b', original: answer(1), compressed: answer(3) }];
  const c = ortComparison(r, photos);
  assert.deepEqual(c.rows.map((x) => [x.name, x.same, x.delta]), [['a', true, 0.5], ['b', false, 0]]);
  assert.equal(c.agree, false);
  assert.equal(c.originalMs, 2);
});

test('a preset that costs more than the floor or slows the model down says so', () => {
  const report = { after: { bytes: { onnx: { raw: 1e6 } }, macs: 5 }, before: { macs: 10 }, agreement: { agreement: 0, n: 3 }, agreement_photos: 'held_back' };
  const bench = { original: { median: 10, warmRuns: 3 }, compressed: { median: 12.7, warmRuns: 3 } };
  const run = presetPoint('Fastest', report, bench, 0.8);
  assert.ok(Math.abs(run.speedup - 10 / 12.7) < 1e-9);
  const v = presetVerdict(run, 'CPU (wasm)');
  assert.match(v, /"Fastest" on this model agrees with the original on 0 of 3 photos \(0 %\), below the 80 % floor/);
  assert.match(v, /runs ×1\.27 slower than the original on CPU \(wasm\)/);
  // Kept the floor, within the timing noise, or no warm run to compare: nothing to say.
  const good = presetPoint('int8', { ...report, agreement: { agreement: 0.9 } }, { original: bench.original, compressed: { median: 10.5, warmRuns: 3 } }, 0.8);
  assert.equal(presetVerdict(good, 'CPU'), null);
  assert.equal(presetPoint('x', report, { original: bench.original, compressed: { median: 50, warmRuns: 0 } }, null).speedup, null);
});

test('a run says how long it has taken and, from the pace of its steps, how long it has left', () => {
  assert.equal(runTimes({ t0: 0, step: 1, steps: 10 }, 5000), '5 s elapsed');
  // 4 of 10 steps in 20 s: 30 s left.
  assert.equal(runTimes({ t0: 0, step: 5, steps: 10 }, 20000), '20 s elapsed, about 30 s left');
  // Auto: the candidate's own steps, from its start.
  assert.equal(runTimes({ t0: 0, stepsT0: 100000, step: 3, steps: 4, candidate: true }, 120000), '2 min elapsed, this candidate about 20 s left');
  assert.equal(runTimes({ t0: 0, step: 0, steps: 0 }, 1000), '1 s elapsed');
});

test('the limit in the deployment runtime, as typed', () => {
  assert.equal(runtimeLimit(' '), null);
  assert.equal(runtimeLimit('12.5'), 12.5);
  assert.throws(() => runtimeLimit('0'), /above 0/);
});

// The cases of src/compress/auto/runtime.rs's test: the page's mirror decides as the core does.
test('timed in the deployment runtime, Auto keeps the most faithful candidate under the limit', () => {
  const c = (kl, agreement, fits) => ({ kl, agreement, fits, target_problem: null });
  // 1 the original (over the budget), 2 and 3 keep the floor, 4 does not.
  const a = { shown: 1, options: { min_agreement: 0.8 }, candidates: [c(0, 1, false), c(0.01, 0.9, true), c(0.02, 0.85, true), c(0.5, 0.5, true)] };
  const ms = [40, 30, 20, 10];
  const pick = (limit) => runtimePick(a, ms, limit, 'LiteRT');
  assert.deepEqual(pick(null), { index: 1, under_limit: true, message: '4 candidates timed in LiteRT, the fastest 4 (10.0 ms)' });
  assert.equal(pick(35).index, 1, 'the least KL under 35 ms');
  assert.equal(pick(25).index, 2);
  const few = pick(15);
  assert.equal(few.index, 3);
  assert.ok(few.message.endsWith('most agreeing (none keeps the floor) of the 1 under 15 ms'), few.message);
  const none = pick(5);
  assert.deepEqual([none.index, none.under_limit], [3, false]);
  assert.ok(none.message.endsWith('the fastest is 4 (10.0 ms)'), none.message);
});
