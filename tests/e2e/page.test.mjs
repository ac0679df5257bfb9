// End-to-end: the built page (dist/) in headless Chromium, against the CLI on the same weights.
//
// Needs: `trunk build --release` (dist/), the release CLI, Debian's chromium, and
// `npm ci` here. Run through `bash .ci/run`, or directly:
//   MODELSLIM_BIN=target/release/modelslim node --test tests/e2e/
// Screenshots land in tests/e2e/output/.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync, existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { deflateSync } from 'node:zlib';
import { ROOT, DIST, serveDist, launchChromium, openPage as open, watchConsole } from './harness.mjs';

const OUT = join(ROOT, 'tests', 'e2e', 'output');
const BIN = process.env.MODELSLIM_BIN || join(ROOT, 'target', 'release', 'modelslim');
const SAMPLES = join(ROOT, 'www', 'samples');
const PROB_TOLERANCE = 1e-3;
const FORWARD_TIMEOUT = 10 * 60 * 1000; // SwiftShader WebGPU is a correctness target, not a fast one

let server, base, browser, weightsFile, reference;

// Hostile files, built here (tests/suite/hostile.rs has the same cases natively).
// A legacy torch.save file whose state_dict is `depth` lists nested in one another: it
// overflowed the reader's stack before.
function deepLegacyCheckpoint(depth) {
  const magic = [0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, 0x2e];
  const protocol = [0x80, 0x02, 0x4d, 0xe9, 0x03, 0x2e];
  const key = Buffer.from('little_endian');
  const info = [0x80, 0x02, 0x7d, 0x58, key.length, 0, 0, 0, ...key, 0x88, 0x73, 0x2e];
  return Buffer.concat([Buffer.from([...magic, ...protocol, ...info, 0x80, 0x02]),
    Buffer.alloc(depth, 0x5d), Buffer.alloc(depth - 1, 0x61), Buffer.from([0x2e])]);
}

// A black `w`×`h` PNG: a 1×12000 strip became a 256×3,072,000 image (2.4 GB) before.
function thinPng(w, h) {
  const crcTable = Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  const crc = (buf) => {
    let c = 0xffffffff;
    for (const b of buf) c = crcTable[(c ^ b) & 0xff] ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0;
  };
  const chunk = (type, data) => {
    const body = Buffer.concat([Buffer.from(type), data]);
    const len = Buffer.alloc(4); len.writeUInt32BE(data.length);
    const sum = Buffer.alloc(4); sum.writeUInt32BE(crc(body));
    return Buffer.concat([len, body, sum]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0); ihdr.writeUInt32BE(h, 4);
  ihdr[8] = 8; ihdr[9] = 2; // 8-bit RGB
  const rows = Buffer.alloc(h * (1 + 3 * w)); // filter byte 0, black pixels
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr), chunk('IDAT', deflateSync(rows)), chunk('IEND', Buffer.alloc(0))]);
}

before(async () => {
  mkdirSync(OUT, { recursive: true });
  process.env.TMPDIR = OUT;
  assert.ok(existsSync(join(DIST, 'index.html')), `no built page at ${DIST}: run trunk build --release`);
  weightsFile = join(OUT, 'seed42.safetensors');
  execFileSync(BIN, ['init-weights', '--seed', '42', '--out', weightsFile]);
  const lines = execFileSync(BIN, ['predict', '--weights', weightsFile, '--json',
    '--image', join(SAMPLES, 'chelsea.png'), '--image', join(SAMPLES, 'coffee.png')]).toString().trim().split('\n');
  reference = Object.fromEntries(lines.map((l) => JSON.parse(l)).map((r) => [r.image.split('/').pop(), r.top5]));
  writeFileSync(join(OUT, 'not-an-image.jpg'), 'this is a text file, not a photo\n');
  writeFileSync(join(OUT, 'deep.pth'), deepLegacyCheckpoint(300_000));
  writeFileSync(join(OUT, 'strip.png'), thinPng(1, 12_000));
  // The seeded file with a NaN as its first stored value, and cut in half.
  const seeded = readFileSync(weightsFile);
  const nan = Buffer.from(seeded);
  nan.writeFloatLE(NaN, 8 + Number(seeded.readBigUInt64LE(0)));
  writeFileSync(join(OUT, 'nan.safetensors'), nan);
  writeFileSync(join(OUT, 'half.safetensors'), seeded.subarray(0, seeded.length >> 1));

  ({ server, base } = await serveDist());
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  server?.close();
});

