import { escapeHtml } from "../html";

/**
 * Small SVG charts for the dashboard, built here so every label is escaped (templates print them
 * raw). Each is an `<svg role="img">` with a <title> and <desc> it is labelled by; the page puts
 * a data table beside it for people who cannot see it. Colours come from the stylesheet (classes
 * cs-s0..cs-s5), so the CSP's style-src 'self' holds.
 */

export interface Series {
  label: string;
  /** One value per x position; null leaves a gap. */
  values: (number | null)[];
}

const W = 640;
const H = 200;
const PAD = { left: 48, right: 12, top: 12, bottom: 28 };
const plotW = W - PAD.left - PAD.right;
const plotH = H - PAD.top - PAD.bottom;

let seq = 0;
const ids = (prefix: string) => {
  seq = (seq + 1) % 1_000_000;
  return { title: `${prefix}-t${seq}`, desc: `${prefix}-d${seq}` };
};

function frame(id: { title: string; desc: string }, cls: string, title: string, desc: string, body: string): string {
  return `<svg class="cs-chart ${cls}" viewBox="0 0 ${W} ${H}" role="img" aria-labelledby="${id.title} ${id.desc}"><title id="${id.title}">${escapeHtml(title)}</title><desc id="${id.desc}">${escapeHtml(desc)}</desc>${body}</svg>`;
}

/**
 * A round top for the axis at or above `v`: 1, 2, 2.5, 5 or 10 times a power of ten; for counts an
 * even number of at least 2, so the middle gridline is a whole number too.
 */
export function niceMax(v: number, counts = false): number {
  if (!(v > 0)) return counts ? 2 : 1;
  const p = 10 ** Math.floor(Math.log10(v));
  const steps = counts && p === 1 ? [2, 4, 6, 8, 10] : [1, 2, 2.5, 5, 10];
  const top = steps.map((m) => m * p).find((x) => x >= v - 1e-9) ?? 10 * p;
  return counts ? Math.max(2, Math.ceil(top)) : top;
}

/** Y axis: gridlines and labels at 0, half and the top. */
function yAxis(max: number, fmt: (v: number) => string): string {
  return [0, 0.5, 1]
    .map((f) => {
      const y = (PAD.top + plotH - f * plotH).toFixed(1);
      return `<line x1="${PAD.left}" x2="${W - PAD.right}" y1="${y}" y2="${y}" class="grid"/><text x="${PAD.left - 6}" y="${y}" dy="4" class="ax" text-anchor="end">${escapeHtml(fmt(max * f))}</text>`;
    })
    .join("");
}

/** X labels: the first, the middle and the last position (more would collide on a phone). */
function xAxis(labels: string[], xOf: (i: number) => number): string {
  if (!labels.length) return "";
  const picks = [...new Set([0, Math.floor((labels.length - 1) / 2), labels.length - 1])];
  return picks
    .map((i, k) => {
      const anchor = picks.length > 1 && k === 0 ? "start" : k === picks.length - 1 && picks.length > 1 ? "end" : "middle";
      return `<text x="${xOf(i).toFixed(1)}" y="${H - 8}" class="ax" text-anchor="${anchor}">${escapeHtml(labels[i]!)}</text>`;
    })
    .join("");
}

/**
 * Lines over shared x positions, scaled to `max` (default: a round number above the largest
 * value). A null value leaves a gap, or with `connect` is stepped over (a size not measured that night).
 */
export function linesSvg(opts: { title: string; desc: string; labels: string[]; series: Series[]; max?: number; counts?: boolean; connect?: boolean; format: (v: number) => string; cls?: string }): string {
  const id = ids("ln");
  const n = opts.labels.length;
  const max = opts.max ?? niceMax(Math.max(0, ...opts.series.flatMap((s) => s.values.filter((v): v is number => v !== null))), opts.counts);
  const xOf = (i: number) => PAD.left + (n <= 1 ? plotW / 2 : (i / (n - 1)) * plotW);
  const yOf = (v: number) => PAD.top + plotH - (v / max) * plotH;
  const lines = opts.series
    .map((s, k) => {
      const segs: string[][] = [];
      let cur: string[] = [];
      s.values.forEach((v, i) => {
        if (v === null) {
          if (opts.connect) return;
          if (cur.length) segs.push(cur);
          cur = [];
        } else cur.push(`${xOf(i).toFixed(1)},${yOf(v).toFixed(1)}`);
      });
      if (cur.length) segs.push(cur);
      const cls = `cs-s${k % 6}`;
      return segs
        .map((pts) => (pts.length > 1 ? `<polyline points="${pts.join(" ")}" class="ln ${cls}"/>` : `<circle cx="${pts[0]!.split(",")[0]}" cy="${pts[0]!.split(",")[1]}" r="3" class="pt ${cls}"/>`))
        .join("");
    })
    .join("");
  return frame(id, opts.cls ?? "lines", opts.title, opts.desc, `${yAxis(max, opts.format)}${xAxis(opts.labels, xOf)}${lines}`);
}

/** One bar per x position, scaled to the largest (negative values drawn as empty). */
export function barsSvg(opts: { title: string; desc: string; labels: string[]; values: number[]; format: (v: number) => string; cls?: string }): string {
  const id = ids("br");
  const n = Math.max(1, opts.values.length);
  const max = niceMax(Math.max(...opts.values, 0));
  const slot = plotW / n;
  const bw = Math.max(2, Math.min(36, slot * 0.7));
  const xOf = (i: number) => PAD.left + slot * i + slot / 2;
  const bars = opts.values
    .map((v, i) => {
      const h = Math.max(0, (v / max) * plotH);
      return `<rect x="${(xOf(i) - bw / 2).toFixed(1)}" y="${(PAD.top + plotH - h).toFixed(1)}" width="${bw.toFixed(1)}" height="${h.toFixed(1)}" class="bar"><title>${escapeHtml(`${opts.labels[i] ?? ""} ${opts.format(v)}`)}</title></rect>`;
    })
    .join("");
  return frame(id, opts.cls ?? "bars", opts.title, opts.desc, `${yAxis(max, opts.format)}${xAxis(opts.labels, xOf)}${bars}`);
}
