import { quantile } from '../services/cli/stream-client.js';

/** One phase's end-to-end latencies, by the time the request was created (seconds into the phase). */
export interface LatencyPanel {
  title: string;
  points: { t: number; ms: number }[];
}

const WIDTH = 960;
const PANEL_HEIGHT = 240;
const MARGIN = { left: 64, right: 16, top: 30, bottom: 34 };
const MAX_DOTS = 3000;
const BUCKETS = 80;
const STEPS = [1, 2, 5];

/**
 * Latency over time, one panel per phase: every request as a dot (thinned to a few thousand), and
 * the p50 and p99 of time buckets as lines. The y axis is logarithmic, so a 3 ms steady state and a
 * 3 s backlog read on the same kind of scale.
 */
export function latencyPlot(panels: readonly LatencyPanel[]): string {
  const height = panels.length * PANEL_HEIGHT;
  const parts = panels.map((p, i) => panel(p, i * PANEL_HEIGHT));
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" font-family="sans-serif" font-size="11">`,
    `<rect width="${WIDTH}" height="${height}" fill="#fff"/>`,
    ...parts,
    '</svg>',
  ].join('\n');
}

function panel(p: LatencyPanel, top: number): string {
  const x0 = MARGIN.left;
  const x1 = WIDTH - MARGIN.right;
  const y0 = top + PANEL_HEIGHT - MARGIN.bottom;
  const y1 = top + MARGIN.top;
  const tMax = p.points.reduce((m, q) => Math.max(m, q.t), 1e-3);
  const msMax = niceCeiling(p.points.reduce((m, q) => Math.max(m, q.ms), 1));
  const msMin = 0.5;
  const x = (t: number) => x0 + (t / tMax) * (x1 - x0);
  const y = (ms: number) => y0 - ((Math.log10(Math.max(ms, msMin)) - Math.log10(msMin)) / (Math.log10(msMax) - Math.log10(msMin))) * (y0 - y1);
  const out: string[] = [`<text x="${x0}" y="${top + 18}" font-size="13" font-weight="bold">${escapeXml(p.title)}</text>`];

  for (let ms = 1; ms <= msMax; ms *= 10) {
    for (const step of STEPS) {
      const v = ms * step;
      if (v > msMax) break;
      out.push(`<line x1="${x0}" x2="${x1}" y1="${y(v).toFixed(1)}" y2="${y(v).toFixed(1)}" stroke="#e4e4e4"/>`);
      out.push(`<text x="${x0 - 6}" y="${(y(v) + 4).toFixed(1)}" text-anchor="end" fill="#555">${v >= 1000 ? `${v / 1000} s` : `${v} ms`}</text>`);
    }
  }
  const tStep = niceStep(tMax / 8);
  for (let t = 0; t <= tMax + 1e-9; t += tStep) {
    out.push(`<line x1="${x(t).toFixed(1)}" x2="${x(t).toFixed(1)}" y1="${y0}" y2="${y0 + 4}" stroke="#555"/>`);
    out.push(`<text x="${x(t).toFixed(1)}" y="${y0 + 16}" text-anchor="middle" fill="#555">${Number(t.toFixed(2))}</text>`);
  }
  out.push(`<text x="${x1}" y="${y0 + 30}" text-anchor="end" fill="#555">seconds into the phase (request created)</text>`);
  out.push(`<line x1="${x0}" x2="${x1}" y1="${y0}" y2="${y0}" stroke="#555"/><line x1="${x0}" x2="${x0}" y1="${y0}" y2="${y1}" stroke="#555"/>`);

  const stride = Math.max(1, Math.ceil(p.points.length / MAX_DOTS));
  const dots: string[] = [];
  for (let i = 0; i < p.points.length; i += stride) {
    const q = p.points[i] as { t: number; ms: number };
    dots.push(`<circle cx="${x(q.t).toFixed(1)}" cy="${y(q.ms).toFixed(1)}" r="1.3"/>`);
  }
  out.push(`<g fill="#7aa6d6" fill-opacity="0.45">${dots.join('')}</g>`);

  const buckets: number[][] = Array.from({ length: BUCKETS }, () => []);
  for (const q of p.points) buckets[Math.min(BUCKETS - 1, Math.floor((q.t / tMax) * BUCKETS))]?.push(q.ms);
  for (const [q, colour] of [
    [0.5, '#1a7f37'],
    [0.99, '#cf222e'],
  ] as const) {
    const line = buckets
      .map((b, i) =>
        b.length === 0
          ? undefined
          : `${x(((i + 0.5) / BUCKETS) * tMax).toFixed(1)},${y(
              quantile(
                b.sort((a, c) => a - c),
                q,
              ),
            ).toFixed(1)}`,
      )
      .filter((s) => s !== undefined);
    out.push(`<polyline points="${line.join(' ')}" fill="none" stroke="${colour}" stroke-width="1.6"/>`);
  }
  out.push(
    `<text x="${x1 - 4}" y="${top + 18}" text-anchor="end"><tspan fill="#1a7f37">— p50</tspan>  <tspan fill="#cf222e">— p99</tspan>  <tspan fill="#4a86c6">● one request</tspan></text>`,
  );
  return out.join('\n');
}

function niceCeiling(v: number): number {
  for (let m = 1; ; m *= 10) for (const s of STEPS) if (m * s >= v) return m * s;
}

function niceStep(v: number): number {
  const m = 10 ** Math.floor(Math.log10(v));
  return (STEPS.find((s) => s * m >= v) ?? 10) * m;
}

function escapeXml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;');
}
