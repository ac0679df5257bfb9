// modelslim's page: a store (./store.js), the actions that alone talk to the engine
// (./actions.js), and a view per panel (./views/) that renders from the store. Decoding,
// preprocessing and the network run in Rust (wasm), in a worker where the browser allows
// (./engine.js); this thread never loads the engine's module.
import { createStore } from './store.js';
import { createActions, message } from './actions.js';
import { mountStatus } from './views/status.js';
import { mountModel } from './views/model.js';
import { mountPhotos } from './views/photos.js';
import { mountCompress } from './views/compress.js';
import { mountDistill } from './views/distill.js';
import { mountBench } from './views/bench.js';
import { mountCharts } from './views/charts.js';
import { mountAuto } from './views/auto.js';
import { mountScores } from './views/scores.js';

const store = createStore();
const actions = createActions(store, new URLSearchParams(location.search));
for (const mount of [mountStatus, mountModel, mountPhotos, mountAuto, mountCompress, mountDistill, mountBench, mountCharts, mountScores]) {
  mount(store, actions);
}
addEventListener('unhandledrejection', (ev) => actions.fail(message(ev.reason)));
actions.start();
