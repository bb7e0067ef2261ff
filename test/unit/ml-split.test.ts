import { describe, expect, it } from 'vitest';
import { createRng, deriveSeed, shuffleInPlace } from '../../services/ml/random.js';
import { stratifiedSplit } from '../../services/ml/split.js';

describe('seeded random numbers', () => {
  it('repeats the same sequence for the same seed and stays in [0, 1)', () => {
    const a = createRng(7);
    const b = createRng(7);
    const first = Array.from({ length: 1000 }, () => a());
    expect(Array.from({ length: 1000 }, () => b())).toEqual(first);
    expect(first.every((v) => v >= 0 && v < 1)).toBe(true);
    expect(Array.from({ length: 5 }, createRng(8))).not.toEqual(first.slice(0, 5));
    // Roughly uniform: the mean of 1000 draws is near 1/2.
    expect(Math.abs(first.reduce((s, v) => s + v, 0) / 1000 - 0.5)).toBeLessThan(0.05);
  });

  it('derives distinct, stable seeds per label', () => {
    expect(deriveSeed(42, 'split')).toBe(deriveSeed(42, 'split'));
    expect(deriveSeed(42, 'split')).not.toBe(deriveSeed(42, 'model:knn'));
    expect(deriveSeed(42, 'split')).not.toBe(deriveSeed(43, 'split'));
  });

  it('shuffles into a permutation', () => {
    const items = Array.from({ length: 50 }, (_, i) => i);
    const shuffled = shuffleInPlace([...items], createRng(1));
    expect(shuffled).not.toEqual(items);
    expect([...shuffled].sort((a, b) => a - b)).toEqual(items);
  });
});

describe('stratified split', () => {
  // 3 classes of 500, 300 and 200 rows, interleaved.
  const y = Int32Array.from({ length: 1000 }, (_, i) => (i % 10 < 5 ? 0 : i % 10 < 8 ? 1 : 2));
  const countClass = (rows: number[], c: number): number => rows.filter((r) => y[r] === c).length;

  it('partitions every row exactly once with sizes round(fraction * n)', () => {
    const split = stratifiedSplit(y, createRng(42));
    expect(split.train).toHaveLength(600);
    expect(split.validation).toHaveLength(200);
    expect(split.test).toHaveLength(200);
    const all = [...split.train, ...split.validation, ...split.test].sort((a, b) => a - b);
    expect(all).toEqual(Array.from({ length: 1000 }, (_, i) => i));
    for (const part of [split.train, split.validation, split.test]) {
      expect(part).toEqual([...part].sort((a, b) => a - b));
    }
  });

  it('keeps each class share in every part', () => {
    const split = stratifiedSplit(y, createRng(42));
    expect([0, 1, 2].map((c) => countClass(split.train, c))).toEqual([300, 180, 120]);
    expect([0, 1, 2].map((c) => countClass(split.validation, c))).toEqual([100, 60, 40]);
    expect([0, 1, 2].map((c) => countClass(split.test, c))).toEqual([100, 60, 40]);
  });

  it('hands leftover rows to the classes with the largest remainders', () => {
    // Class sizes 7 and 3, test 30%: ideal 2.1 and 0.9, total round(3) = 3 -> 2 and 1.
    const labels = [0, 0, 0, 0, 0, 0, 0, 1, 1, 1];
    const split = stratifiedSplit(labels, createRng(1), { train: 0.7, validation: 0, test: 0.3 });
    expect(split.test).toHaveLength(3);
    expect(split.validation).toEqual([]);
    expect(split.test.filter((r) => labels[r] === 0)).toHaveLength(2);
    expect(split.test.filter((r) => labels[r] === 1)).toHaveLength(1);
  });

  it('is deterministic for a seed and differs across seeds', () => {
    const a = stratifiedSplit(y, createRng(5));
    expect(stratifiedSplit(y, createRng(5))).toEqual(a);
    expect(stratifiedSplit(y, createRng(6)).test).not.toEqual(a.test);
  });

  it('copes with a class of a single row', () => {
    const labels = [0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    const split = stratifiedSplit(labels, createRng(3));
    expect(split.train.length + split.validation.length + split.test.length).toBe(10);
    expect([...split.train, ...split.validation, ...split.test].filter((r) => labels[r] === 1)).toEqual([9]);
  });

  it('rejects fractions that do not sum to 1 or are out of range', () => {
    expect(() => stratifiedSplit(y, createRng(1), { train: 0.5, validation: 0.2, test: 0.2 })).toThrow(/sum to/);
    expect(() => stratifiedSplit(y, createRng(1), { train: 1.2, validation: -0.1, test: -0.1 })).toThrow(/not in \[0, 1\]/);
    expect(() => stratifiedSplit([], createRng(1))).toThrow(/empty/);
  });
});
