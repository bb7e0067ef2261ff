export interface Bar {
  label: string;
  value: number;
  /** Bars of a kind share a colour; `highlight` stands out. */
  kind: 'model' | 'fusion' | 'highlight';
}

const COLOURS: Readonly<Record<Bar['kind'], string>> = { model: '#8c8c8c', fusion: '#4878a8', highlight: '#d9822b' };
const ROW = 18;
const CHAR = 7.5;
const BAR_AREA = 360;
const MARGIN = 10;

/**
 * A horizontal bar chart of values in [0, 1] as a standalone SVG. The axis starts at the 0.05 step
 * below the smallest value (not at 0) so that differences of a point or two stay visible; the axis
 * labels say where it starts.
 */
export function barChartSvg(title: string, bars: readonly Bar[]): string {
  const min = Math.min(...bars.map((b) => b.value));
  const start = Math.max(0, Math.floor((min - 0.01) * 20) / 20);
  const x = (v: number) => ((v - start) / (1 - start)) * BAR_AREA;
  const labelWidth = CHAR * Math.max(...bars.map((b) => b.label.length)) + MARGIN;
  const top = 2 * ROW + MARGIN;
  const width = labelWidth + BAR_AREA + 6 * CHAR + 2 * MARGIN;
  const height = top + bars.length * ROW + 2 * ROW;
  const step = 1 - start > 0.3 ? 0.1 : 0.05;

  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="monospace" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
    `<text x="${MARGIN}" y="${ROW}" font-weight="bold">${escapeXml(title)}</text>`,
  ];
  const axisY = top + bars.length * ROW;
  for (let tick = start; tick <= 1 + 1e-9; tick += step) {
    const tx = MARGIN + labelWidth + x(tick);
    parts.push(
      `<line x1="${tx.toFixed(1)}" y1="${top - 4}" x2="${tx.toFixed(1)}" y2="${axisY}" stroke="#e0e0e0"/>`,
      `<text x="${tx.toFixed(1)}" y="${axisY + 14}" text-anchor="middle">${tick.toFixed(2)}</text>`,
    );
  }
  bars.forEach((bar, i) => {
    const y = top + i * ROW;
    const w = Math.max(0, x(bar.value));
    parts.push(
      `<text x="${MARGIN + labelWidth - CHAR}" y="${y + 12}" text-anchor="end">${escapeXml(bar.label)}</text>`,
      `<rect x="${MARGIN + labelWidth}" y="${y + 2}" width="${w.toFixed(1)}" height="${ROW - 4}" fill="${COLOURS[bar.kind]}"/>`,
      `<text x="${(MARGIN + labelWidth + w + 4).toFixed(1)}" y="${y + 12}">${bar.value.toFixed(3)}</text>`,
    );
  });
  parts.push('</svg>');
  return `${parts.join('\n')}\n`;
}

function escapeXml(text: string): string {
  return text.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c] ?? c);
}
