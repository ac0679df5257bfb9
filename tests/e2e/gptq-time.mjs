// Time of a GPTQ int4 compression in the page (ResNet18, seeded weights, two photos), on the
// CPU fallback and on WebGPU, with each step's seconds.
//   node tests/e2e/gptq-time.mjs [cpu|wgpu ...]   (after trunk build)
//   THREADS=N …   the page's ?threads=N (1: the CPU engine's single-threaded module)
import { ROOT, serveDist, launchChromium } from './harness.mjs';
import { join } from 'node:path';
import { stepTable } from '../../www/format.js';
const PH = ['chelsea-256.png', 'coffee-256.png'].map((n) => join(ROOT, 'tests/fixtures/photos256', n));
const backends = process.argv.slice(2).length ? process.argv.slice(2) : ['cpu', 'wgpu'];
const { server, base } = await serveDist();
const browser = await launchChromium();
for (const backend of backends) {
  const page = await browser.newPage();
  page.on('console', (m) => { if (m.type() === 'error') console.log(`console: ${m.text()}`); });
  await page.goto(`${base}?weights=seeded${backend === 'cpu' ? '&backend=cpu' : ''}${process.env.THREADS ? `&threads=${process.env.THREADS}` : ''}`);
  await page.waitForFunction(() => /model ready/.test(document.querySelector('[data-testid=status]').textContent), null, { timeout: 120000 });
  await page.setInputFiles('[data-testid=upload]', PH);
  await page.waitForFunction(() => document.querySelectorAll('[data-testid=top5-original]').length === 2, null, { timeout: 600000 });
  await page.selectOption('[data-testid=quant]', 'int4');
  await page.selectOption('[data-testid=quant-method]', 'gptq');
  const t0 = Date.now();
  await page.click('[data-testid=compress]');
  await page.waitForFunction(() => document.querySelectorAll('[data-testid=top5-compressed]').length === 2
    || !document.querySelector('[data-testid=error]').hidden, null, { timeout: 1_800_000 });
  const err = await page.evaluate(() => { const e = document.querySelector('[data-testid=error]'); return e.hidden ? null : e.textContent; });
  console.log(`${backend}: GPTQ int4, 2 photos: ${((Date.now() - t0) / 1e3).toFixed(1)} s${err ? ` — error: ${err}` : ''}`);
  if (!err) {
    const steps = JSON.parse(await page.getAttribute('#steps-timing', 'data-steps'));
    for (const row of stepTable(steps)) console.log(`  ${row.seconds.toFixed(1).padStart(6)} s  ${row.label}${row.count > 1 ? ` (${row.count})` : ''}`);
  }
  await page.close();
}
await browser.close(); server.close();
