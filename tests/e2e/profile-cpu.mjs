// Where the CPU fallback's time goes: Chrome's sampling profiler over ten predictions of a
// sample photo, the engine on the page's main thread (`?engine=main`, so the profiler sees it)
// and on the CPU backend; prints self time per function, largest first. Function names need a
// build that keeps them:
//   CARGO_PROFILE_WASM_RELEASE_STRIP=false trunk build --release --dist /tmp/dist-named
//   MODELSLIM_DIST=/tmp/dist-named WEIGHTS=seeded npm run profile-cpu --prefix tests/e2e
// WEIGHTS: seeded (ResNet18) or efficientnet-lite0 (the default). The share includes decoding
// and resizing the photo, which the page's inference times leave out.
import { serveDist, launchChromium } from './harness.mjs';

const weights = process.env.WEIGHTS || 'efficientnet-lite0';
const { server, base } = await serveDist();
const browser = await launchChromium();
const page = await browser.newPage();
await page.goto(`${base}?weights=${weights}&backend=cpu&engine=main`);
await page.waitForFunction(() => window.modelslimEngine?.modelInfo, null, { timeout: 300_000 });
const predict = (runs) => page.evaluate(async (runs) => {
  const bytes = new Uint8Array(await (await fetch('samples/chelsea.png')).arrayBuffer());
  const times = [];
  for (let i = 0; i < runs; i++) times.push(JSON.parse(await window.modelslimEngine.predict(bytes)).inference_ms);
  return times;
}, runs);
await predict(3); // warm-up
const cdp = await page.context().newCDPSession(page);
await cdp.send('Profiler.enable');
await cdp.send('Profiler.setSamplingInterval', { interval: 200 });
await cdp.send('Profiler.start');
const times = await predict(10);
const { profile } = await cdp.send('Profiler.stop');

const selfTime = new Map();
profile.samples.forEach((id, i) => selfTime.set(id, (selfTime.get(id) || 0) + (profile.timeDeltas[i] || 0)));
const byName = new Map();
let total = 0;
for (const node of profile.nodes) {
  const t = selfTime.get(node.id) || 0;
  const name = node.callFrame.functionName || '(anonymous)';
  byName.set(name, (byName.get(name) || 0) + t);
  total += t;
}
console.log(`${weights}, CPU fallback on the main thread: inference ${times.map((t) => t.toFixed(0)).join(', ')} ms`);
for (const [name, t] of [...byName].sort((a, b) => b[1] - a[1]).slice(0, 25)) {
  console.log(`${(100 * t / total).toFixed(1).padStart(5)} %  ${name.slice(0, 140)}`);
}
await browser.close();
server.close();
