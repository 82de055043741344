// Tiny DOM helpers: elements are built with text nodes only (never innerHTML), so catalog text is inert.

/** Create an element: h("a", {href: "#/", class: "x", onclick: fn, dataset: {itemId: "1"}}, "text", child). */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElementNS(
    attrs && attrs.svg ? "http://www.w3.org/2000/svg" : "http://www.w3.org/1999/xhtml", tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false || key === "svg") continue;
    if (key === "dataset") Object.assign(el.dataset, value);
    else if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
    else if (key === "value" && "value" in el) el.value = value;
    else if (key === "checked") el.checked = Boolean(value);
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

/** SVG element shorthand. */
export function s(tag, attrs = {}, ...children) {
  return h(tag, {...attrs, svg: true}, ...children);
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replace an element's children. */
export function mount(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** Announce a short message to screen readers and sighted users (the #status live region). */
export function announce(text) {
  const status = document.getElementById("status");
  if (status) status.textContent = text;
}
