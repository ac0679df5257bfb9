// Browser benchmark: ResNet18 forward in headless Chromium on WebGPU (SwiftShader here) and on
// the CPU fallback (Burn flex in wasm), through the page's own engine.
//   npm run bench --prefix tests/e2e            (after `trunk build --release`)
// Prints the cold first run apart, then min / median / p90 of warm runs, and the ratio.
import { chromium } from 'playwright-core';
import { createServer } from 'node:http';
import { readFileSync, existsSync, statSync } from 'node:fs';
import { join, extname, dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const DIST = process.env.MODELSLIM_DIST || join(ROOT, 'dist');
const RUNS = Number(process.env.RUNS || 10);
const MIME = { '.html': 'text/html', '.js': 'text/javascript', '.wasm': 'application/wasm', '.css': 'text/css',
  '.png': 'image/png', '.jpg': 'image/jpeg' };

const server = createServer((req, res) => {
  let file = join(DIST, decodeURIComponent(new URL(req.url, 'http://x').pathname));
  if (existsSync(file) && statSync(file).isDirectory()) file = join(file, 'index.html');
  if (!file.startsWith(DIST) || !existsSync(file)) { res.writeHead(404).end(); return; }
  res.writeHead(200, { 'content-type': MIME[extname(file)] || 'application/octet-stream' });
  res.end(readFileSync(file));
});
await new Promise((r) => server.listen(0, '127.0.0.1', r));
const base = `http://127.0.0.1:${server.address().port}/`;
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/lib/chromium/chromium',
  headless: true,
  args: ['--enable-unsafe-webgpu', '--use-angle=swiftshader', '--use-vulkan=swiftshader',
    '--enable-features=Vulkan', '--disable-background-networking', '--no-first-run',
    '--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1 , EXCLUDE localhost'],
});

const stats = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const at = (p) => s[Math.round((s.length - 1) * p)];
  return { min: s[0], median: at(0.5), p90: at(0.9) };
};

const results = {};
for (const [name, query] of [['webgpu', '?weights=seeded'], ['cpu', '?weights=seeded&backend=cpu']]) {
  const page = await browser.newPage();
  await page.goto(base + query);
  await page.waitForFunction(() => window.modelslimEngine && window.modelslimEngine.modelInfo, null, { timeout: 120_000 });
  const times = await page.evaluate(async (runs) => {
    const bytes = new Uint8Array(await (await fetch('samples/chelsea.png')).arrayBuffer());
    const out = [];
    for (let i = 0; i < runs + 1; i++) out.push(JSON.parse(await window.modelslimEngine.predict(bytes)).inference_ms);
    return out;
  }, RUNS);
  const backend = await page.textContent('[data-testid=backend]');
  const warm = stats(times.slice(1));
  results[name] = warm.median;
  console.log(`${backend}: cold ${times[0].toFixed(0)} ms; warm (${RUNS} runs) min ${warm.min.toFixed(0)} ms, ` +
    `median ${warm.median.toFixed(0)} ms, p90 ${warm.p90.toFixed(0)} ms`);
  await page.close();
}
console.log(`warm median ratio cpu / webgpu: ${(results.cpu / results.webgpu).toFixed(2)}`);
await browser.close();
server.close();
