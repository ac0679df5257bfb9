// Browser benchmark: ResNet18 forward in headless Chromium on WebGPU (SwiftShader here) and on
// the CPU fallback (Burn flex in wasm), through the page's own engine.
//   npm run bench --prefix tests/e2e            (after `trunk build --release`)
// Prints the cold first run apart, then min / median / p90 of warm runs, and the ratio; then the
// time to compress each preset (and a network with two blocks dropped) in the page and the
// latency of the original and compressed models.
import { serveDist, launchChromium } from './harness.mjs';

const RUNS = Number(process.env.RUNS || 10);
const PRESETS = [
  ['30 % channels + int8 weights', { prune_channels: 0.3, quant: 'int8' }],
  ['30 % channels, round to 8 + int8 weights', { prune_channels: 0.3, round_to: 8, quant: 'int8' }],
  ['50 % channels, round to 8', { prune_channels: 0.5, round_to: 8 }],
  ['2 blocks dropped (layer3.1, layer4.1)', { drop_blocks: 'layer3.1,layer4.1' }],
];
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
  // Before / after: the engine's own benchmark (one warm-up, then RUNS timed passes) on the
  // original and on each compressed preset.
  for (const [label, opts] of PRESETS) {
    const r = await page.evaluate(async ([o, runs]) => {
      const t0 = performance.now();
      await window.modelslimEngine.compress(JSON.stringify(o), () => true);
      const seconds = (performance.now() - t0) / 1e3;
      const orig = JSON.parse(await window.modelslimEngine.benchmark('original', runs));
      const comp = JSON.parse(await window.modelslimEngine.benchmark('compressed', runs));
      return { seconds, orig, comp };
    }, [opts, RUNS]);
    console.log(`  ${label}: compressed in ${r.seconds.toFixed(1)} s; warm median original ` +
      `${r.orig.median_ms.toFixed(0)} ms (p90 ${r.orig.p90_ms.toFixed(0)}), compressed ` +
      `${r.comp.median_ms.toFixed(0)} ms (p90 ${r.comp.p90_ms.toFixed(0)}), ratio ` +
      `${(r.comp.median_ms / r.orig.median_ms).toFixed(2)}`);
  }
  await page.close();
}
console.log(`warm median ratio cpu / webgpu: ${(results.cpu / results.webgpu).toFixed(2)}`);
await browser.close();
server.close();
