// Shared by the e2e tests and the browser benchmark: serve dist/ on loopback, launch Chromium.
import { createServer } from 'node:http';
import { readFileSync, existsSync, statSync } from 'node:fs';
import { join, extname, dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const DIST = process.env.MODELSLIM_DIST || join(ROOT, 'dist');

const MIME = {
  '.html': 'text/html', '.js': 'text/javascript', '.mjs': 'text/javascript', '.wasm': 'application/wasm',
  '.css': 'text/css', '.png': 'image/png', '.jpg': 'image/jpeg', '.json': 'application/json',
};

/** The headers dist/_headers (written by scripts/csp.py) asks a static host to send. */
function distHeaders() {
  const file = join(DIST, '_headers');
  if (!existsSync(file)) return {};
  return Object.fromEntries(readFileSync(file, 'utf8').split('\n')
    .filter((l) => /^\s+\S+:/.test(l)).map((l) => l.trim().split(/:\s*(.*)/s).slice(0, 2)));
}

/**
 * Serve DIST on 127.0.0.1 (a free port), with its _headers; resolves to { server, base }.
 * `mounts` serves more folders beside it: { '/prefix/': '/abs/dir' } (the benchmark's
 * onnxruntime-web WebGPU backend, which the page itself does not ship). `isolated: false`
 * leaves out the two headers that make the page cross-origin isolated, as a host that ignores
 * _headers would.
 */
export async function serveDist(mounts = {}, { isolated = true } = {}) {
  const headers = distHeaders();
  if (!isolated) {
    delete headers['Cross-Origin-Opener-Policy'];
    delete headers['Cross-Origin-Embedder-Policy'];
  }
  if (!headers['Content-Security-Policy']) throw new Error(`no Content-Security-Policy in ${DIST}/_headers`);
  const server = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url, 'http://x').pathname);
    const mount = Object.keys(mounts).find((m) => path.startsWith(m));
    const root = mount ? mounts[mount] : DIST;
    let file = join(root, mount ? path.slice(mount.length) : path);
    if (existsSync(file) && statSync(file).isDirectory()) file = join(file, 'index.html');
    if (!file.startsWith(root) || !existsSync(file)) { res.writeHead(404).end(); return; }
    res.writeHead(200, { ...headers, 'content-type': MIME[extname(file)] || 'application/octet-stream' });
    res.end(readFileSync(file));
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return { server, base: `http://127.0.0.1:${server.address().port}/` };
}

/** Debian's Chromium with WebGPU on SwiftShader and no network but loopback (../shared/BROWSER.md). */
export function launchChromium() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/lib/chromium/chromium',
    headless: true,
    args: [
      '--enable-unsafe-webgpu', '--use-angle=swiftshader', '--use-vulkan=swiftshader',
      '--enable-features=Vulkan,CDPScreenshotNewSurface,SkipListAccountsWithoutGaiaCookies',
      '--disable-quic', '--disable-sync', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-default-apps', '--disable-domain-reliability', '--no-pings',
      '--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1 , EXCLUDE localhost',
    ],
  });
}

/** Collect console errors, panics and page errors: the console must stay clean. */
export function watchConsole(page) {
  const problems = [];
  page.on('console', (msg) => {
    if (msg.type() === 'error' || /panicked/.test(msg.text())) problems.push(`console: ${msg.text()}`);
  });
  page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
  return problems;
}

/**
 * A new context and page at `url`, ready when the engine answered (`ready: 'engine'`: the
 * backend is known) or a model is loaded (`'model'`). `initScript` runs in the page before its
 * scripts, `workerScript` in each worker as it starts. Resolves to { page, context, problems }.
 */
export async function openPage(browser, url, { viewport = { width: 1280, height: 1000 }, initScript, workerScript, ready = 'model' } = {}) {
  const context = await browser.newContext({ viewport, acceptDownloads: true });
  const page = await context.newPage();
  if (initScript) await page.addInitScript(initScript);
  if (workerScript) page.on('worker', (w) => w.evaluate(workerScript).catch(() => {}));
  const problems = watchConsole(page);
  await page.goto(url);
  await page.waitForFunction(ready === 'engine'
    ? () => document.querySelector('[data-testid=backend]').dataset.kind
    : () => /model ready/.test(document.querySelector('[data-testid=status]').textContent),
  null, { timeout: 120_000 });
  return { page, context, problems };
}
