// Peer text goes into the page only as text (textContent, never innerHTML), and the
// invisible characters that reorder or hide text (bidi overrides, isolates, marks,
// zero-width ones) are shown as visible <U+XXXX> tags instead of acting on the layout.

const INVISIBLE = /[\u061c\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff]/gu;

export function neutralise(value) {
  return String(value).replace(INVISIBLE, (c) => `<U+${c.codePointAt(0).toString(16).toUpperCase().padStart(4, "0")}>`);
}

export function el(tag, className, content) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (content !== undefined) node.textContent = neutralise(content);
  return node;
}
