// Time of Auto in the page at a byte budget, on the CPU fallback and on WebGPU, with the page's
// own account of the search (candidates, per-layer costs, photos). Several budgets (3.5,4.5)
// run one after the other on the same page: the later ones reuse the first one's costs.
//   node tests/e2e/auto-time.mjs MODEL BUDGET_MB[,BUDGET_MB…] [cpu|wgpu ...]   (after trunk build)
//   THREADS=N …   the page's ?threads=N (1: the CPU engine's single-threaded module)
// MODEL: a weights file, or `effnet` for EfficientNet-Lite0 with its real weights (served with
// the page). Photos: the repository's 16 calibration photos.
import { ROOT, serveDist, launchChromium } from './harness.mjs';
import { join } from 'node:path';
import { readdirSync } from 'node:fs';

const [model, mb, ...rest] = process.argv.slice(2);
if (!model || !mb) {
  console.error('usage: node tests/e2e/auto-time.mjs MODEL BUDGET_MB [cpu|wgpu ...]');
  process.exit(2);
}
const backends = rest.length ? rest : ['cpu', 'wgpu'];
const dir = join(ROOT, 'tests/fixtures/imagenet-subset/calib');
const photos = readdirSync(dir).filter((f) => f.endsWith('.JPEG')).sort().map((f) => join(dir, f));
const { server, base } = await serveDist();
const browser = await launchChromium();
for (const backend of backends) {
  const page = await browser.newPage();
  page.on('console', (m) => { if (m.type() === 'error') console.log(`console: ${m.text()}`); });
  const weights = model === 'effnet' ? 'efficientnet-lite0' : 'seeded';
  await page.goto(`${base}?weights=${weights}${backend === 'cpu' ? '&backend=cpu' : ''}${process.env.THREADS ? `&threads=${process.env.THREADS}` : ''}`);
  await page.waitForFunction(() => /model ready/.test(document.querySelector('[data-testid=status]').textContent), null, { timeout: 600000 });
  if (model !== 'effnet') {
    await page.setInputFiles('[data-testid=weights-file]', model);
    await page.waitForFunction((name) => /model ready/.test(document.querySelector('[data-testid=status]').textContent)
      && document.querySelector('#model-info').textContent.includes(name), model.split('/').pop(), { timeout: 600000 });
  }
  await page.setInputFiles('[data-testid=upload]', photos);
  await page.waitForFunction((n) => document.querySelectorAll('[data-testid=top5-original]').length === n, photos.length, { timeout: 1_800_000 });
  await page.selectOption('[data-testid=auto-kind]', 'bytes');
  await page.fill('[data-testid=auto-floor]', '0');
  for (const budget of mb.split(',')) {
    await page.fill('[data-testid=auto-value]', budget);
    const before = await page.textContent('[data-testid=auto-status]');
    const t0 = Date.now();
    await page.click('[data-testid=auto]');
    await page.waitForFunction((before) => {
      const said = document.querySelector('[data-testid=auto-status]').textContent;
      return (said !== before && / candidates in /.test(said)) || !document.querySelector('[data-testid=error]').hidden;
    }, before, { timeout: 3_600_000 });
    const err = await page.evaluate(() => { const e = document.querySelector('[data-testid=error]'); return e.hidden ? null : e.textContent; });
    const said = await page.textContent('[data-testid=auto-status]');
    console.log(`${backend}: Auto at ${budget} MB on ${photos.length} photos: ${((Date.now() - t0) / 1e3).toFixed(1)} s — ${err ? `error: ${err}` : said}`);
    if (err) break;
  }
  await page.close();
}
await browser.close(); server.close();
