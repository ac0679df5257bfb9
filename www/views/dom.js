// Small DOM helpers the views share: look-ups, template clones, text.

export const byId = (id) => document.getElementById(id);

/** A clone of `<template id=…>`'s first element. */
export function clone(templateId) {
  return byId(templateId).content.firstElementChild.cloneNode(true);
}

/** Set `el`'s text only when it changed (keeps selections and screen readers calm). */
export function text(el, value) {
  const v = value ?? '';
  if (el.textContent !== v) el.textContent = v;
}

/** Run `render(state)` when one of `keys` changed. */
export function on(store, keys, render) {
  store.subscribe((state, changed) => {
    if (changed.some((k) => keys.includes(k))) render(state);
  });
}