function watchShaders() {
  globalThis.__shaders = { count: 0, problems: [] };
  if (typeof GPUDevice === 'undefined') return;
  const create = GPUDevice.prototype.createShaderModule;
  GPUDevice.prototype.createShaderModule = function (desc) {
    const module = create.call(this, desc);
    globalThis.__shaders.count += 1;
    if (/enable\s+subgroups/.test(desc.code) && !this.features.has('subgroups')) {
      globalThis.__shaders.problems.push(`${desc.label}: enables subgroups on a device without them`);
    }
    module.getCompilationInfo().then((info) => {
      for (const m of info.messages) {
        if (m.type === 'error') globalThis.__shaders.problems.push(`${desc.label}: ${m.message}`);
      }
    });
    return module;
  };
}

// What the page and its workers compiled, together.
async function compiledShaders(page) {
  const all = [await page.evaluate(() => globalThis.__shaders)];
  for (const w of page.workers()) all.push(await w.evaluate(() => globalThis.__shaders));
  return {
    count: all.reduce((n, s) => n + (s?.count || 0), 0),
    problems: all.flatMap((s) => s?.problems || []),
  };
}

// Watch every WGSL module the page compiles: none may fail, and none may ask for subgroups on a
// device that lacks the feature (the trap Burn's autotune fell into in this browser). The engine
// runs in a worker, so the watch goes there too (before its first forward pass).
const openPage = (query) => open(browser, base + query,
  { viewport: { width: 1200, height: 900 }, initScript: watchShaders, workerScript: watchShaders, ready: 'engine' });

async function top5Lists(page) {
  return page.$$eval('[data-testid=top5-original]', (lists) => lists.map((ol) =>
    [...ol.querySelectorAll('li')].map((li) => ({ index: Number(li.dataset.classIndex), prob: Number(li.dataset.prob) }))));
}

function assertMatchesCli(got, image) {
  const want = reference[image];
  assert.deepEqual(got.map((c) => c.index), want.map((c) => c.index), `${image}: top-5 classes differ from the CLI`);
  got.forEach((c, i) => assert.ok(Math.abs(c.prob - want[i].prob) <= PROB_TOLERANCE,
    `${image}: class ${c.index} prob ${c.prob} vs CLI ${want[i].prob}`));
}

async function uploadAndWait(page, file, count) {
  await page.setInputFiles('[data-testid=upload]', file);
  await page.waitForFunction((n) => document.querySelectorAll('[data-testid=top5-original]').length >= n
    || !document.querySelector('[data-testid=error]').hidden, count, { timeout: FORWARD_TIMEOUT });
}

async function predictionFlow(page, wantKind, shot) {
  const kind = await page.getAttribute('[data-testid=backend]', 'data-kind');
  assert.equal(kind, wantKind, `backend is ${await page.textContent('[data-testid=backend]')}`);
  // Hostile weights files: one line naming the file each, and a valid file still loads after.
  for (const [file, says] of [
    ['deep.pth', /deep\.pth: .*nest deeper than 256 levels/],
    ['nan.safetensors', /nan\.safetensors: .*holds NaN or an infinity/],
    ['half.safetensors', /half\.safetensors: .*truncated/],
  ]) {
    await page.setInputFiles('[data-testid=weights-file]', join(OUT, file));
    // The previous file's message may still be up: wait for this one's.
    await page.waitForFunction((src) => new RegExp(src).test(document.querySelector('[data-testid=error]').textContent),
      says.source, { timeout: 60_000 }).catch(() => {});
    assert.match(await page.textContent('[data-testid=error]'), says);
  }
  await page.setInputFiles('[data-testid=weights-file]', weightsFile);
  await page.waitForFunction(() => /model ready/.test(document.querySelector('[data-testid=status]').textContent),
    null, { timeout: 120_000 });

  // A photo whose resized copy would take gigabytes: refused in one line.
  await page.setInputFiles('[data-testid=upload]', join(OUT, 'strip.png'));
  await page.waitForSelector('[data-testid=error]:not([hidden])', { timeout: 60_000 });
  assert.match(await page.textContent('[data-testid=error]'), /strip\.png: image is 1×12000 pixels/);

  await uploadAndWait(page, join(SAMPLES, 'chelsea.png'), 1);
  assert.equal(await page.isHidden('[data-testid=error]'), true, await page.textContent('[data-testid=error]'));
  let lists = await top5Lists(page);
  assert.equal(lists.length, 1);
  assertMatchesCli(lists[0], 'chelsea.png');

  // A non-image: a clear message, and the page keeps working.
  await page.setInputFiles('[data-testid=upload]', join(OUT, 'not-an-image.jpg'));
  await page.waitForSelector('[data-testid=error]:not([hidden])', { timeout: 60_000 });
  assert.match(await page.textContent('[data-testid=error]'), /not-an-image\.jpg: not a readable image/);

  await uploadAndWait(page, join(SAMPLES, 'coffee.png'), 2);
  lists = await top5Lists(page);
  assert.equal(lists.length, 2);
  assertMatchesCli(lists[1], 'coffee.png');
  await page.screenshot({ path: join(OUT, shot), fullPage: true });
}

