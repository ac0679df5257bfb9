// modelslim's engine in a dedicated worker: the model, the photos, compression and benchmarks
// run here, so the page's main thread only handles the DOM and stays responsive. The messages
// are engine.js's protocol; ./engine-host.js answers them and owns the session.
import { engineHost } from './engine-host.js';

const onMessage = engineHost((message, transfer = []) => postMessage(message, transfer));
onmessage = (e) => onMessage(e.data);
