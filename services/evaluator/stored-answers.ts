/**
 * The compact forms the evaluator keeps per request until its label arrives: little-endian doubles,
 * exact, 8 bytes a number.
 *
 * An answer: [predicted class index | regression value, latency ms, class probabilities...]. An empty
 * answer marks one that cannot be scored (an ERROR or ABSTAIN prediction, an INSUFFICIENT result).
 * A label: [observedAtMs, true class index | true value].
 */
export interface StoredAnswer {
  /** Classification: the predicted class index; regression: the predicted value. */
  prediction: number;
  latencyMs: number;
  /** Classification with probabilities: one per class, in the configured order. */
  probabilities: number[] | null;
}

export interface StoredLabel {
  observedAtMs: number;
  /** Classification: the true class index; regression: the true value. */
  target: number;
}

export const UNSCORABLE: Buffer = Buffer.alloc(0);

export function encodeAnswer(prediction: number, latencyMs: number, probabilities: readonly number[] | null): Buffer {
  return doubles([prediction, latencyMs, ...(probabilities ?? [])]);
}

/** Undefined for an unscorable answer. */
export function decodeAnswer(bytes: Buffer): StoredAnswer | undefined {
  if (bytes.length < 16) return undefined;
  const values = readDoubles(bytes);
  return { prediction: values[0] ?? Number.NaN, latencyMs: values[1] ?? Number.NaN, probabilities: values.length > 2 ? values.slice(2) : null };
}

export function encodeLabel(label: StoredLabel): Buffer {
  return doubles([label.observedAtMs, label.target]);
}

export function decodeLabel(bytes: Buffer): StoredLabel {
  const [observedAtMs, target] = readDoubles(bytes);
  return { observedAtMs: observedAtMs ?? Number.NaN, target: target ?? Number.NaN };
}

function doubles(values: readonly number[]): Buffer {
  const buf = Buffer.allocUnsafe(values.length * 8);
  values.forEach((v, i) => {
    buf.writeDoubleLE(v, i * 8);
  });
  return buf;
}

function readDoubles(bytes: Buffer): number[] {
  const out = new Array<number>(Math.floor(bytes.length / 8));
  for (let i = 0; i < out.length; i++) out[i] = bytes.readDoubleLE(i * 8);
  return out;
}
