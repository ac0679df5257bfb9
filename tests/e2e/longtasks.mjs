// Longest main-thread task while the page classifies two photos and then compresses them (30 %
// channels + int8), with the engine on the main thread (?engine=main) and in its worker, on
// WebGPU and on the CPU fallback.   npm run longtasks --prefix tests/e2e  (after trunk build)
import { ROOT, serveDist, launchChromium } from './harness.mjs';
import { join } from 'node:path';
const PH = ['chelsea-256.png', 'coffee-256.png'].map((n) => join(ROOT, 'tests/fixtures/photos256', n));
const { server, base } = await serveDist();
const browser = await launchChromium();
for (const backend of ['wgpu', 'cpu']) for (const engine of ['main', 'worker']) {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.addInitScript(() => { globalThis.__lt = []; new PerformanceObserver((l) => { for (const e of l.getEntries()) globalThis.__lt.push(Math.round(e.duration)); }).observe({ type: 'longtask' }); });
  await page.goto(`${base}?weights=seeded${backend === 'cpu' ? '&backend=cpu' : ''}${engine === 'main' ? '&engine=main' : ''}`);
  await page.waitForFunction(() => /model ready/.test(document.querySelector('[data-testid=status]').textContent), null, { timeout: 120000 });
  await page.evaluate(() => { globalThis.__lt.length = 0; });
  await page.setInputFiles('[data-testid=upload]', PH);
  await page.waitForFunction(() => document.querySelectorAll('[data-testid=top5-original]').length === 2, null, { timeout: 600000 });
  const pred = await page.evaluate(() => globalThis.__lt.splice(0));
  await page.fill('[data-testid=prune-channels]', '0.3');
  await page.selectOption('[data-testid=quant]', 'int8');
  await page.click('[data-testid=compress]');
  await page.waitForFunction(() => document.querySelectorAll('[data-testid=top5-compressed]').length === 2, null, { timeout: 600000 });
  const comp = await page.evaluate(() => globalThis.__lt.splice(0));
  console.log(`${backend} ${engine}: longest main-thread task predicting ${Math.max(0, ...pred)} ms (${pred.length} over 50 ms), compressing ${Math.max(0, ...comp)} ms (${comp.length} over 50 ms)`);
  await context.close();
}
await browser.close(); server.close();