test('WebGPU: page predictions equal the CLI, bad uploads are reported', { timeout: 2 * FORWARD_TIMEOUT }, async () => {
  const { page, context, problems } = await openPage('?weights=none');
  await predictionFlow(page, 'wgpu', 'webgpu.png');
  assert.deepEqual(problems, [], 'the browser console must stay clean');
  const shaders = await compiledShaders(page);
  assert.ok(shaders.count > 0, 'no WGSL was compiled: the forward pass did not run on WebGPU');
  assert.deepEqual(shaders.problems, [], 'WGSL modules failed or asked for missing features');
  await context.close();
});

test('WebGPU device lost: the page moves to the CPU fallback with its model and photos', { timeout: 2 * FORWARD_TIMEOUT }, async () => {
  const { page, context } = await openPage('?weights=none');
  assert.equal(await page.getAttribute('[data-testid=backend]', 'data-kind'), 'wgpu');
  await page.setInputFiles('[data-testid=weights-file]', weightsFile);
  await page.waitForFunction(() => /model ready/.test(document.querySelector('[data-testid=status]').textContent),
    null, { timeout: 120_000 });
  await uploadAndWait(page, join(SAMPLES, 'chelsea.png'), 1);
  // What a driver reset does to the engine's device (the worker keeps its devices for this).
  const destroyed = await Promise.all(page.workers().map((w) => w.evaluate(() => {
    for (const d of globalThis.__devices || []) d.destroy();
    return (globalThis.__devices || []).length;
  })));
  assert.ok(destroyed.some((n) => n > 0), 'no WebGPU device to destroy');
  await page.waitForFunction(() => document.querySelector('[data-testid=backend]').dataset.kind === 'cpu'
    && /model ready/.test(document.querySelector('[data-testid=status]').textContent), null, { timeout: FORWARD_TIMEOUT });
  assert.match(await page.textContent('[data-testid=error]'), /WebGPU device was lost/);
  assert.match(await page.textContent('#notice'), /CPU fallback.*device was lost/);
  // The kept photo is classified again on the new engine, and new ones work.
  await page.waitForFunction(() => document.querySelectorAll('[data-testid=top5-original]').length === 1,
    null, { timeout: FORWARD_TIMEOUT });
  assertMatchesCli((await top5Lists(page))[0], 'chelsea.png');
  await uploadAndWait(page, join(SAMPLES, 'coffee.png'), 2);
  assertMatchesCli((await top5Lists(page))[1], 'coffee.png');
  await page.screenshot({ path: join(OUT, 'device-lost.png'), fullPage: true });
  await context.close();
});

test('CPU fallback (forced): same predictions on every core, a visible notice', { timeout: 2 * FORWARD_TIMEOUT }, async () => {
  const { page, context, problems } = await openPage('?weights=none&backend=cpu');
  assert.equal(await page.isVisible('#notice'), true);
  // The page is cross-origin isolated: the threaded module, as many threads as cores (up to 8).
  const cores = await page.evaluate(() => navigator.hardwareConcurrency);
  const threads = Math.min(8, cores);
  if (threads > 1) {
    assert.equal(await page.getAttribute('[data-testid=backend]', 'data-threads'), String(threads));
    assert.match(await page.textContent('[data-testid=backend]'), new RegExp(`on ${threads} threads`));
  }
  await predictionFlow(page, 'cpu', 'cpu-fallback.png');
  assert.deepEqual(problems, [], 'the browser console must stay clean');
  await context.close();
});

/** Loads the seeded weights file and a photo: the CLI's top-5, and a clean console. */
async function predictsLikeTheCli(page, problems) {
  await page.setInputFiles('[data-testid=weights-file]', weightsFile);
  await page.waitForFunction(() => /model ready/.test(document.querySelector('[data-testid=status]').textContent),
    null, { timeout: 120_000 });
  await uploadAndWait(page, join(SAMPLES, 'chelsea.png'), 1);
  assertMatchesCli((await top5Lists(page))[0], 'chelsea.png');
  assert.deepEqual(problems, [], 'the browser console must stay clean');
}

