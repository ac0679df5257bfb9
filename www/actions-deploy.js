// Actions of deployment: the compressed model as a TFLite file, and how it fits each target
// (flash, RAM, operators). The TFLite writer is in the engine module the page loads on demand
// (the training one: the page's own module has no room for it), so the first click loads it.
// Part of ./actions.js (same `ctx`).

const message = (e) => (e && e.message) || String(e);

export function deployActions(ctx) {
  const { get, set } = ctx;

  // Forget the TFLite file of a previous compression.
  ctx.resetTflite = () => {
    const t = get().tflite;
    if (t?.url) URL.revokeObjectURL(t.url);
    if (t?.header?.url) URL.revokeObjectURL(t.header.url);
    set({ tflite: null });
  };

  async function tflite() {
    ctx.clearError();
    if (!get().report) {
      ctx.fail('Compress first: the TFLite file is the compressed model\'s.');
      return;
    }
    try {
      await ctx.ensureTraining('engine that writes TFLite');
      ctx.status('writing the TFLite file…');
      const bytes = await ctx.engine.tflite('float');
      const targets = JSON.parse(await ctx.engine.targets());
      const stem = (await ctx.engine.downloadName('onnx')).replace(/\.onnx$/, '');
      const name = `${stem}.tflite`;
      ctx.resetTflite();
      const url = URL.createObjectURL(new Blob([bytes], { type: 'application/octet-stream' }));
      const header = await ctx.engine.cHeader(stem.replace(/[^A-Za-z0-9_]/g, '_'));
      const headerUrl = URL.createObjectURL(new Blob([header], { type: 'text/x-c' }));
      set({ tflite: { name, size: bytes.length, url, header: { name: `${stem}.h`, size: header.length, url: headerUrl } }, targets, status: `TFLite file written: ${name}` });
      // Save it at once: the user asked for the file.
      const a = document.createElement('a');
      a.href = url;
      a.download = name;
      a.click();
    } catch (e) {
      ctx.fail(`Writing the TFLite file failed: ${message(e)}.`);
      ctx.status('ready');
    }
  }

  ctx.public = { ...ctx.public, tflite: () => ctx.enqueue(tflite) };
  return {};
}
