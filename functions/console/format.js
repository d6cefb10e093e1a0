// Formatting helpers: human sizes, speeds and durations, and safe text in the DOM.

const UNITS = ["B", "KiB", "MiB", "GiB", "TiB"];

/** A byte count in binary units: 1536 -> "1.5 KiB". */
export function humanSize(bytes) {
  if (bytes === null || bytes === undefined || Number.isNaN(bytes)) return "";
  let n = Number(bytes);
  let u = 0;
  while (n >= 1024 && u < UNITS.length - 1) {
    n /= 1024;
    u += 1;
  }
  return u === 0 ? `${n} B` : `${n.toFixed(n < 100 ? 1 : 0)} ${UNITS[u]}`;
}

/** Seconds as "1 min 05 s" or "12 s". */
export function humanDuration(seconds) {
  if (!Number.isFinite(seconds) || seconds < 0) return "";
  const s = Math.round(seconds);
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${String(s % 60).padStart(2, "0")} s`;
  return `${Math.floor(m / 60)} h ${String(m % 60).padStart(2, "0")} min`;
}

/** An element with attributes and children (strings become text nodes, never HTML). */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}
