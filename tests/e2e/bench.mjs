// Browser benchmark: ResNet18 forward in headless Chromium on WebGPU (SwiftShader here) and on
// the CPU fallback (Burn flex in wasm), through the page's own engine.
//   npm run bench --prefix tests/e2e            (after `trunk build --release`)
// Prints the cold first run apart, then min / median / p90 of warm runs, and the ratio.
import { serveDist, launchChromium } from './harness.mjs';

const RUNS = Number(process.env.RUNS || 10);
const { server, base } = await serveDist();
const browser = await launchChromium();

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
