// A dependency-free SVG line plot for the what-if trade-off curve.
import {h, s} from "./dom.js";

const W = 560, H = 320, PAD = {left: 70, right: 20, top: 20, bottom: 50};

function scale(lo, hi, a, b) {
  const span = hi - lo || 1;
  return (v) => a + ((v - lo) / span) * (b - a);
}

function ticks(lo, hi, n = 4) {
  return Array.from({length: n + 1}, (_, i) => lo + ((hi - lo) * i) / n);
}

/**
 * Plot `points` ({x, y, label}) as a line with dots, and `current` ({x, y}) as a highlighted marker.
 * The marker carries data-x / data-y (tests read them); the whole plot data-version changes per draw.
 */
export function tradeoffPlot(points, current, {xLabel, yLabel, xFormat = String, yFormat = String, title}) {
  const xs = points.map((p) => p.x).concat(current.x), ys = points.map((p) => p.y).concat(current.y);
  const [x0, x1] = [Math.min(...xs), Math.max(...xs)], [y0, y1] = [Math.min(...ys), Math.max(...ys)];
  const padY = (y1 - y0) * 0.08 || 1, padX = (x1 - x0) * 0.05 || 0.01;
  const sx = scale(x0 - padX, x1 + padX, PAD.left, W - PAD.right);
  const sy = scale(y0 - padY, y1 + padY, H - PAD.bottom, PAD.top);
  const sorted = [...points].sort((a, b) => a.x - b.x);
  const path = sorted.map((p, i) => `${i ? "L" : "M"}${sx(p.x).toFixed(1)},${sy(p.y).toFixed(1)}`).join(" ");
  const svg = s("svg", {viewBox: `0 0 ${W} ${H}`, class: "plot", role: "img", id: "whatif-plot",
                        "aria-labelledby": "plot-title plot-desc"},
    s("title", {id: "plot-title"}, title),
    s("desc", {id: "plot-desc"}, `${yLabel} against ${xLabel}; the marked point is the slider's setting: `
      + `${xFormat(current.x)}, ${yFormat(current.y)}.`),
    s("line", {class: "axis", x1: PAD.left, y1: H - PAD.bottom, x2: W - PAD.right, y2: H - PAD.bottom}),
    s("line", {class: "axis", x1: PAD.left, y1: PAD.top, x2: PAD.left, y2: H - PAD.bottom}),
    ticks(x0, x1).map((t) => s("text", {x: sx(t), y: H - PAD.bottom + 18, "text-anchor": "middle"}, xFormat(t))),
    ticks(y0, y1).map((t) => s("text", {x: PAD.left - 8, y: sy(t) + 4, "text-anchor": "end"}, yFormat(t))),
    s("text", {x: (PAD.left + W - PAD.right) / 2, y: H - 8, "text-anchor": "middle"}, xLabel),
    s("text", {x: 14, y: (PAD.top + H - PAD.bottom) / 2, "text-anchor": "middle",
               transform: `rotate(-90 14 ${(PAD.top + H - PAD.bottom) / 2})`}, yLabel),
    s("path", {class: "curve", d: path}),
    sorted.map((p) => s("circle", {class: "pt", cx: sx(p.x), cy: sy(p.y), r: 3},
      s("title", {}, `${p.label}: ${xFormat(p.x)}, ${yFormat(p.y)}`))),
    s("circle", {class: "now", id: "whatif-now-marker", cx: sx(current.x), cy: sy(current.y), r: 7,
                 "data-x": String(current.x), "data-y": String(current.y)}));
  return h("div", {}, svg);
}
