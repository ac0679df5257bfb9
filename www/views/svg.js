// The charts' SVG pieces (Auto's candidates, the distillation loss): elements, tick labels, and
// the two axes of a plot inside its margins with the y axis's rotated title.

const SVG = 'http://www.w3.org/2000/svg';

/** An SVG element with `attrs`, and a tooltip (`<title>`) when `title` is given. */
export function svgEl(name, attrs, title) {
  const e = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (title) {
    const t = document.createElementNS(SVG, 'title');
    t.textContent = title;
    e.append(t);
  }
  return e;
}

/** A tick label `s` at (x, y), anchored `start`, `middle` or `end`. */
export function tickLabel(x, y, s, anchor = 'middle') {
  const t = svgEl('text', { x, y, 'text-anchor': anchor, class: 'tick' });
  t.textContent = s;
  return t;
}

/**
 * The x and y axes of a `box` ({W, H, LEFT, RIGHT, TOP, BOTTOM}: the SVG's size and the plot's
 * margins), and the y axis's `title` turned upright at `titleX`.
 */
export function axes(box, title, titleX) {
  const { W, H, LEFT, RIGHT, TOP, BOTTOM } = box;
  const y = tickLabel(0, 0, title);
  y.setAttribute('transform', `translate(${titleX} ${(TOP + H - BOTTOM) / 2}) rotate(-90)`);
  return [
    svgEl('line', { x1: LEFT, y1: H - BOTTOM, x2: W - RIGHT, y2: H - BOTTOM, class: 'axis' }),
    svgEl('line', { x1: LEFT, y1: TOP, x2: LEFT, y2: H - BOTTOM, class: 'axis' }),
    y,
  ];
}
