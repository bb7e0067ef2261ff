import { describe, expect, it } from 'vitest';
import {
  boundedWeights,
  checkWeightLearning,
  decayPerLabel,
  learnedWeights,
  WEIGHT_LEARNING_DEFAULTS,
  type WeightLearningOptions,
} from '../../services/core/learned-weights.js';
import { ConfigError } from '../../services/shared/errors.js';

const MODELS = ['m1', 'm2', 'm3'];
const OPTIONS: WeightLearningOptions = { halfLifeLabels: 20, eta: 2, minWeight: 0.05, maxWeight: 0.8 };

function expectValid(weights: Record<string, number>, o: WeightLearningOptions): void {
  const values = Object.values(weights);
  expect(values.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 12);
  for (const w of values) {
    expect(w).toBeGreaterThanOrEqual(o.minWeight - 1e-12);
    expect(w).toBeLessThanOrEqual(o.maxWeight + 1e-12);
  }
}

/** The exponentially weighted mean the score script keeps: s = d*s + loss, w = d*w + 1, mean = s/w. */
class EwLoss {
  private sum = 0;
  private weight = 0;
  constructor(private readonly decay: number) {}
  add(loss: number): void {
    this.sum = this.decay * this.sum + loss;
    this.weight = this.decay * this.weight + 1;
  }
  get mean(): number {
    return this.sum / this.weight;
  }
}

describe('learned weights', () => {
  it('are equal before any feedback', () => {
    expect(learnedWeights(MODELS, new Map(), OPTIONS)).toEqual({ m1: 1 / 3, m2: 1 / 3, m3: 1 / 3 });
  });

  it('follow exp(-eta * loss), normalised, when no bound binds', () => {
    const o = { ...OPTIONS, minWeight: 0, maxWeight: 1 };
    const losses = new Map([
      ['m1', 0.2],
      ['m2', 0.5],
      ['m3', 0.9],
    ]);
    const w = learnedWeights(MODELS, losses, o);
    const raw = [0.2, 0.5, 0.9].map((l) => Math.exp(-o.eta * l));
    const total = raw.reduce((a, b) => a + b, 0);
    MODELS.forEach((m, i) => {
      expect(w[m]).toBeCloseTo((raw[i] ?? 0) / total, 12);
    });
    expectValid(w, o);
  });

  it('stay within [min, max] and sum to 1, however far apart the losses', () => {
    for (const losses of [
      [0.01, 30, 30],
      [30, 0.01, 0.02],
      [0.3, 0.31, 0.32],
      [0, 1000, 5],
    ]) {
      const w = learnedWeights(MODELS, new Map(MODELS.map((m, i) => [m, losses[i] ?? 0])), OPTIONS);
      expectValid(w, OPTIONS);
    }
    const extreme = learnedWeights(
      MODELS,
      new Map([
        ['m1', 0.01],
        ['m2', 30],
        ['m3', 30],
      ]),
      OPTIONS,
    );
    expect(extreme.m1).toBeCloseTo(0.8, 12);
    expect(extreme.m2).toBeCloseTo(0.1, 12);
  });

  it('give a model without feedback yet the weight of an average one', () => {
    const w = learnedWeights(
      MODELS,
      new Map([
        ['m1', 0.2],
        ['m2', 0.6],
      ]),
      { ...OPTIONS, minWeight: 0, maxWeight: 1 },
    );
    expect(w.m3).toBeGreaterThan(w.m2 ?? 1);
    expect(w.m3).toBeLessThan(w.m1 ?? 0);
    expectValid(w, OPTIONS);
  });

  it('move toward a model that becomes better and away from one that degrades', () => {
    const decay = decayPerLabel(OPTIONS.halfLifeLabels);
    const ew = { m1: new EwLoss(decay), m2: new EwLoss(decay), m3: new EwLoss(decay) };
    const weights = () => learnedWeights(MODELS, new Map(Object.entries(ew).map(([m, e]) => [m, e.mean])), OPTIONS);
    // Phase 1: m1 good, m2 poor, m3 middling.
    for (let i = 0; i < 100; i++) {
      ew.m1.add(0.2);
      ew.m2.add(1.2);
      ew.m3.add(0.6);
    }
    const before = weights();
    expect(before.m1).toBeGreaterThan(before.m3 ?? 1);
    expect(before.m3).toBeGreaterThan(before.m2 ?? 1);
    // Phase 2: m1 degrades and m2 improves; every label moves the weights the same way.
    let previous = before;
    for (let i = 0; i < 100; i++) {
      ew.m1.add(1.5);
      ew.m2.add(0.1);
      ew.m3.add(0.6);
      const now = weights();
      expectValid(now, OPTIONS);
      expect(now.m1).toBeLessThanOrEqual((previous.m1 ?? 0) + 1e-12);
      expect(now.m2).toBeGreaterThanOrEqual((previous.m2 ?? 0) - 1e-12);
      previous = now;
    }
    expect(previous.m2).toBeGreaterThan(previous.m3 ?? 1);
    expect(previous.m3).toBeGreaterThan(previous.m1 ?? 1);
  });

  it('forget at the configured half-life', () => {
    expect(decayPerLabel(50) ** 50).toBeCloseTo(0.5, 12);
    // A loss from h labels ago weighs half as much as the newest one.
    const ew = new EwLoss(decayPerLabel(10));
    ew.add(1);
    for (let i = 0; i < 10; i++) ew.add(0);
    const weightSum = (1 - decayPerLabel(10) ** 11) / (1 - decayPerLabel(10));
    expect(ew.mean).toBeCloseTo(0.5 / weightSum, 12);
  });
});

describe('bounded weights', () => {
  it('clamp and renormalise until every weight is within bounds', () => {
    const w = boundedWeights([100, 1, 1, 1], 0.1, 0.5);
    expect(w[0]).toBeCloseTo(0.5, 12);
    for (const x of w.slice(1)) expect(x).toBeCloseTo(0.5 / 3, 12);
    const low = boundedWeights([1, 1, 1, 0.0001], 0.1, 1);
    expect(low[3]).toBeCloseTo(0.1, 12);
    expect(low.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 12);
  });

  it('reject bounds no set of weights can meet', () => {
    expect(() => checkWeightLearning({ ...WEIGHT_LEARNING_DEFAULTS, minWeight: 0.4 }, 3)).toThrow(ConfigError);
    expect(() => checkWeightLearning({ ...WEIGHT_LEARNING_DEFAULTS, maxWeight: 0.3 }, 3)).toThrow(ConfigError);
    expect(() => checkWeightLearning({ ...WEIGHT_LEARNING_DEFAULTS, halfLifeLabels: 0 }, 3)).toThrow(ConfigError);
    expect(() => checkWeightLearning(WEIGHT_LEARNING_DEFAULTS, 3)).not.toThrow();
  });
});
