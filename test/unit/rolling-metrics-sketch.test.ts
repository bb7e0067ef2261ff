import { describe, expect, it } from 'vitest';
import { DDSketch, ZERO_BUCKET } from '../../services/evaluator/ddsketch.js';
import { eventFigures, joinRates } from '../../services/evaluator/event-figures.js';
import { createRng } from '../../services/ml/random.js';

const QUANTILES = [0, 0.01, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999, 1];

/** The value at rank floor(q * (n - 1)) of the sorted values: what the sketch approximates. */
function exactQuantile(sorted: readonly number[], q: number): number {
  return sorted[Math.floor(q * (sorted.length - 1))] ?? Number.NaN;
}

function lognormal(seed: number, n: number, mu: number, sigma: number): number[] {
  const rng = createRng(seed);
  return Array.from({ length: n }, () => {
    const u = 1 - rng();
    const v = rng();
    return Math.exp(mu + sigma * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v));
  });
}

function expectWithin(sketch: DDSketch, values: readonly number[], accuracy: number): void {
  const sorted = [...values].sort((a, b) => a - b);
  for (const q of QUANTILES) {
    const exact = exactQuantile(sorted, q);
    const estimate = sketch.quantile(q) ?? Number.NaN;
    expect(Math.abs(estimate - exact), `q=${q}: ${estimate} vs ${exact}`).toBeLessThanOrEqual(accuracy * exact * (1 + 1e-9));
  }
}

describe('DDSketch', () => {
  it('gives every quantile within 1% of the exact one, over six orders of magnitude', () => {
    const values = lognormal(1, 20_000, Math.log(40), 2.5);
    const sketch = new DDSketch(0.01);
    for (const v of values) sketch.add(v);
    expect(sketch.count).toBe(values.length);
    expectWithin(sketch, values, 0.01);
  });

  it('holds its stated accuracy for integer millisecond latencies, with a heavy tail', () => {
    const values = lognormal(2, 5000, Math.log(25), 0.8).map((v) => Math.max(1, Math.round(v)));
    for (let i = 0; i < 50; i++) values.push(5000 + i * 100);
    const sketch = new DDSketch(0.01);
    for (const v of values) sketch.add(v);
    expectWithin(sketch, values, 0.01);
  });

  it('merges: sketches of parts added up equal the sketch of the whole, as do stored bucket counts', () => {
    const values = lognormal(3, 9000, Math.log(100), 1.2);
    const whole = new DDSketch();
    const parts = [new DDSketch(), new DDSketch(), new DDSketch()];
    const stored = new Map<string, number>();
    values.forEach((v, i) => {
      whole.add(v);
      parts[i % 3]?.add(v);
      const key = whole.bucketKey(v);
      stored.set(key, (stored.get(key) ?? 0) + 1);
    });
    const merged = new DDSketch();
    for (const p of parts) merged.merge(p);
    const rebuilt = new DDSketch();
    for (const [key, count] of stored) rebuilt.addToBucket(key, count);
    for (const q of QUANTILES) {
      expect(merged.quantile(q)).toBe(whole.quantile(q));
      expect(rebuilt.quantile(q)).toBe(whole.quantile(q));
    }
    expectWithin(merged, values, 0.01);
  });

  it('keeps zero and negative latencies (clock skew) in a zero bucket reported as 0', () => {
    const sketch = new DDSketch();
    expect(sketch.quantile(0.5)).toBeUndefined();
    for (const v of [-5, 0, 0, 10, 20]) sketch.add(v);
    expect(sketch.bucketKey(-5)).toBe(ZERO_BUCKET);
    expect(sketch.quantile(0)).toBe(0);
    expect(sketch.quantile(0.5)).toBe(0);
    expect(Math.abs((sketch.quantile(1) ?? 0) - 20)).toBeLessThanOrEqual(0.2);
  });

  it('refuses to merge sketches of different accuracy', () => {
    expect(() => new DDSketch(0.01).merge(new DDSketch(0.02))).toThrow(/accuracy/);
  });
});

describe('event figures', () => {
  it('read counters and latency sketches from merged bucket fields', () => {
    const sketch = new DDSketch();
    const fields = new Map<string, number>([
      ['pred:m1', 10],
      ['late:m1', 2],
      ['miss:m2', 3],
      ['fused:COMPLETE', 6],
      ['fused:PARTIAL', 3],
      ['fused:INSUFFICIENT', 1],
      [`lat:m1:${sketch.bucketKey(12)}`, 9],
      [`lat:m1:${sketch.bucketKey(400)}`, 1],
      [`lat:ensemble:${sketch.bucketKey(30)}`, 10],
    ]);
    const figures = eventFigures(fields, 0.01);
    expect(figures.predictions.get('m1')).toBe(10);
    expect(figures.late.get('m1')).toBe(2);
    expect(figures.missing.get('m2')).toBe(3);
    expect(figures.latency.get('m1')?.count).toBe(10);
    expect(Math.abs((figures.latency.get('m1')?.quantile(0.5) ?? 0) - 12)).toBeLessThanOrEqual(0.12);
    expect(Math.abs((figures.latency.get('m1')?.quantile(1) ?? 0) - 400)).toBeLessThanOrEqual(4);
    expect(joinRates(figures.fused)).toEqual({ completeness: 0.6, partial: 0.3 });
    expect(joinRates({ COMPLETE: 0, PARTIAL: 0, INSUFFICIENT: 0 })).toEqual({ completeness: null, partial: null });
  });
});