// WebGPU exposed but without an adapter (a blocklisted GPU): the engine falls back to the CPU,
// and there it runs on every core, the reason in the notice. The engine's worker is served with
// an adapter request that finds none.
test('WebGPU exposed without an adapter: the CPU engine on every core, the reason in the notice', { timeout: 2 * FORWARD_TIMEOUT }, async () => {
  const context = await browser.newContext({ viewport: { width: 1200, height: 900 } });
  await context.route('**/engine-worker.js*', async (route) => {
    const response = await route.fetch();
    const stub = 'if (self.GPU) GPU.prototype.requestAdapter = async () => null;\n';
    await route.fulfill({ response, body: stub + await response.text() });
  });
  const page = await context.newPage();
  const problems = watchConsole(page);
  await page.goto(base + '?weights=none');
  await page.waitForFunction(() => document.querySelector('[data-testid=backend]').dataset.kind, null, { timeout: 120_000 });
  assert.equal(await page.evaluate(() => Boolean(navigator.gpu)), true);
  assert.equal(await page.getAttribute('[data-testid=backend]', 'data-kind'), 'cpu');
  const threads = Math.min(8, await page.evaluate(() => navigator.hardwareConcurrency));
  assert.equal(await page.getAttribute('[data-testid=backend]', 'data-threads'), String(threads));
  assert.match(await page.textContent('#notice'), /CPU fallback.*no graphics adapter/);
  await predictsLikeTheCli(page, problems);
  await context.close();
});

// A CPU engine on every core needs a cross-origin isolated page: served without the two
// headers, the page runs its single-threaded module and says why.
test('not cross-origin isolated: the CPU engine runs on one thread, says why, and predicts the same', { timeout: 2 * FORWARD_TIMEOUT }, async () => {
  const plain = await serveDist({}, { isolated: false });
  try {
    const { page, context, problems } = await open(browser, plain.base + '?weights=none&backend=cpu', { ready: 'engine' });
    assert.equal(await page.evaluate(() => crossOriginIsolated), false);
    assert.equal(await page.getAttribute('[data-testid=backend]', 'data-threads'), '1');
    assert.match(await page.textContent('#notice'), /CPU engine runs on one thread: this page is not cross-origin isolated/);
    await predictsLikeTheCli(page, problems);
    await context.close();
  } finally {
    plain.server.close();
  }
});

test('weights download blocked: the page says so and offers the file picker', { timeout: 300_000 }, async () => {
  const { page, context } = await openPage('?backend=cpu');
  await page.waitForSelector('[data-testid=error]:not([hidden])', { timeout: 120_000 });
  assert.match(await page.textContent('[data-testid=error]'), /Could not download the ResNet18 weights/);
  assert.equal(await page.isVisible('text=Load weights file'), true);
  await page.click('[data-testid=use-seeded]');
  await page.waitForSelector('#banner:not([hidden])');
  assert.match(await page.textContent('#banner'), /Random weights — predictions are meaningless/);
  await page.screenshot({ path: join(OUT, 'download-blocked.png'), fullPage: true });

  // The Content-Security-Policy (scripts/csp.py): the weights host may be fetched, any other
  // origin may not, nor may a script from elsewhere run.
  const violations = await page.evaluate(async () => {
    const seen = [];
    document.addEventListener('securitypolicyviolation', (e) => seen.push(e.effectiveDirective));
    await fetch('https://example.com/x').catch(() => {});
    await fetch('https://huggingface.co/x').catch(() => {});
    const s = document.createElement('script');
    s.src = 'https://example.com/x.js';
    document.head.append(s);
    await new Promise((r) => setTimeout(r, 500));
    return [...new Set(seen)]; // once per policy: the <meta> and the header both enforce
  });
  assert.deepEqual(violations.sort(), ['connect-src', 'script-src-elem']);
  await context.close();
});

test('a browser without WebAssembly SIMD gets one line saying what to do', { timeout: 120_000 }, async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  // The page's check asks WebAssembly.validate about a SIMD module; an old browser says no.
  await page.addInitScript(() => { WebAssembly.validate = () => false; });
  await page.goto(base + '?weights=seeded');
  await page.waitForSelector('[data-testid=error]:not([hidden])', { timeout: 60_000 });
  assert.match(await page.textContent('[data-testid=error]'), /no WebAssembly SIMD.*update it/);
  assert.match(await page.textContent('[data-testid=status]'), /cannot run modelslim/);
  // Cross-origin isolated (dist/_headers): onnxruntime-web may use threads here.
  assert.equal(await page.evaluate(() => crossOriginIsolated), true);
  await context.close();
});

