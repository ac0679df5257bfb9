// The bar (backend, status), the notices and the error line.
import { byId, text, on } from './dom.js';

export function mountStatus(store) {
  on(store, ['status'], (s) => text(byId('status'), s.status));
  on(store, ['error'], (s) => {
    text(byId('error'), s.error ?? '');
    byId('error').hidden = !s.error;
  });
  on(store, ['backend'], (s) => {
    const b = s.backend;
    if (!b) return;
    const el = byId('backend');
    text(el, b.name);
    // For the tests: where the engine runs, and how long the move to the training module took.
    el.dataset.kind = b.kind;
    el.dataset.worker = b.inWorker;
    el.dataset.threads = b.threads;
    if (b.trainingMs !== null) el.dataset.training = `${b.trainingMs} ms`;
    const notices = [];
    if (b.fallbackReason) notices.push(`WebGPU is not in use — running on the CPU fallback, which is slower. Reason: ${b.fallbackReason}.`);
    if (b.kind === 'cpu' && b.whyOneThread) notices.push(`The CPU engine runs on one thread: ${b.whyOneThread}.`);
    if (!b.inWorker) notices.push(`The engine runs on this page's main thread (${b.whyNotWorker}): the page may not respond while it works.`);
    text(byId('notice'), notices.join(' '));
    byId('notice').hidden = !notices.length;
  });
  on(store, ['model'], (s) => {
    const random = Boolean(s.model?.random);
    byId('banner').hidden = !random;
    text(byId('banner'), random ? 'Random weights — predictions are meaningless. Load real weights to classify photos.' : '');
  });
  // Page load → engine ready (wasm downloaded and compiled, backend started) → model ready →
  // first top-5, in ms since navigation.
  on(store, ['startup', 'backend'], (s) => {
    const st = s.startup;
    if (st.engine === null) return;
    const sec = (ms) => `${(ms / 1e3).toFixed(2)} s`;
    const parts = [`engine ready ${sec(st.engine)} (wasm download and compile, ${s.backend?.kind === 'wgpu' ? 'WebGPU device' : 'CPU backend'})`];
    if (st.model !== null) parts.push(`model ready ${sec(st.model)}`);
    parts.push(st.firstTop5 !== null ? `first top-5 ${sec(st.firstTop5)}` : 'first top-5 when you add a photo');
    const el = byId('startup');
    text(el, `Since this page loaded: ${parts.join(', ')}.`);
    for (const [k, v] of Object.entries(st)) if (v !== null) el.dataset[k] = v;
  });
}
