// A new user's walk through the page, for screenshots to compare two builds: EfficientNet-Lite0
// on the CPU fallback, 16 labelled photos, Auto at 3.5 MB (a screenshot while it runs), then
// the "Fastest" preset, at 1400×1000 and 390×844. A measuring tool, not a test (it asserts nothing):
//   MODELSLIM_DIST=path/to/dist OUT=dir node tests/e2e/walk.mjs   (OUT: tests/e2e/output/walk)
import { readdirSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, serveDist, launchChromium, openPage } from './harness.mjs';
const OUT = process.env.OUT || join(ROOT, 'tests', 'e2e', 'output', 'walk');
mkdirSync(OUT, { recursive: true });
const val = join(ROOT, 'tests', 'fixtures', 'imagenet-subset', 'val');
const files = [];
for (const wnid of readdirSync(val).slice(0, 8)) for (const f of readdirSync(join(val, wnid)).slice(0, 2)) files.push(join(val, wnid, f));
const { server, base } = await serveDist();
const browser = await launchChromium();
const { page, context } = await openPage(browser, `${base}?weights=efficientnet-lite0&backend=cpu`, { viewport: { width: 1400, height: 1000 } });
await page.setInputFiles('[data-testid=upload]', files);
await page.waitForFunction(() => document.querySelectorAll('[data-testid=top5-original]').length === 16, null, { timeout: 600_000 });
await page.fill('[data-testid=auto-value]', '3.5');
await page.fill('[data-testid=auto-floor]', '80');
const t0 = Date.now();
await page.click('[data-testid=auto]');
await page.waitForTimeout(20_000);
await page.screenshot({ path: join(OUT, 'auto-running.png') });
await page.waitForFunction(() => !document.querySelector('[data-testid=auto-chart]').hasAttribute('hidden') || !document.querySelector('[data-testid=error]').hidden, null, { timeout: 1_200_000 });
console.log(`auto ${((Date.now() - t0) / 1e3).toFixed(0)} s: ${await page.textContent('[data-testid=auto-status]')}`);
await page.screenshot({ path: join(OUT, 'auto.png'), fullPage: true });
await page.click('text=Fastest');
await page.click('[data-testid=compress]');
await page.waitForFunction(() => /compressed in/.test(document.querySelector('[data-testid=status]').textContent) || !document.querySelector('[data-testid=error]').hidden, null, { timeout: 1_200_000 });
await page.waitForTimeout(3000);
await page.screenshot({ path: join(OUT, 'fastest.png'), fullPage: true });
await page.setViewportSize({ width: 390, height: 844 });
await page.waitForTimeout(1000);
await page.screenshot({ path: join(OUT, 'phone.png'), fullPage: true });
await context.close();
await browser.close();
server.close();
