// End-to-end: compress in the page (WebGPU on SwiftShader), compare, benchmark, download — and
// check the downloads outside the browser: the ONNX in onnxruntime (photos preprocessed
// independently, by Pillow), the safetensors with the CLI, the panel's numbers against
// `modelslim compress --json`.
//
// Needs what page.test.mjs needs, plus MODELSLIM_PYTHON: a Python with onnxruntime, numpy and
// Pillow (scripts/setup.sh installs one).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, existsSync, readFileSync, statSync, copyFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, DIST, serveDist, launchChromium, openPage as open } from './harness.mjs';

const OUT = join(ROOT, 'tests', 'e2e', 'output');
const BIN = process.env.MODELSLIM_BIN || join(ROOT, 'target', 'release', 'modelslim');
const PYTHON = process.env.MODELSLIM_PYTHON || 'python3';
const SAMPLES = join(ROOT, 'www', 'samples');
const PHOTOS = ['chelsea.png', 'coffee.png'].map((n) => join(SAMPLES, n));
// 256×256 crops of the same photos: resizing the short side to 256 leaves them as they are, so
// Pillow and the page give the network bit-identical inputs and logits can be compared tightly.
const PHOTOS_256 = ['chelsea-256.png', 'coffee-256.png'].map((n) => join(ROOT, 'tests', 'fixtures', 'photos256', n));
const TIMEOUT = 10 * 60 * 1000;

let server, base, browser;

before(async () => {
  mkdirSync(OUT, { recursive: true });
  assert.ok(existsSync(join(DIST, 'index.html')), `no built page at ${DIST}: run trunk build --release`);
  ({ server, base } = await serveDist());
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  server?.close();
});

const openPage = (query, { initScript, ready } = {}) => open(browser, base + query, { initScript, ready });

// Upload photos and wait until the original model has answered for each.
async function upload(page, photos) {
  await page.setInputFiles('[data-testid=upload]', photos);
  await page.waitForFunction((n) => document.querySelectorAll('[data-testid=top5-original]').length === n,
    photos.length, { timeout: TIMEOUT });
}

// Wait until the compressed model has answered for `n` photos; a message instead fails the test.
async function compressedShown(page, n) {
  await page.waitForFunction((n) => document.querySelectorAll('[data-testid=top5-compressed]').length === n
    || !document.querySelector('[data-testid=error]').hidden, n, { timeout: TIMEOUT });
  assert.equal(await page.isHidden('[data-testid=error]'), true, await page.textContent('[data-testid=error]'));
}

function lists(page, testid) {
  return page.$$eval(`[data-testid=${testid}]`, (ols) => ols.map((ol) => ({
    image: ol.dataset.image,
    logits: JSON.parse(ol.dataset.logits),
    top5: [...ol.querySelectorAll('li')].map((li) => ({ index: Number(li.dataset.classIndex), prob: Number(li.dataset.prob) })),
  })));
}

async function download(page, testid) {
  const [dl] = await Promise.all([page.waitForEvent('download'), page.click(`[data-testid=${testid}]`)]);
  const path = join(OUT, dl.suggestedFilename());
  await dl.saveAs(path);
  return { path, name: dl.suggestedFilename() };
}

function onnxruntime(onnx, photos, { optimize }) {
  const args = [join(ROOT, 'tests/golden/onnx_top5.py'), onnx, ...photos, ...(optimize ? [] : ['--no-optimize'])];
  return execFileSync(PYTHON, args, { maxBuffer: 64 << 20 }).toString().trim().split('\n').map((l) => JSON.parse(l));
}

function maxLogitDiff(a, b) {
  return Math.max(...a.map((v, i) => Math.abs(v - b[i])));
}

function maxProbDiff(a, b) {
  const pb = new Map(b.map((c) => [c.index, c.prob]));
  return Math.max(...a.filter((c) => pb.has(c.index)).map((c) => Math.abs(c.prob - pb.get(c.index))));
}

test('compress 30 % channels + int8 on WebGPU; downloads run outside the browser', { timeout: 3 * TIMEOUT }, async () => {
  const { page, context, problems } = await openPage('?weights=seeded');
  assert.equal(await page.getAttribute('[data-testid=backend]', 'data-kind'), 'wgpu');
  await upload(page, PHOTOS_256);

  await page.fill('[data-testid=prune-channels]', '0.3');
  await page.selectOption('[data-testid=quant]', 'int8');
  const t0 = Date.now();
  await page.click('[data-testid=compress]');
  await page.waitForSelector('[data-testid=progress]:not([hidden])', { timeout: 60_000 });
  await compressedShown(page, 2);
  const seconds = (Date.now() - t0) / 1e3;
  const compressed = await lists(page, 'top5-compressed');
  // The agreement shown is the share of photos whose compressed top-1 is the original's, as
  // the two top-5 lists on the cards say (no step fitted on the photos: both count).
  const original = await lists(page, 'top5-original');
  const same = compressed.filter((c, i) => c.top5[0].index === original[i].top5[0].index).length;
  const shown = await page.$eval('[data-testid=agreement]', (el) => ({ ...el.dataset, text: el.textContent }));
  assert.equal(Number(shown.n), 2, 'the agreement is not over both photos');
  assert.equal(Number(shown.agreement), same / 2, `agreement ${shown.agreement}, but ${same} of 2 top-1s are the same`);
  assert.match(shown.text, new RegExp(`: ${same} of 2 `));

  // The ONNX file in onnxruntime, on the photos as Pillow reads them: the same top-1, logits
  // within 1e-3 (float rounding only: the int8 weights dequantize to the same values on both
  // sides; the logits span ~9).
  const onnx = await download(page, 'download-onnx');
  assert.equal(onnx.name, 'resnet18-c30-int8.onnx');
  const ort = onnxruntime(onnx.path, PHOTOS_256, { optimize: true });
  for (const [i, r] of ort.entries()) {
    assert.equal(r.top5[0].index, compressed[i].top5[0].index, `${r.image}: onnxruntime's top-1 differs from the page`);
    const d = maxLogitDiff(compressed[i].logits, r.logits);
    assert.ok(d <= 1e-3, `${r.image}: logits differ by ${d}`);
  }

  // The safetensors with the CLI: the same top-5.
  const st = await download(page, 'download-safetensors');
  assert.equal(st.name, 'resnet18-c30-int8.safetensors');
  const cli = execFileSync(BIN, ['predict', '--weights', st.path, '--json', ...PHOTOS_256.flatMap((p) => ['--image', p])])
    .toString().trim().split('\n').map((l) => JSON.parse(l));
  for (const [i, r] of cli.entries()) {
    assert.deepEqual(compressed[i].top5.map((c) => c.index), r.top5.map((c) => c.index), `${r.image}: CLI top-5 differs`);
    const d = maxLogitDiff(compressed[i].logits, r.logits);
    assert.ok(d <= 1e-3, `${r.image}: the CLI's logits differ by ${d}`);
  }
  const card = JSON.parse(execFileSync('cat', [(await download(page, 'download-card')).path]).toString());
  assert.equal(card.settings.prune_channels, 0.3);
  assert.equal(card.after.bytes.onnx.raw, statSync(onnx.path).size);

  // The panel's numbers equal the CLI's for the same settings.
  const ref = JSON.parse(execFileSync(BIN, ['compress', '--weights', 'seeded:42', '--out', join(OUT, 'cli-c30-int8.safetensors'),
    '--onnx', join(OUT, 'cli-c30-int8.onnx'), '--prune-channels', '0.3', '--quant', 'int8', '--json']).toString());
  for (const [row, m] of [['bench-original', ref.before], ['bench-compressed', ref.after]]) {
    const d = await page.$eval(`[data-testid=${row}]`, (el) => ({ ...el.dataset }));
    assert.equal(Number(d.params), m.params, `${row} params`);
    assert.equal(Number(d.macs), m.macs, `${row} MACs`);
    assert.equal(Number(d.bytesOnnx), m.bytes.onnx.raw, `${row} ONNX bytes`);
    assert.equal(Number(d.bytesSafetensors), m.bytes.safetensors.raw, `${row} safetensors bytes`);
  }
  assert.equal(statSync(st.path).size, ref.after.bytes.safetensors.raw);
  // No calibration photos involved: the page and the CLI write the same bytes.
  assert.ok(readFileSync(onnx.path).equals(readFileSync(join(OUT, 'cli-c30-int8.onnx'))), 'the page\'s ONNX differs from the CLI\'s');
  assert.ok(readFileSync(st.path).equals(readFileSync(join(OUT, 'cli-c30-int8.safetensors'))), 'the page\'s safetensors differs from the CLI\'s');

  // Latency from the photo runs right away; then 2 timed runs after a warm-up.
  for (const row of ['bench-original', 'bench-compressed']) {
    assert.ok(Number(await page.getAttribute(`[data-testid=${row}]`, 'data-ms-median')) > 0, `${row} has no latency`);
  }
  await page.fill('#bench-runs', '2');
  await page.click('[data-testid=bench]');
  await page.waitForFunction(() => /runs after/.test(document.querySelector('[data-testid=bench-compressed]').dataset.msSource),
    null, { timeout: TIMEOUT });
  const ms = await page.$$eval('[data-testid^=bench-]', (rows) => rows.filter((r) => r.dataset.msMedian)
    .map((r) => Number(r.dataset.msMedian)));
  assert.equal(ms.length, 2);
  assert.ok(ms.every((v) => v > 0));
  await page.screenshot({ path: join(OUT, 'compressed.png'), fullPage: true });
  const steps = JSON.parse(await page.getAttribute('#steps-timing', 'data-steps'));
  console.log(`steps: ${steps.map((st) => `${st.label}: ${st.seconds.toFixed(1)} s`).join('; ')}`);
  console.log(`compress + compare took ${seconds.toFixed(1)} s in the page; warm median original ${ms[0].toFixed(0)} ms, compressed ${ms[1].toFixed(0)} ms`);

  // The downloaded safetensors, loaded back into the page, predicts what "after" showed.
  await page.setInputFiles('[data-testid=weights-file]', st.path);
  await page.waitForFunction(() => /model ready/.test(document.querySelector('[data-testid=status]').textContent)
    && document.querySelectorAll('[data-testid=top5-compressed]').length === 0, null, { timeout: TIMEOUT });
  const reloaded = await lists(page, 'top5-original');
  assert.equal(reloaded.length, 2);
  for (const [i, r] of reloaded.entries()) {
    assert.deepEqual(r.top5.map((c) => c.index), compressed[i].top5.map((c) => c.index));
    assert.ok(maxProbDiff(r.top5, compressed[i].top5) <= 1e-6, 'reloaded probabilities differ');
  }
  assert.deepEqual(problems, [], 'the browser console must stay clean');
  await context.close();
});