// The engine module (16 MB) is the worker's: the page's own thread loads none of it, not even
// for a helper. Playwright reports a dedicated worker's requests as the page's (`request.frame()`
// is the main frame), so the page's own fetches are read from its CDP target, which a worker's
// requests do not reach, and from the page's resource timing, which a worker keeps apart. With
// `?engine=main` both see the module: the check can fail.
async function engineFetches(query) {
  const { page, context } = await openPage(query);
  const cdp = await context.newCDPSession(page);
  await cdp.send('Network.enable');
  const mainThread = [];
  cdp.on('Network.requestWillBeSent', (e) => mainThread.push(e.request.url));
  const any = [];
  page.on('request', (r) => any.push(r.url()));
  await page.reload();
  await page.waitForFunction(() => /model ready/.test(document.querySelector('[data-testid=status]').textContent), null, { timeout: 120_000 });
  const timed = await page.evaluate(() => performance.getEntriesByType('resource').map((e) => e.name));
  await context.close();
  // The page's module, or the threaded one (whose threads import its bindings again).
  const engine = (u) => /\/modelslim-([0-9a-f]+|threads)(_bg\.wasm|\.js)$/.test(new URL(u).pathname);
  return { mainThread: [...new Set([...mainThread, ...timed])].filter(engine), any: [...new Set(any.filter(engine))] };
}

test('the main thread never fetches the engine module; the worker does', { timeout: 300_000 }, async () => {
  const inWorker = await engineFetches('?weights=seeded&backend=cpu');
  assert.equal(inWorker.any.length, 2, `the engine's module and wasm were not fetched at all: ${inWorker.any}`);
  assert.deepEqual(inWorker.mainThread, [], 'the page\'s main thread fetched the engine module');
  // The same check on a page that runs the engine on its main thread sees both files.
  const onMain = await engineFetches('?weights=seeded&backend=cpu&engine=main');
  assert.equal(onMain.mainThread.length, 2, `with ?engine=main the check saw ${onMain.mainThread}`);
});

// A class-names file, one name a line, renames the classes the cards show (ResNet18's 1,000);
// a file with the wrong count is refused in one line and changes nothing.
test('a class-names file renames the classes in the cards', { timeout: FORWARD_TIMEOUT }, async () => {
  const { page, context, problems } = await openPage('?weights=seeded&backend=cpu');
  await page.waitForFunction(() => /model ready/.test(document.querySelector('[data-testid=status]').textContent), null, { timeout: 120_000 });
  await uploadAndWait(page, join(SAMPLES, 'chelsea.png'), 1);
  const names = (p) => p.$$eval('[data-testid=top5-original] li', (lis) => lis.map((li) => ({
    index: Number(li.dataset.classIndex), name: li.querySelector('.cname').textContent })));
  const imagenet = await names(page);

  writeFileSync(join(OUT, 'three-names.txt'), 'cat\ndog\nbird\n');
  await page.setInputFiles('[data-testid=labels-file]', join(OUT, 'three-names.txt'));
  await page.waitForSelector('[data-testid=error]:not([hidden])', { timeout: 60_000 });
  const refused = await page.textContent('[data-testid=error]');
  assert.match(refused, /three-names\.txt: /);
  assert.doesNotMatch(refused, /\n/, 'the error is one line');
  assert.deepEqual(await names(page), imagenet, 'a refused file renamed classes');

  writeFileSync(join(OUT, 'names.txt'), Array.from({ length: 1000 }, (_, i) => `class number ${i}`).join('\n') + '\n');
  await page.setInputFiles('[data-testid=labels-file]', join(OUT, 'names.txt'));
  await page.waitForFunction(() => /class number/.test(document.querySelector('[data-testid=top5-original] li .cname').textContent)
    || /names\.txt: /.test(document.querySelector('[data-testid=error]').textContent), null, { timeout: FORWARD_TIMEOUT });
  const renamed = await names(page);
  assert.deepEqual(renamed.map((c) => c.index), imagenet.map((c) => c.index), 'the classes themselves changed');
  for (const c of renamed) assert.equal(c.name, `class number ${c.index}`);
  assert.match(await page.textContent('[data-testid=labels-info]'), /1000 class names from names\.txt/);
  // New photos get the new names too.
  await uploadAndWait(page, join(SAMPLES, 'coffee.png'), 2);
  for (const c of await names(page)) assert.equal(c.name, `class number ${c.index}`);
  assert.deepEqual(problems, [], 'the browser console must stay clean');
  await context.close();
});
