/** One sample of a Prometheus text exposition: `name{labels} value`. */
export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

const LINE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\d+)?$/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

/**
 * Parses the text exposition format (version 0.0.4) as prom-client writes it: comments are
 * skipped, label values unescaped, `NaN`/`+Inf`/`-Inf` read as numbers. Lines that are not samples
 * are ignored rather than failing the whole scrape. Pure.
 */
export function parsePromText(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const m = LINE.exec(line);
    if (m === null) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(LABEL)) labels[l[1] as string] = unescapeLabel(l[2] as string);
    samples.push({ name: m[1] as string, labels, value: readNumber(m[3] as string) });
  }
  return samples;
}

function readNumber(text: string): number {
  if (text === '+Inf') return Infinity;
  if (text === '-Inf') return -Infinity;
  return Number(text);
}

function unescapeLabel(value: string): string {
  return value.replace(/\\(["\\n])/g, (_, c: string) => (c === 'n' ? '\n' : c));
}

/** The sum of the samples named `name`, grouped by the value of `label` ('' for none). */
export function sumBy(samples: readonly Sample[], name: string, label?: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const s of samples) {
    if (s.name !== name || Number.isNaN(s.value)) continue;
    const key = label === undefined ? '' : (s.labels[label] ?? '');
    out.set(key, (out.get(key) ?? 0) + s.value);
  }
  return out;
}