// With int8 activations the exported graph's arithmetic is exact (power-of-two activation steps,
// 5-bit weight scales), so the page on WebGPU, onnxruntime as written and onnxruntime's fused
// integer kernels must give the same logits: 1e-3 bounds f32 rounding in the classifier's sums
// on logits spanning ~9, where the old arbitrary scales differed by 0.03–0.04.
test('check in ONNX Runtime (30 % channels + int8, CPU fallback): onnxruntime-web agrees and times both files, from this origin only', { timeout: 2 * TIMEOUT }, async () => {
  const { page, context, problems } = await openPage('?weights=seeded&backend=cpu');
  const requests = [];
  context.on('request', (r) => requests.push(r.url()));
  await upload(page, PHOTOS_256);
  await page.fill('[data-testid=prune-channels]', '0.3');
  await page.selectOption('[data-testid=quant]', 'int8');
  await page.click('[data-testid=compress]');
  await compressedShown(page, 2);
  assert.deepEqual(requests.filter((u) => /\/ort\//.test(u)), [], 'onnxruntime-web must load only when asked');

  await page.fill('#bench-runs', '3');
  await page.click('[data-testid=ort-check]');
  await page.waitForFunction(() => document.querySelector('[data-testid=ort-result]').dataset.agree !== undefined
    || !document.querySelector('[data-testid=error]').hidden, null, { timeout: TIMEOUT });
  assert.equal(await page.isHidden('[data-testid=error]'), true, await page.textContent('[data-testid=error]'));
  const rows = await page.$$eval('[data-testid=ort-row]', (trs) => trs.map((tr) => ({ ...tr.dataset })));
  assert.equal(rows.length, 2);
  for (const r of rows) {
    assert.equal(r.ortTop1, r.pageTop1, 'onnxruntime-web\'s top-1 on the compressed file differs from the page');
    assert.equal(r.ortOriginalTop1, r.pageOriginalTop1, 'onnxruntime-web\'s top-1 on the original differs from the page');
  }
  const box = await page.$eval('[data-testid=ort-result]', (el) => ({ ...el.dataset, text: el.querySelector('p').textContent }));
  assert.equal(box.agree, 'true');
  for (const k of ['originalMs', 'compressedMs']) assert.ok(Number(box[k]) > 0, `${k} ${box[k]}`);
  console.log(`ONNX Runtime check: ${box.text}`);
  // The runtime came from the page's own origin, and nothing else was asked for.
  assert.ok(requests.some((u) => u.endsWith('/ort/ort-wasm-simd-threaded.wasm')), 'the runtime was not loaded');
  const foreign = requests.filter((u) => !u.startsWith(base) && !/^(blob|data):/.test(u));
  assert.deepEqual(foreign, [], 'requests outside the page\'s origin');
  assert.deepEqual(problems, [], 'the browser console must stay clean');
  await context.close();
});

test('int8 weights + activations on WebGPU: the downloaded ONNX gives the page\'s logits', { timeout: 2 * TIMEOUT }, async () => {
  const { page, context, problems } = await openPage('?weights=seeded');
  assert.equal(await page.getAttribute('[data-testid=backend]', 'data-kind'), 'wgpu');
  await upload(page, PHOTOS_256);
  await page.click('text=int8 for Raspberry Pi / ARM');
  await page.click('[data-testid=compress]');
  await compressedShown(page, 2);
  const compressed = await lists(page, 'top5-compressed');
  const onnx = await download(page, 'download-onnx');
  assert.equal(onnx.name, 'resnet18-int8a8.onnx');
  for (const optimize of [false, true]) {
    const ort = onnxruntime(onnx.path, PHOTOS_256, { optimize });
    for (const [i, r] of ort.entries()) {
      const d = maxLogitDiff(compressed[i].logits, r.logits);
      console.log(`${r.image}, optimize=${optimize}: max |Δlogit| ${d.toExponential(2)}`);
      assert.equal(r.top5[0].index, compressed[i].top5[0].index, `${r.image}: onnxruntime's top-1 differs from the page`);
      assert.ok(d <= 1e-3, `${r.image}, optimize=${optimize}: logits differ by ${d}`);
    }
  }
  assert.deepEqual(problems, [], 'the browser console must stay clean');
  await context.close();
});

// The TFLite writer lives in the engine module the page loads on demand: the first click loads
// it, then saves a full-integer file whose integers are the page's (power-of-two steps, adds
// whose inputs are as coarse as their sum, logits rounded to the file's step on the page too),
// so LiteRT's logits are the page's: within half that step, which is the same int8 logit.
test('download TFLite (int8 weights + activations, CPU fallback): LiteRT gives the page\'s integers and top-1; the targets table; Check in LiteRT agrees; this origin only', { timeout: 2 * TIMEOUT }, async () => {
  const { page, context, problems } = await openPage('?weights=seeded&backend=cpu');
  const requests = [];
  context.on('request', (r) => requests.push(r.url()));
  await upload(page, PHOTOS_256);
  await page.click('text=int8 for Raspberry Pi / ARM');
  await page.click('[data-testid=compress]');
  await compressedShown(page, 2);
  const compressed = await lists(page, 'top5-compressed');
  assert.deepEqual(requests.filter((u) => /modelslim-training/.test(u)), [], 'the module that writes TFLite must load only when asked');
  const [dl] = await Promise.all([
    page.waitForEvent('download', { timeout: TIMEOUT }),
    page.click('[data-testid=download-tflite]'),
  ]);
  const path = join(OUT, dl.suggestedFilename());
  await dl.saveAs(path);
  assert.equal(dl.suggestedFilename(), 'resnet18-int8a8.tflite');
  assert.equal(await page.isHidden('[data-testid=error]'), true, await page.textContent('[data-testid=error]'));
  const file = readFileSync(path);
  assert.equal(file.subarray(4, 8).toString(), 'TFL3');
  const litert = onnxruntime(path, PHOTOS_256, { optimize: true });
  for (const [i, r] of litert.entries()) {
    const d = maxLogitDiff(compressed[i].logits, r.logits);
    console.log(`${r.image}: LiteRT max |Δlogit| ${d.toFixed(4)}, the file's logit step ${r.step.toFixed(4)}`);
    assert.equal(r.top5[0].index, compressed[i].top5[0].index, `${r.image}: LiteRT's top-1 differs from the page`);
    assert.ok(d <= r.step * 0.5, `${r.image}: logits differ by ${d}`);
  }
  await page.waitForSelector('[data-testid=targets-row]');
  const rows = await page.$$eval('[data-testid=targets-row]', (trs) => trs.map((tr) => ({ ...tr.dataset, text: tr.textContent })));
  assert.equal(rows.length, 5);
  for (const r of rows) assert.ok(Number(r.fileBytes) > 0 && Number(r.peakBytes) > 0, r.text);
  assert.equal(rows[0].fits, 'true', rows[0].text);
  console.log(`targets: ${rows.map((r) => `${r.text.split(' ')[0]}… fits ${r.fits}`).join('; ')}`);

  // "Check in LiteRT": LiteRT.js, served with the page and loaded now, runs the original and
  // the compressed TFLite file on both photos with the page's top-1s.
  assert.deepEqual(requests.filter((u) => /\/litert\//.test(u)), [], 'LiteRT.js must load only when asked');
  await page.fill('#bench-runs', '3');
  await page.click('[data-testid=litert-check]');
  await page.waitForFunction(() => document.querySelector('[data-testid=litert-result]').dataset.agree !== undefined
    || !document.querySelector('[data-testid=error]').hidden, null, { timeout: TIMEOUT });
  assert.equal(await page.isHidden('[data-testid=error]'), true, await page.textContent('[data-testid=error]'));
  const checked = await page.$$eval('[data-testid=litert-row]', (trs) => trs.map((tr) => ({ ...tr.dataset })));
  assert.equal(checked.length, 2);
  for (const r of checked) {
    assert.equal(r.ortTop1, r.pageTop1, 'LiteRT.js\'s top-1 on the compressed file differs from the page');
    assert.equal(r.ortOriginalTop1, r.pageOriginalTop1, 'LiteRT.js\'s top-1 on the original differs from the page');
    // The page rounds its logits to the file's step: LiteRT.js gives the same integers.
    assert.ok(Number(r.delta) <= litert[0].step * 0.5, `LiteRT.js's logits differ from the page's by ${r.delta}`);
  }
  const box = await page.$eval('[data-testid=litert-result]', (el) => ({ ...el.dataset, text: el.querySelector('p').textContent }));
  assert.equal(box.agree, 'true');
  for (const k of ['originalMs', 'compressedMs']) assert.ok(Number(box[k]) > 0, `${k} ${box[k]}`);
  console.log(`LiteRT check: ${box.text}`);
  await page.locator('[data-testid=litert-result]').screenshot({ path: join(OUT, 'litert-check.png') });
  assert.ok(requests.some((u) => u.includes('/litert/litert_wasm')), 'the runtime was not loaded');

  // Compress again (int8 weights only, a float file): the check described the model that is
  // gone, so it goes; the targets table is measured again on the new model's file.
  await page.uncheck('[data-testid=act-quant]');
  await page.click('[data-testid=compress]');
  await page.waitForFunction((before) => document.querySelector('[data-testid=litert-result]').dataset.agree === undefined
    && [...document.querySelectorAll('[data-testid=targets-row]')].some((tr) => tr.dataset.fileBytes !== before)
    || !document.querySelector('[data-testid=error]').hidden, rows[0].fileBytes, { timeout: TIMEOUT });
  assert.equal(await page.isHidden('[data-testid=error]'), true, await page.textContent('[data-testid=error]'));
  assert.equal(await page.textContent('[data-testid=litert-result]'), '', 'the LiteRT check of the previous model is still shown');
  const after = await page.$$eval('[data-testid=targets-row]', (trs) => trs.map((tr) => ({ ...tr.dataset })));
  assert.equal(after.length, 5);
  // A float file now: no integer-only device runs it, and each says what would.
  for (const r of after.filter((r) => r.name !== 'Raspberry Pi Zero 2 W')) assert.equal(r.fits, 'false', JSON.stringify(r));
  assert.equal(await page.locator('[data-testid=targets-auto]').count(), 4);
  console.log(`targets after recompressing: ${after.map((r) => `${r.name} ${r.fileBytes} B fits ${r.fits}`).join('; ')}`);
  const foreign = requests.filter((u) => !u.startsWith(base) && !/^(blob|data):/.test(u));
  assert.deepEqual(foreign, [], 'requests outside the page\'s origin');
  assert.deepEqual(problems, [], 'the browser console must stay clean');
  await context.close();
});

test('drop one block of ResNet18 on WebGPU: the chart marks it, the downloaded ONNX gives the page\'s logits', { timeout: 2 * TIMEOUT }, async () => {
  const { page, context, problems } = await openPage('?weights=seeded');
  assert.equal(await page.getAttribute('[data-testid=backend]', 'data-kind'), 'wgpu');
  await upload(page, PHOTOS_256);
  await page.fill('[data-testid=drop-blocks]', 'layer3.1');
  await page.click('[data-testid=compress]');
  await compressedShown(page, 2);
  const struck = await page.$$eval('#layers .crow.dropped .lname', (els) => els.map((e) => e.textContent));
  assert.deepEqual(struck, ['layer3.1.conv1', 'layer3.1.conv2']);
  const compressed = await lists(page, 'top5-compressed');
  const onnx = await download(page, 'download-onnx');
  assert.equal(onnx.name, 'resnet18-d1.onnx');
  const ort = onnxruntime(onnx.path, PHOTOS_256, { optimize: true });
  for (const [i, r] of ort.entries()) {
    assert.equal(r.top5[0].index, compressed[i].top5[0].index, `${r.image}: onnxruntime's top-1 differs from the page`);
    const d = maxLogitDiff(compressed[i].logits, r.logits);
    assert.ok(d <= 1e-3, `${r.image}: logits differ by ${d}`);
  }
  assert.deepEqual(problems, [], 'the browser console must stay clean');
  await context.close();
});

// The engine runs in a worker: while it predicts two photos and compresses them, no task on the
// page's main thread may *work* longer than 50 ms (the longtask threshold; measured 4–13 ms here,
// and 153 ms with the engine on the main thread, `?engine=main`). A task's wall time (Chromium's
// `longtask`) is no measure of that on a loaded machine: a 20 ms task the scheduler suspends for
// 300 ms lasts 320 ms, and on WebGPU over SwiftShader the GPU process's shader threads take the cores
// themselves. So the test runs with a CPU-bound process beside the browser and reads each
// main-thread task's thread CPU time from Chromium's trace (`tdur`), which suspension does not
// grow; the wall times are printed beside it.
async function traced(browser, page, work) {
  await browser.startTracing(page, { categories: ['toplevel', 'disabled-by-default-devtools.timeline'] });
  await work();
  const trace = JSON.parse((await browser.stopTracing()).toString('utf8'));
  const events = trace.traceEvents ?? trace;
  const main = new Set(events.filter((e) => e.ph === 'M' && e.name === 'thread_name' && e.args?.name === 'CrRendererMain')
    .map((e) => `${e.pid}:${e.tid}`));
  const tasks = events.filter((e) => e.ph === 'X' && main.has(`${e.pid}:${e.tid}`)
    && (e.name === 'ThreadControllerImpl::RunTask' || e.name === 'RunTask'));
  assert.ok(tasks.length > 0, 'no main-thread tasks in the trace');
  assert.ok(tasks.some((e) => e.tdur !== undefined), 'the trace has no thread CPU times');
  const ms = (us) => Math.round((us ?? 0) / 1000);
  return { cpu: Math.max(...tasks.map((e) => ms(e.tdur))), wall: Math.max(...tasks.map((e) => ms(e.dur))) };
}

for (const backend of ['wgpu', 'cpu']) {
  test(`the page's main thread works at most 50 ms at a time while the engine works, with the CPU loaded (${backend})`, { timeout: 2 * TIMEOUT }, async () => {
    const { page, context, problems } = await openPage(`?weights=seeded${backend === 'cpu' ? '&backend=cpu' : ''}`);
    assert.equal(await page.getAttribute('[data-testid=backend]', 'data-kind'), backend);
    assert.equal(await page.getAttribute('[data-testid=backend]', 'data-worker'), 'true', 'the engine is not in a worker');
    // A CPU-bound process beside the browser for the whole measurement.
    const load = spawn(process.execPath, ['-e', 'for (;;) {}'], { stdio: 'ignore' });
    try {
      const predicting = await traced(browser, page, () => upload(page, PHOTOS_256));
      await page.fill('[data-testid=prune-channels]', '0.3');
      await page.selectOption('[data-testid=quant]', 'int8');
      const compressing = await traced(browser, page, async () => {
        await page.click('[data-testid=compress]');
        await compressedShown(page, 2);
      });
      console.log(`${backend}, CPU loaded: longest main-thread task predicting ${predicting.cpu} ms of CPU (${predicting.wall} ms wall), compressing ${compressing.cpu} ms of CPU (${compressing.wall} ms wall)`);
      assert.ok(predicting.cpu <= 50, `predicting kept the main thread busy for ${predicting.cpu} ms`);
      assert.ok(compressing.cpu <= 50, `compressing kept the main thread busy for ${compressing.cpu} ms`);
    } finally {
      load.kill();
    }
    assert.deepEqual(problems, [], 'the browser console must stay clean');
    await context.close();
  });
}

// GPTQ int4 of ResNet18 on two photos in the page's CPU engine: with `threads` threads (the
// threaded module) or `?threads=1` (the single-threaded one). Resolves to its logits and file.
async function gptqOnCpu(threads) {
  const { page, context, problems } = await openPage(`?weights=seeded&backend=cpu&threads=${threads}`);
  assert.equal(await page.getAttribute('[data-testid=backend]', 'data-threads'), String(threads));
  await upload(page, PHOTOS_256);
  await page.selectOption('[data-testid=quant]', 'int4');
  await page.selectOption('[data-testid=quant-method]', 'gptq');
  const t0 = Date.now();
  await page.click('[data-testid=compress]');
  await compressedShown(page, 2);
  console.log(`GPTQ int4 of ResNet18 with 2 photos in the page (CPU, ${threads} thread(s)): ${((Date.now() - t0) / 1e3).toFixed(1)} s`);
  const original = await lists(page, 'top5-original');
  const compressed = await lists(page, 'top5-compressed');
  const onnx = await download(page, 'download-onnx');
  assert.equal(onnx.name, 'resnet18-int4-gptq.onnx');
  assert.deepEqual(problems, [], 'the browser console must stay clean');
  await context.close();
  return { original, compressed, onnx: { ...onnx, bytes: readFileSync(onnx.path) } };
}

test('calibrated (GPTQ) int4 on the CPU: two threads write the one thread\'s file; the downloaded ONNX gives the page\'s top-1', { timeout: 4 * TIMEOUT }, async () => {
  const two = await gptqOnCpu(2);
  const ort = onnxruntime(two.onnx.path, PHOTOS_256, { optimize: false });
  for (const [i, r] of ort.entries()) {
    const d = maxLogitDiff(two.compressed[i].logits, r.logits);
    console.log(`${r.image}: max |Δlogit| ${d.toExponential(2)}`);
    assert.equal(r.top5[0].index, two.compressed[i].top5[0].index, `${r.image}: onnxruntime's top-1 differs from the page`);
    // Weight-only: both sides use the same dequantized weights in float.
    assert.ok(d <= 1e-3, `${r.image}: logits differ by ${d}`);
  }
  // Threads share out rows and columns, never one sum: the same network, the same file. 1e-4
  // bounds float rounding on logits spanning ~9, should a kernel split a sum after all.
  const one = await gptqOnCpu(1);
  for (const [i, o] of one.original.entries()) {
    const d = maxLogitDiff(o.logits, two.original[i].logits);
    console.log(`${o.image}: one thread against two, max |Δlogit| ${d.toExponential(2)}`);
    assert.ok(d <= 1e-4, `${o.image}: the threaded module's logits differ by ${d}`);
  }
  assert.ok(one.onnx.bytes.equals(two.onnx.bytes), 'GPTQ on two threads wrote another file than on one');
});

test('bad settings and missing photos get a message; the page stays usable', { timeout: TIMEOUT }, async () => {
  const { page, context, problems } = await openPage('?weights=seeded&backend=cpu');
  await page.fill('[data-testid=prune-channels]', '0.95');
  await page.click('[data-testid=compress]');
  await page.waitForSelector('[data-testid=error]:not([hidden])');
  assert.match(await page.textContent('[data-testid=error]'), /between 0 and 0.9/);

  await page.click('text=int8 for Raspberry Pi / ARM');
  await page.click('[data-testid=compress]');
  await page.waitForFunction(() => /upload at least 4/.test(document.querySelector('[data-testid=error]').textContent));

  // With a photo the same preset works.
  await page.setInputFiles('[data-testid=upload]', PHOTOS[0]);
  await page.waitForSelector('[data-testid=top5-original]', { timeout: TIMEOUT });
  await page.click('[data-testid=compress]');
  await page.waitForSelector('[data-testid=top5-compressed]', { timeout: TIMEOUT });
  assert.equal(await page.isHidden('[data-testid=error]'), true, await page.textContent('[data-testid=error]'));
  assert.match(await page.textContent('[data-testid=download-onnx]'), /resnet18-int8a8\.onnx/);

  // The balanced preset ranks channels on the photo and refits what reads them.
  await page.click('text=Balanced: 30 % channels + int8');
  assert.equal(await page.isChecked('[data-testid=reconstruct]'), true);
  await page.click('[data-testid=compress]');
  await page.waitForFunction(() => /c30-refit-int8\.onnx/.test(document.querySelector('[data-testid=download-onnx]').textContent)
    || !document.querySelector('[data-testid=error]').hidden, null, { timeout: TIMEOUT });
  assert.equal(await page.isHidden('[data-testid=error]'), true, await page.textContent('[data-testid=error]'));

  // The per-layer sensitivity chart: one row per conv and the classifier.
  await page.click('#sensitivity');
  await page.waitForFunction(() => document.querySelectorAll('#sens .crow').length === 21
    || !document.querySelector('[data-testid=error]').hidden, null, { timeout: TIMEOUT });
  assert.equal(await page.isHidden('[data-testid=error]'), true, await page.textContent('[data-testid=error]'));
  await page.screenshot({ path: join(OUT, 'sensitivity-cpu.png'), fullPage: true });
  assert.deepEqual(problems, [], 'the browser console must stay clean');
  await context.close();
});

// Every blob URL the page creates and has not revoked (a download link holds its file).
function countBlobUrls() {
  globalThis.__liveBlobUrls = new Set();
  const create = URL.createObjectURL;
  const revoke = URL.revokeObjectURL;
  URL.createObjectURL = (o) => { const u = create(o); globalThis.__liveBlobUrls.add(u); return u; };
  URL.revokeObjectURL = (u) => { globalThis.__liveBlobUrls.delete(u); revoke(u); };
}

// Bounds for 25 compressions after 5 warm-up ones: wasm memory never shrinks, so a leak of
// one int8 ResNet18 file (11.7 MB) per run would pass 64 MiB by the tenth; the JS heap is
// measured after a garbage collection.
const WASM_GROWTH_MIB = 64;
const HEAP_GROWTH_MIB = 16;

test('30 compress → download cycles in a row: wasm memory, JS heap and blob URLs stay bounded', { timeout: 3 * TIMEOUT }, async () => {
  const { page, context, problems } = await openPage('?weights=seeded&backend=cpu', { initScript: countBlobUrls });
  await upload(page, PHOTOS);
  await page.selectOption('[data-testid=quant]', 'int8');
  const cdp = await context.newCDPSession(page);
  const [worker] = page.workers();
  assert.ok(worker, 'the engine runs in a worker');
  const measure = async () => {
    await cdp.send('HeapProfiler.collectGarbage');
    const { usedSize } = await cdp.send('Runtime.getHeapUsage');
    const wasm = await worker.evaluate(() => globalThis.__wasmMemory.buffer.byteLength);
    const blobs = await page.evaluate(() => globalThis.__liveBlobUrls.size);
    return { heapMiB: usedSize / 2 ** 20, wasmMiB: wasm / 2 ** 20, blobs };
  };
  let warm = null;
  const t0 = Date.now();
  for (let i = 1; i <= 30; i++) {
    const previous = await page.getAttribute('[data-testid=download-onnx]', 'href');
    await page.click('[data-testid=compress]');
    await page.waitForFunction((prev) => {
      const href = document.querySelector('[data-testid=download-onnx]').getAttribute('href');
      return (href && href !== prev) || !document.querySelector('[data-testid=error]').hidden;
    }, previous, { timeout: TIMEOUT });
    assert.equal(await page.isHidden('[data-testid=error]'), true, await page.textContent('[data-testid=error]'));
    // Download: read every file through its link, as saving it does.
    const sizes = await page.$$eval('a[data-testid^=download-]',
      (links) => Promise.all(links.map(async (a) => (await (await fetch(a.href)).arrayBuffer()).byteLength)));
    assert.ok(sizes.every((n) => n > 0));
    if (i === 5) warm = await measure();
  }
  const end = await measure();
  console.log(`30 compressions in ${((Date.now() - t0) / 1000).toFixed(0)} s; after 5 → 30: wasm memory ` +
    `${warm.wasmMiB.toFixed(0)} → ${end.wasmMiB.toFixed(0)} MiB, JS heap ${warm.heapMiB.toFixed(1)} → ` +
    `${end.heapMiB.toFixed(1)} MiB, live blob URLs ${warm.blobs} → ${end.blobs}`);
  assert.ok(end.wasmMiB - warm.wasmMiB <= WASM_GROWTH_MIB, 'wasm memory grew');
  assert.ok(end.heapMiB - warm.heapMiB <= HEAP_GROWTH_MIB, 'the JS heap grew');
  // Three download links and the two photos' thumbnails.
  assert.ok(end.blobs <= 5, `${end.blobs} blob URLs are alive`);
  assert.deepEqual(problems, []);
  await context.close();
});

test('EfficientNet-Lite0 with real weights: cats and coffee in the page, int8 for the Pi', { timeout: 2 * TIMEOUT }, async () => {
  const pth = join(ROOT, 'www', 'models', 'efficientnet-lite0-57934424.pth');
  assert.ok(existsSync(pth), 'run scripts/setup.sh: it puts the EfficientNet-Lite0 weights in www/models/');
  const { page, context, problems } = await openPage('?weights=efficientnet-lite0');
  assert.match(await page.textContent('#model-info'), /EfficientNet-Lite0/);
  await upload(page, PHOTOS);
  const original = await lists(page, 'top5-original');
  // The same as the CLI on the package's file.
  const cli = execFileSync(BIN, ['predict', '--weights', pth, '--json', ...PHOTOS.flatMap((p) => ['--image', p])])
    .toString().trim().split('\n').map((l) => JSON.parse(l));
  for (const [i, r] of cli.entries()) {
    assert.deepEqual(original[i].top5.map((c) => c.index), r.top5.map((c) => c.index), `${r.image}: page and CLI differ`);
    assert.ok(maxProbDiff(original[i].top5, r.top5) <= 1e-3);
  }
  assert.ok([281, 282, 283, 284, 285].includes(original[0].top5[0].index), 'chelsea is not a cat');
  assert.equal(original[1].top5[0].index, 967, 'coffee is not espresso');

  await page.click('text=int8 for Raspberry Pi / ARM');
  await page.click('[data-testid=compress]');
  await compressedShown(page, 2);
  assert.match(await page.textContent('[data-testid=download-onnx]'), /efficientnet-lite0-int8a8\.onnx/);
  const compressed = await lists(page, 'top5-compressed');
  assert.equal(compressed[1].top5[0].index, 967, 'int8 coffee is not espresso');
  await page.screenshot({ path: join(OUT, 'efficientnet.png'), fullPage: true });
  assert.deepEqual(problems, [], 'the browser console must stay clean');
  await context.close();
});

/** The page on the CPU fallback with the ONNX file `file` loaded as "your own file" (its name shown). */
async function openOwnOnnx(file, name, query = '') {
  const opened = await openPage(`?weights=none&backend=cpu${query}`, { ready: 'engine' });
  const { page } = opened;
  await page.setInputFiles('[data-testid=weights-file]', file);
  await page.waitForFunction((n) => document.querySelector('#model-info').textContent.includes(n)
    || !document.querySelector('[data-testid=error]').hidden, name, { timeout: TIMEOUT });
  assert.equal(await page.isHidden('[data-testid=error]'), true, await page.textContent('[data-testid=error]'));
  return opened;
}

// A user's own network: docorient's MobileNetV2 orientation detector (one logit: the photo is
// upside down), read from its ONNX file, compressed in the page to int8 weights + activations;
// the downloaded ONNX gives the page's logits in onnxruntime (photos preprocessed by Pillow).
// Then the preprocessing form: other mean and std, and the photos are classified anew.
// Labelled photos: a folder whose sub-folders name the classes (an ImageNet wnid, or a class
// name), scored in the page before and after compressing as `modelslim eval` scores them.
test('labelled folders (EfficientNet-Lite0, CPU fallback): the page\'s accuracy before and after compressing is modelslim eval\'s', { timeout: 2 * TIMEOUT }, async () => {
  const pth = join(ROOT, 'www', 'models', 'efficientnet-lite0-57934424.pth');
  assert.ok(existsSync(pth), 'run scripts/setup.sh: it puts the EfficientNet-Lite0 weights in www/models/');
  const val = join(ROOT, 'tests', 'fixtures', 'imagenet-subset', 'val');
  const dir = join(OUT, 'labelled');
  rmSync(dir, { recursive: true, force: true });
  // Tench by wnid, golf balls by their class name.
  for (const [wnid, folder] of [['n01440764', 'n01440764'], ['n03445777', 'golf_ball']]) {
    mkdirSync(join(dir, folder), { recursive: true });
    for (const f of readdirSync(join(val, wnid))) copyFileSync(join(val, wnid, f), join(dir, folder, f));
  }
  // Cassette players in a folder that names no class, three of four listed in a labels.csv.
  const cassettes = readdirSync(join(val, 'n02979186')).slice(0, 4);
  mkdirSync(join(dir, 'unsorted'));
  for (const f of cassettes) copyFileSync(join(val, 'n02979186', f), join(dir, 'unsorted', f));
  writeFileSync(join(dir, 'labels.csv'), `file,class\n${cassettes.slice(0, 3).map((f) => `unsorted/${f},cassette player`).join('\n')}\n`);
  const eval_ = (args) => JSON.parse(execFileSync(BIN, ['eval', ...args, '--images', dir, '--json']).toString());
  const { page, context, problems } = await openPage('?weights=efficientnet-lite0&backend=cpu');
  await page.setInputFiles('[data-testid=upload-folder]', dir);
  await page.waitForFunction(() => document.querySelectorAll('[data-testid=top5-original]').length === 14
    && !document.querySelector('[data-testid=scores]').hidden
    || !document.querySelector('[data-testid=error]').hidden, null, { timeout: TIMEOUT });
  assert.equal(await page.isHidden('[data-testid=error]'), true, await page.textContent('[data-testid=error]'));
  const before = await page.$eval('[data-testid=scores]', (el) => ({ ...el.dataset }));
  const cli = eval_(['--weights', pth]);
  assert.equal(Number(before.labelled), cli.labelled);
  assert.equal(cli.labelled, 13);
  assert.equal(Number(before.originalTop1), cli.top1_count.k, 'the page\'s top-1 count differs from modelslim eval\'s');

  // int8 weights: the scores follow the compressed model, its reference the original.
  await page.click('text=int8 for Raspberry Pi / ARM');
  await page.uncheck('[data-testid=act-quant]');
  await page.click('[data-testid=compress]');
  await compressedShown(page, 14);
  await page.waitForFunction(() => document.querySelector('[data-testid=scores]').dataset.compressedTop1 !== undefined
    || !document.querySelector('[data-testid=error]').hidden, null, { timeout: TIMEOUT });
  const after = await page.$eval('[data-testid=scores]', (el) => ({ ...el.dataset, text: el.textContent }));
  const file = await download(page, 'download-safetensors');
  const cliAfter = eval_(['--weights', file.path, '--reference', pth]);
  console.log(`labelled photos: page ${after.text.slice(0, 300)}`);
  assert.equal(Number(after.compressedTop1), cliAfter.top1_count.k);
  assert.equal(Number(after.originalTop1), cliAfter.reference_top1.k);
  assert.equal(await page.locator('[data-testid=score-changed]').count(), (cliAfter.changed ?? []).length);
  await page.locator('[data-testid=scores]').screenshot({ path: join(OUT, 'labelled-scores.png') });
  assert.deepEqual(problems, [], 'the browser console must stay clean');
  await context.close();
});

test('your own ONNX network (docorient\'s MobileNetV2, CPU fallback): int8 weights + activations, the downloaded ONNX gives the page\'s logits; the preprocessing form', { timeout: 2 * TIMEOUT }, async () => {
  const file = process.env.MODELSLIM_DOCORIENT_ONNX;
  assert.ok(file && existsSync(file), 'run scripts/setup.sh: it fetches docorient\'s ONNX file and sets MODELSLIM_DOCORIENT_ONNX');
  const { page, context, problems } = await openOwnOnnx(file, 'orientation_detector');
  assert.equal(await page.isVisible('[data-testid=input-form]'), true);
  assert.equal(await page.inputValue('[data-testid=input-side]'), '224');
  assert.equal(await page.isDisabled('[data-testid=input-side]'), true, 'the file fixes the side');
  await upload(page, PHOTOS_256);
  const original = await lists(page, 'top5-original');
  await page.click('text=int8 for Raspberry Pi / ARM');
  await page.click('[data-testid=compress]');
  await compressedShown(page, 2);
  const compressed = await lists(page, 'top5-compressed');
  const onnx = await download(page, 'download-onnx');
  assert.equal(onnx.name, 'orientation_detector-int8a8.onnx');
  for (const [i, r] of onnxruntime(onnx.path, PHOTOS_256, { optimize: true }).entries()) {
    assert.equal(r.logits.length, 1, 'one logit');
    const d = maxLogitDiff(compressed[i].logits, r.logits);
    console.log(`${r.image}: page ${compressed[i].logits[0]}, onnxruntime ${r.logits[0]} (fp32 ${original[i].logits[0]})`);
    assert.ok(d <= 1e-3, `${r.image}: logits differ by ${d}`);
    assert.equal(compressed[i].top5[0].index, r.logits[0] > 0 ? 1 : 0, 'the top class is the logit\'s sign');
  }
  await page.screenshot({ path: join(OUT, 'onnx-model.png'), fullPage: true });
  await page.fill('[data-testid=input-mean]', '0.5, 0.5, 0.5');
  await page.fill('[data-testid=input-std]', '0.5, 0.5, 0.5');
  await page.click('[data-testid=input-apply]');
  await page.waitForFunction((before) => {
    const ol = document.querySelector('[data-testid=top5-original]');
    return ol && JSON.parse(ol.dataset.logits)[0] !== before;
  }, original[0].logits[0], { timeout: TIMEOUT });
  assert.equal(await page.inputValue('[data-testid=input-mean]'), '0.5, 0.5, 0.5');
  assert.deepEqual(problems, [], 'the browser console must stay clean');
  await context.close();
});

// A network whose input is not square: RapidOCR's 48×192 text-line classifier (Paddle), its
// size and normalisation typed into the preprocessing form, compressed to int8 weights +
// activations; the downloaded ONNX carries that preprocessing, and onnxruntime, given the photos
// preprocessed as it says (by Pillow), computes the page's logits.
test('a 48×192 ONNX network (RapidOCR\'s classifier, CPU fallback): the size typed in the form, the Pi preset, the layer chart, both runtime checks, distillation and Auto; the downloaded ONNX gives the page\'s logits', { timeout: 4 * TIMEOUT }, async () => {
  const file = process.env.MODELSLIM_RAPIDOCR_CLS_ONNX;
  assert.ok(file && existsSync(file), 'run scripts/setup.sh: it fetches RapidOCR\'s ONNX file and sets MODELSLIM_RAPIDOCR_CLS_ONNX');
  const { page, context, problems } = await openOwnOnnx(file, 'ch_ppocr');
  assert.equal(await page.isDisabled('[data-testid=input-side]'), false, 'the file leaves the size open');
  await page.fill('[data-testid=input-side]', '48x192');
  await page.fill('[data-testid=input-resize]', '219');
  await page.fill('[data-testid=input-mean]', '0.5, 0.5, 0.5');
  await page.fill('[data-testid=input-std]', '0.5, 0.5, 0.5');
  await page.click('[data-testid=input-apply]');
  await page.waitForFunction(() => document.querySelector('[data-testid=input-side]').value === '48x192', null, { timeout: TIMEOUT });
  assert.equal(await page.isHidden('[data-testid=error]'), true, await page.textContent('[data-testid=error]'));
  await upload(page, PHOTOS_256);
  await page.click('text=int8 for Raspberry Pi / ARM');
  await page.click('[data-testid=compress]');
  await compressedShown(page, 2);
  const compressed = await lists(page, 'top5-compressed');
  const onnx = await download(page, 'download-onnx');
  for (const [i, r] of onnxruntime(onnx.path, PHOTOS_256, { optimize: true }).entries()) {
    assert.equal(r.logits.length, 2, 'two classes');
    const d = maxLogitDiff(compressed[i].logits, r.logits);
    console.log(`${r.image}: page ${compressed[i].logits}, onnxruntime ${r.logits}`);
    assert.ok(d <= 1e-3, `${r.image}: logits differ by ${d}`);
  }
  // The layer chart: a row per conv and the classifier, named from the file's nodes.
  const layers = await page.$$eval('#layers .crow .lname', (els) => els.map((e) => e.textContent));
  assert.equal(layers.length, 54, layers.join(' '));
  assert.equal(new Set(layers).size, layers.length, 'layer names are distinct');
  await page.screenshot({ path: join(OUT, 'onnx-48x192.png'), fullPage: true });

  // Both runtime checks: onnxruntime-web and LiteRT.js run the original and the compressed file
  // with the page's top-1s.
  await page.fill('#bench-runs', '2');
  for (const [button, result, before] of [['ort-check', 'ort-result', null], ['litert-check', 'litert-result', 'download-tflite']]) {
    if (before) {
      const tflite = await download(page, before);
      assert.equal(readFileSync(tflite.path).subarray(4, 8).toString(), 'TFL3');
      await page.waitForSelector('[data-testid=targets-row]');
    }
    await page.click(`[data-testid=${button}]`);
    await page.waitForFunction((id) => document.querySelector(`[data-testid=${id}]`).dataset.agree !== undefined
      || !document.querySelector('[data-testid=error]').hidden, result, { timeout: TIMEOUT });
    assert.equal(await page.isHidden('[data-testid=error]'), true, await page.textContent('[data-testid=error]'));
    const box = await page.$eval(`[data-testid=${result}]`, (el) => ({ ...el.dataset, text: el.querySelector('p').textContent }));
    console.log(`RapidOCR, ${button}: ${box.text}`);
    assert.equal(box.agree, 'true', box.text);
  }

  // Distillation: three steps, a point each on the loss curve.
  await page.fill('[data-testid=distill-steps]', '3');
  await page.fill('[data-testid=distill-lr]', '0.00001');
  await page.fill('[data-testid=distill-batch]', '2');
  await page.click('[data-testid=distill]');
  await page.waitForFunction(() => !document.querySelector('[data-testid=distill-result]').hidden
    || !document.querySelector('[data-testid=error]').hidden, null, { timeout: TIMEOUT });
  assert.equal(await page.isHidden('[data-testid=error]'), true, await page.textContent('[data-testid=error]'));
  assert.equal(await page.getAttribute('[data-testid=loss-curve]', 'data-points'), '3');
  console.log(`RapidOCR, distillation: ${await page.textContent('[data-testid=distill-result]')}`);

  // Auto within a byte budget: int8 fits it, fp32 (0.59 MB) does not.
  const budget = 0.3;
  await page.selectOption('[data-testid=auto-kind]', 'bytes');
  await page.fill('[data-testid=auto-value]', String(budget));
  await page.fill('[data-testid=auto-floor]', '0');
  await page.click('[data-testid=auto]');
  await page.waitForFunction(() => !document.querySelector('[data-testid=auto-chart]').hasAttribute('hidden')
    || !document.querySelector('[data-testid=error]').hidden, null, { timeout: 3 * TIMEOUT });
  assert.equal(await page.isHidden('[data-testid=error]'), true, await page.textContent('[data-testid=error]'));
  console.log(`RapidOCR, Auto: ${await page.textContent('[data-testid=auto-status]')}`);
  const dots = await page.$$eval('[data-testid=auto-chart] circle', (cs) => cs.map((c) => ({
    bytes: Number(c.dataset.bytes), fits: c.dataset.fits === 'true', shown: c.classList.contains('shown'),
  })));
  const kept = dots.find((d) => d.shown);
  assert.ok(dots.length >= 2 && kept && kept.fits && kept.bytes <= budget * 1e6, JSON.stringify(dots));
  await compressedShown(page, 2);
  const auto = await lists(page, 'top5-compressed');
  const autoOnnx = await download(page, 'download-onnx');
  for (const [i, r] of onnxruntime(autoOnnx.path, PHOTOS_256, { optimize: true }).entries()) {
    const d = maxLogitDiff(auto[i].logits, r.logits);
    assert.ok(d <= 1e-3, `${r.image}: Auto's file gives logits ${d} from the page's`);
  }
  // The runtime checks described the model before Auto's: gone.
  assert.equal(await page.textContent('[data-testid=litert-result]'), '');
  assert.equal(await page.textContent('[data-testid=ort-result]'), '');

  // Auto for an ESP32-S3: its flash the budget (the box left empty), the kept model full
  // integer, its TFLite file within the flash and its activations within the RAM that the
  // targets table gives; LiteRT.js on that file answers as the page does.
  await page.selectOption('[data-testid=auto-deploy]', 'target:ESP32-S3');
  assert.equal(await page.inputValue('[data-testid=auto-value]'), '', 'a device\'s budget is its flash');
  await page.click('[data-testid=auto]');
  await page.waitForFunction(() => [...document.querySelectorAll('[data-testid=auto-chart] circle')].some((c) => c.dataset.tfliteBytes)
    || !document.querySelector('[data-testid=error]').hidden, null, { timeout: 3 * TIMEOUT });
  assert.equal(await page.isHidden('[data-testid=error]'), true, await page.textContent('[data-testid=error]'));
  console.log(`RapidOCR, Auto for ESP32-S3: ${await page.textContent('[data-testid=auto-status]')}`);
  const device = await page.$$eval('[data-testid=auto-chart] circle', (cs) => cs.map((c) => ({ ...c.dataset, shown: c.classList.contains('shown') })));
  const keptDevice = device.find((d) => d.shown);
  assert.equal(keptDevice?.fullInteger, 'true', JSON.stringify(device));
  await page.waitForSelector('[data-testid=targets-row][data-name="ESP32-S3"]');
  const esp = await page.$eval('[data-testid=targets-row][data-name="ESP32-S3"]', (tr) => ({ ...tr.dataset }));
  assert.equal(esp.fits, 'true', JSON.stringify(esp));
  assert.equal(esp.fileBytes, keptDevice.tfliteBytes, 'the targets table measured another file than Auto');
  assert.ok(Number(esp.fileBytes) <= Number(esp.flashBytes) && Number(esp.peakBytes) <= Number(esp.ramBytes), JSON.stringify(esp));
  await page.click('[data-testid=litert-check]');
  await page.waitForFunction(() => document.querySelector('[data-testid=litert-result]').dataset.agree !== undefined
    || !document.querySelector('[data-testid=error]').hidden, null, { timeout: TIMEOUT });
  assert.equal(await page.isHidden('[data-testid=error]'), true, await page.textContent('[data-testid=error]'));
  const deviceCheck = await page.$$eval('[data-testid=litert-row]', (trs) => trs.map((tr) => ({ ...tr.dataset })));
  for (const r of deviceCheck) assert.equal(r.ortTop1, r.pageTop1, 'LiteRT.js\'s top-1 on the ESP32-S3 file differs from the page');
  const deviceBox = await page.$eval('[data-testid=litert-result]', (el) => ({ ...el.dataset, text: el.querySelector('p').textContent }));
  assert.equal(deviceBox.agree, 'true', deviceBox.text);
  await page.setViewportSize({ width: 1400, height: 1000 });
  await page.screenshot({ path: join(OUT, 'auto-esp32.png'), fullPage: true });
  await page.setViewportSize({ width: 390, height: 844 });
  await page.screenshot({ path: join(OUT, 'auto-esp32-phone.png'), fullPage: true });
  assert.deepEqual(problems, [], 'the browser console must stay clean');
  await context.close();
});

// A network that concatenates, splits, shuffles and flattens channels
// (tests/golden/make_concat_net.py), loaded as "your own file" and pruned 30 % in the page:
// the layers no pruning rule may narrow (channels a shuffle moves into a concatenation with
// channels it does not move, and the flattened ones) are marked "kept whole" on the layer
// chart with the reason, the rest are narrower.
test('a network that concatenates and shuffles channels (ONNX): pruned in the page, the layer chart marks what stays whole', { timeout: 2 * TIMEOUT }, async () => {
  const file = join(OUT, 'concat_net.onnx');
  execFileSync(PYTHON, [join(ROOT, 'tests/golden/make_concat_net.py'), file]);
  const { page, context, problems } = await openOwnOnnx(file, 'concat_net');
  await upload(page, [PHOTOS_256[0]]);
  await page.fill('[data-testid=prune-channels]', '0.3');
  await page.click('[data-testid=compress]');
  await compressedShown(page, 1);
  const rows = await page.$$eval('#layers .crow', (rs) => rs.map((r) => ({
    fixed: r.classList.contains('fixed'), val: r.querySelector('.val').textContent, title: r.title,
  })));
  const fixed = rows.filter((r) => r.fixed);
  console.log(`concat net pruned in the page: ${rows.length} layers, ${fixed.length} kept whole: ` +
    fixed.map((r) => r.title.split('; ').pop()).join(' | '));
  assert.ok(fixed.length > 0 && fixed.every((r) => r.val.includes('kept whole') && /no pruning removes its channels: .+/.test(r.title)));
  assert.ok(rows.some((r) => !r.fixed && /^(\d+)→(?!\1)\d+/.test(r.val)), 'some layer lost channels');
  assert.match(await page.textContent('#layers'), /kept whole/);
  await page.locator('#layers').screenshot({ path: join(OUT, 'layers-kept-whole.png') });
  assert.deepEqual(problems, [], 'the browser console must stay clean');
  await context.close();
});

// A 100 MB network: the onnx package's ResNet-50 test model with seeded weights written out
// (scripts/seeded_light.py), loaded as "your own file" on the CPU fallback, classifying a
// photo and compressed to int8 weights in the page. The engine's wasm memory never shrinks, so
// its size at the end is its peak: reported beside the file's, and bounded by 6 times it
// (measured 4.3: the file's bytes, its decoded protobuf and weights while reading; then the
// original and the compressed model, the compressed one uploaded to the backend while the
// original's network is released, and the downloads).
test('a 100 MB ResNet-50 ONNX file (CPU fallback, one thread): loads, predicts and compresses to int8 in the page; its peak wasm memory', { timeout: 4 * TIMEOUT }, async () => {
  const light = process.env.MODELSLIM_ONNX_LIGHT;
  assert.ok(light && existsSync(light), 'run scripts/setup.sh: it sets MODELSLIM_ONNX_LIGHT');
  const file = join(OUT, 'resnet50-seeded.onnx');
  execFileSync(PYTHON, [join(ROOT, 'scripts/seeded_light.py'), join(light, 'light_resnet50.onnx'), file]);
  const size = statSync(file).size;
  assert.ok(size > 100e6, `${size} bytes`);
  const t0 = Date.now();
  // The single-threaded module: the threaded one's peak is not bounded yet (it was 6.5 × the file).
  const { page, context, problems } = await openOwnOnnx(file, 'resnet50-seeded', '&threads=1');
  await upload(page, [PHOTOS_256[0]]);
  const original = await lists(page, 'top5-original');
  assert.equal(original[0].logits.length, 1000);
  await page.selectOption('[data-testid=quant]', 'int8');
  await page.click('[data-testid=compress]');
  await compressedShown(page, 1);
  const [worker] = page.workers();
  assert.ok(worker, 'the engine runs in a worker');
  const wasm = await worker.evaluate(() => globalThis.__wasmMemory.buffer.byteLength);
  console.log(`${(size / 1e6).toFixed(1)} MB ResNet-50 in the page: loaded, classified and compressed to int8 in ` +
    `${((Date.now() - t0) / 1000).toFixed(0)} s; peak wasm memory ${(wasm / 1e6).toFixed(0)} MB = ${(wasm / size).toFixed(2)} × the file`);
  assert.ok(wasm <= 5 * size, `wasm memory ${wasm} bytes`);
  assert.deepEqual(problems, [], 'the browser console must stay clean');
  await context.close();
});

// Recovering accuracy: 3 distillation steps on the two photos (one trains, one is held back),
// the loss drawn step by step, and the downloaded distilled ONNX computing the page's "after"
// predictions in onnxruntime. int4 leaves a measurable KL on the seeded network (int8 leaves
// ~1e-4), and a small learning rate lowers it on the held-back photo step by step, so the
// model kept and downloaded is a trained one. Both backends: the step times go into the report.
for (const backend of ['wgpu', 'cpu']) {
  test(`distillation on ${backend}: 3 steps, the loss curve, and the distilled ONNX gives the page's predictions`, { timeout: 3 * TIMEOUT }, async () => {
    const { page, context, problems } = await openPage(backend === 'cpu' ? '?weights=seeded&backend=cpu' : '?weights=seeded');
    const requested = [];
    page.on('request', (r) => requested.push(r.url()));
    assert.equal(await page.getAttribute('[data-testid=backend]', 'data-kind'), backend);
    await upload(page, PHOTOS_256);
    await page.selectOption('[data-testid=quant]', 'int4');
    await page.click('[data-testid=compress]');
    await compressedShown(page, 2);
    const before = await lists(page, 'top5-compressed');

    await page.fill('[data-testid=distill-steps]', '3');
    await page.fill('[data-testid=distill-lr]', '0.00001');
    await page.fill('[data-testid=distill-batch]', '2');
    // The page's engine module has no training in it: the module that has is fetched now. The
    // threaded module (the CPU on a cross-origin isolated page) has it already.
    const threaded = Number(await page.getAttribute('[data-testid=backend]', 'data-threads')) > 1;
    assert.equal(await page.evaluate(() => window.modelslimEngine.training), threaded);
    assert.deepEqual(requested.filter((u) => u.includes('modelslim-training')), [], 'the training module was fetched before it was needed');
    await page.click('[data-testid=distill]');
    await page.waitForFunction(() => !document.querySelector('[data-testid=distill-result]').hidden
      || !document.querySelector('[data-testid=error]').hidden, null, { timeout: TIMEOUT });
    assert.equal(await page.isHidden('[data-testid=error]'), true, await page.textContent('[data-testid=error]'));
    assert.equal(await page.getAttribute('[data-testid=loss-curve]', 'data-points'), '3');
    const points = await page.$eval('[data-testid=loss-curve] polyline', (l) => l.getAttribute('points').trim().split(/\s+/).length);
    assert.equal(points, 3, 'the loss curve has a point per step');
    const result = await page.$eval('[data-testid=distill-result]', (el) => ({ ...el.dataset, text: el.textContent }));
    console.log(`${backend}: ${result.text} (${threaded ? 'the threaded module, training built in' : `training module loaded and the session moved in ${await page.getAttribute('[data-testid=backend]', 'data-training')}`})`);
    assert.equal(await page.evaluate(() => window.modelslimEngine.training), true);
    assert.equal(await page.getAttribute('[data-testid=backend]', 'data-kind'), backend, 'the training engine runs on another backend');
    assert.equal(requested.filter((u) => u.includes('modelslim-training_bg.wasm?build=')).length, threaded ? 0 : 1,
      threaded ? 'the threaded module fetched the training module too' : 'the training module is fetched once, named by the build');
    const after = await lists(page, 'top5-compressed');
    assert.equal(after.length, 2);
    assert.notEqual(result.bestStep, '0', 'no step improved on the held-back photo: the download would be the untrained model');
    const moved = Math.max(...after.map((a, i) => maxLogitDiff(a.logits, before[i].logits)));
    assert.ok(moved > 1e-5, `the predictions did not change (${moved}) though step ${result.bestStep} was kept`);

    const onnx = await download(page, 'download-onnx');
    assert.equal(onnx.name, 'resnet18-int4-kd.onnx');
    const ort = onnxruntime(onnx.path, PHOTOS_256, { optimize: true });
    for (const [i, r] of ort.entries()) {
      assert.equal(r.top5[0].index, after[i].top5[0].index, `${r.image}: onnxruntime's top-1 differs from the page's after distillation`);
      const d = maxLogitDiff(after[i].logits, r.logits);
      assert.ok(d <= 1e-3, `${r.image}: logits differ by ${d}`);
    }
    await page.screenshot({ path: join(OUT, `distilled-${backend}.png`), fullPage: true });
    assert.deepEqual(problems, [], 'the browser console must stay clean');
    await context.close();
  });
}

// A compression fitted on the photos (int8 activations calibrated on them) measures agreement on
// photos it kept out of the fitting once there are enough of them, and says on how many; with
// too few, every photo is fitted on and the page says the agreement is optimistic.
test('the agreement of a calibrated compression is on held-back photos, with their count (CPU fallback)', { timeout: 2 * TIMEOUT }, async () => {
  const { page, context, problems } = await openPage('?weights=seeded&backend=cpu');
  const samples = ['chelsea.png', 'coffee.png', 'astronaut.png', 'rocket.jpg'].map((n) => join(SAMPLES, n));
  await upload(page, samples);
  await page.click('text=int8 for Raspberry Pi / ARM');
  await page.click('[data-testid=compress]');
  await compressedShown(page, 4);
  const agreement = () => page.$eval('[data-testid=agreement]', (el) => ({ ...el.dataset, text: el.textContent }));
  const few = await agreement();
  assert.equal(few.agreementPhotos, 'fitting', 'four photos: all of them are fitted on');
  assert.match(few.text, /on the 4 photos it was fitted on \(optimistic/);

  // Ten photos (the samples again under other names): some are held back.
  const more = [];
  for (let i = 0; i < 6; i++) {
    const copy = join(OUT, `copy-${i}-${samples[i % 4].split('/').pop()}`);
    copyFileSync(samples[i % 4], copy);
    more.push(copy);
  }
  await page.setInputFiles('[data-testid=upload]', more);
  await page.waitForFunction(() => document.querySelectorAll('[data-testid=top5-original]').length === 10, null, { timeout: TIMEOUT });
  await page.click('[data-testid=compress]');
  await page.waitForFunction(() => document.querySelector('[data-testid=agreement]').dataset.agreementPhotos === 'held_back'
    || !document.querySelector('[data-testid=error]').hidden, null, { timeout: TIMEOUT });
  assert.equal(await page.isHidden('[data-testid=error]'), true, await page.textContent('[data-testid=error]'));
  const held = await agreement();
  const card = JSON.parse(readFileSync((await download(page, 'download-card')).path, 'utf8'));
  const n = Number(held.n);
  assert.ok(n > 0 && n < 10, `agreement on ${held.n} photos`);
  assert.equal(card.held_back_photos, n, 'the page\'s count is not the card\'s');
  assert.equal(card.calibration_photos, 10 - n);
  assert.match(held.text, new RegExp(`on ${n} held-back photos \\(not fitted on; fitted on the other ${10 - n}\\): \\d+ of ${n} `));
  assert.deepEqual(problems, [], 'the browser console must stay clean');
  await context.close();
});

test('Auto within a byte budget on four photos (CPU fallback): candidates and a preset on the chart, a clicked one loads, its ONNX gives the page\'s logits', { timeout: 3 * TIMEOUT }, async () => {
  // ResNet18's layout at a quarter of its widths, written by the CLI: the search stays quick.
  const narrow = join(OUT, 'narrow-resnet18.safetensors');
  execFileSync(BIN, ['compress', '--weights', 'seeded:1', '--prune-channels', '0.75', '--prune-scope', 'all', '--prune-stem', '--out', narrow]);
  const { page, context, problems } = await openPage('?weights=seeded&backend=cpu');
  await page.setInputFiles('[data-testid=weights-file]', narrow);
  await page.waitForFunction(() => /model ready/.test(document.querySelector('[data-testid=status]').textContent)
    && /narrow/.test(document.querySelector('[data-testid=model-info]')?.textContent ?? document.body.textContent), null, { timeout: TIMEOUT });
  // Four photos whose preprocessing Pillow reproduces exactly: the 256×256 crops, twice.
  const photos = [...PHOTOS_256];
  for (const p of PHOTOS_256) {
    const copy = join(OUT, `again-${p.split('/').pop()}`);
    copyFileSync(p, copy);
    photos.push(copy);
  }
  await upload(page, photos);
  // A preset run first: its point joins the chart and its button says what it kept.
  await page.click('text=int8 for Raspberry Pi / ARM');
  await page.click('[data-testid=compress]');
  await compressedShown(page, 4);
  assert.match(await page.textContent('[data-preset=pi]'), /% agree/);

  const budget = 0.6; // MB: the fp32 file is about 2.9 MB, every layer at int8 about 0.75
  await page.selectOption('[data-testid=auto-kind]', 'bytes');
  await page.fill('[data-testid=auto-value]', String(budget));
  await page.fill('[data-testid=auto-floor]', '0');
  const t0 = Date.now();
  await page.click('[data-testid=auto]');
  await page.waitForFunction(() => !document.querySelector('[data-testid=auto-chart]').hasAttribute('hidden')
    || !document.querySelector('[data-testid=error]').hidden, null, { timeout: 3 * TIMEOUT });
  assert.equal(await page.isHidden('[data-testid=error]'), true, await page.textContent('[data-testid=error]'));
  const status = await page.textContent('[data-testid=auto-status]');
  console.log(`auto on the CPU fallback: ${((Date.now() - t0) / 1e3).toFixed(1)} s; ${status}`);
  // One photo held out: the floor is said to be a guess, with the interval.
  assert.match(status, /only 1 of \d+ photos held out: the 0 % floor is a guess .* 95 % interval runs from/);
  // Its progress was shown under the Search button, not under Compress.
  assert.equal(await page.$eval('[data-testid=progress]', (el) => el.previousElementSibling.contains(document.getElementById('auto'))), true);
  const dots = await page.$$eval('[data-testid=auto-chart] circle', (cs) => cs.map((c) => ({
    i: Number(c.dataset.candidate), bytes: Number(c.dataset.bytes), fits: c.dataset.fits === 'true', shown: c.classList.contains('shown'),
  })));
  assert.ok(dots.length >= 3, `${dots.length} candidates drawn`);
  assert.equal(await page.$$eval('[data-testid=auto-chart] rect.preset', (r) => r.length), 1, 'the preset run is drawn');
  const kept = dots.find((d) => d.shown);
  assert.ok(kept && kept.fits && kept.bytes <= budget * 1e6, JSON.stringify(kept));
  await page.screenshot({ path: join(OUT, 'auto.png'), fullPage: true });

  // Another candidate within the budget becomes the compressed model (its row's button: points
  // of equal size and agreement lie on top of each other).
  const other = dots.find((d) => d.fits && !d.shown);
  assert.ok(other, 'a second candidate within the budget');
  await page.click(`[data-testid=auto-use][data-candidate="${other.i}"]`);
  await page.waitForFunction((i) => new RegExp(`candidate ${i + 1} is the compressed model`).test(document.querySelector('[data-testid=status]').textContent)
    || !document.querySelector('[data-testid=error]').hidden, other.i, { timeout: TIMEOUT });
  assert.equal(await page.isHidden('[data-testid=error]'), true, await page.textContent('[data-testid=error]'));
  await compressedShown(page, 4);
  const compressed = await lists(page, 'top5-compressed');
  const onnx = await download(page, 'download-onnx');
  assert.equal(statSync(onnx.path).size, other.bytes, 'the file is the clicked candidate\'s');
  for (const optimize of [false, true]) {
    const ort = onnxruntime(onnx.path, photos, { optimize });
    for (const [i, r] of ort.entries()) {
      const d = maxLogitDiff(compressed[i].logits, r.logits);
      // Seeded weights give logits close together: the bound is a thousandth of their spread.
      const spread = Math.max(...compressed[i].logits) - Math.min(...compressed[i].logits);
      console.log(`${r.image}, optimize=${optimize}: max |Δlogit| ${d.toExponential(2)} (logits spread over ${spread.toExponential(2)})`);
      assert.equal(r.top5[0].index, compressed[i].top5[0].index, `${r.image}: onnxruntime's top-1 differs from the page`);
      assert.ok(d <= 1e-3 * spread, `${r.image}, optimize=${optimize}: logits differ by ${d}, spread ${spread}`);
    }
  }

  // Every candidate timed in ONNX Runtime (its file's runtime); under a limit the kept one
  // runs within it and is the least KL of those that do.
  await page.fill('[data-testid=auto-runtime-ms]', '1e6');
  await page.click('[data-testid=auto-runtime]');
  await page.waitForFunction((n) => document.querySelectorAll('[data-testid=auto-rt][data-ms]').length === n
    && /timed in ONNX Runtime/.test(document.querySelector('[data-testid=auto-status]').textContent)
    || !document.querySelector('[data-testid=error]').hidden, dots.length, { timeout: 3 * TIMEOUT });
  assert.equal(await page.isHidden('[data-testid=error]'), true, await page.textContent('[data-testid=error]'));
  const ms = await page.$$eval('[data-testid=auto-rt]', (cs) => cs.map((c) => Number(c.dataset.ms)));
  assert.ok(ms.every((m) => m > 0), JSON.stringify(ms));
  const timed = await page.textContent('[data-testid=auto-status]');
  console.log(`timed in ONNX Runtime: ${ms.map((m) => m.toFixed(1)).join(', ')} ms; ${timed.slice(timed.indexOf('candidates timed'))}`);
  const fits = dots.filter((d) => d.fits);
  const klOf = await page.$$eval('#auto-rows tr', (rows) => rows.map((r) => Number(r.querySelector('.kl').textContent)));
  const best = fits.reduce((b, d) => (klOf[d.i] < klOf[b.i] ? d : b));
  const shown = await page.$eval('#auto-rows tr.shown', (r) => Number(r.querySelector('.use').dataset.candidate));
  assert.equal(klOf[shown], klOf[best.i], 'under a limit every candidate meets, the least KL within the budget is kept');
  await page.locator('#auto-panel').screenshot({ path: join(OUT, 'auto-runtime.png') });
  assert.deepEqual(problems, [], 'the browser console must stay clean');
  await context.close();
});
