import { describe, expect, it } from 'vitest';
import { readEvaluatorSettings } from '../../services/evaluator/config.js';
import { addBucket, classificationSample, emptySums, regressionSample, type Sample, windowFigures } from '../../services/evaluator/rolling-metrics.js';
import { RollingWindow } from '../../services/evaluator/window.js';
import { ConfigError } from '../../services/shared/errors.js';
import { argmax, evaluateProbabilities } from '../../services/ml/metrics.js';
import { createRng } from '../../services/ml/random.js';

/** A bucket hash as score-samples-3.lua writes it, values as Redis hands them back (text). */
function bucketFields(samples: readonly Sample[]): Map<string, string> {
  const sums = new Map<string, number>();
  const add = (field: string, value: number) => sums.set(field, (sums.get(field) ?? 0) + value);
  for (const s of samples) {
    add('n', 1);
    if (s.task === 'classification') {
      add(`c:${s.trueClass}:${s.predictedClass}`, 1);
      if (s.logLoss !== null && s.brier !== null) {
        add('np', 1);
        add('ll', s.logLoss);
        add('br', s.brier);
      }
    } else {
      add('ae', s.absError);
      add('se', s.squaredError);
    }
  }
  return new Map([...sums].map(([k, v]) => [k, String(v)]));
}

/** A subject's window in memory: samples placed in buckets by sequence number or time. */
class BucketedWindow {
  readonly buckets = new Map<number, Sample[]>();
  labelled = 0;
  constructor(readonly window: RollingWindow) {}

  add(sample: Sample, atMs = 0): void {
    this.labelled++;
    const b = this.window.bucketOf(this.window.kind === 'count' ? this.labelled : atMs);
    this.buckets.set(b, [...(this.buckets.get(b) ?? []), sample]);
  }

  /** The samples the window covers when it ends at `end` (labelled total or now). */
  covered(end: number): Sample[] {
    return this.window.select([...this.buckets.keys()], end).flatMap((b) => this.buckets.get(b) ?? []);
  }
}

const marked = (i: number): Sample => ({ task: 'regression', absError: i, squaredError: i * i });
const marks = (samples: readonly Sample[]) => samples.map((s) => (s.task === 'regression' ? s.absError : -1)).sort((a, b) => a - b);

describe('rolling window', () => {
  it('by count, keeps exactly the last N labelled for N <= 32', () => {
    const w = new BucketedWindow(RollingWindow.parse('count:5'));
    for (let i = 1; i <= 12; i++) w.add(marked(i));
    expect(marks(w.covered(w.labelled))).toEqual([8, 9, 10, 11, 12]);
    w.add(marked(13));
    expect(marks(w.covered(w.labelled))).toEqual([9, 10, 11, 12, 13]);
  });

  it('by count, drops whole steps of N/32 for larger N and never holds more than one step too many', () => {
    const window = RollingWindow.parse('count:100');
    expect(window.bucketSize).toBe(4);
    const w = new BucketedWindow(window);
    const sizes: number[] = [];
    for (let i = 1; i <= 400; i++) {
      w.add(marked(i));
      const covered = marks(w.covered(w.labelled));
      sizes.push(covered.length);
      // Always the newest ones, without gaps.
      expect(covered[covered.length - 1]).toBe(i);
      expect(covered).toEqual(Array.from({ length: covered.length }, (_, k) => i - covered.length + 1 + k));
    }
    expect(Math.min(...sizes.slice(100))).toBe(97);
    expect(Math.max(...sizes)).toBe(100);
  });

  it('by count, is empty before the first label', () => {
    expect(RollingWindow.parse('count:10').select([0, 1], 0)).toEqual([]);
  });

  it('by time, drops samples once they are older than T (in steps of T/32)', () => {
    const window = RollingWindow.parse('time:32000');
    expect(window.bucketSize).toBe(1000);
    const w = new BucketedWindow(window);
    w.add(marked(1), 10_000);
    w.add(marked(2), 40_999);
    w.add(marked(3), 41_000);
    w.add(marked(4), 72_500);
    // From 72 000 on the window holds buckets 41..72: the sample at 40 999 has left.
    expect(marks(w.covered(72_999))).toEqual([3, 4]);
    expect(marks(w.covered(72_000))).toEqual([3, 4]);
    // Until then it held 40..71, where the sample at 72 500 is not yet.
    expect(marks(w.covered(71_999))).toEqual([2, 3]);
    expect(marks(w.covered(50_000))).toEqual([2, 3]);
    expect(marks(w.covered(200_000))).toEqual([]);
  });

  it('by time, admits late-arriving samples still inside the window and later ones', () => {
    const window = RollingWindow.parse('time:32000');
    expect(window.admits(41_000, 72_999)).toBe(true);
    expect(window.admits(40_999, 72_999)).toBe(false);
    expect(window.admits(90_000, 72_999)).toBe(true);
    expect(window.bucketsUntil(72_999)).toEqual(Array.from({ length: 32 }, (_, i) => 41 + i));
  });

  it('parses and prints its spec, and rejects anything else', () => {
    expect(RollingWindow.parse('time:300000').toString()).toBe('time:300000');
    expect(RollingWindow.parse(' count:1000 ').toString()).toBe('count:1000');
    for (const bad of ['count:0', 'count:-1', 'size:10', 'time:1.5', 'count']) expect(() => RollingWindow.parse(bad)).toThrow(ConfigError);
  });
});

describe('window figures', () => {
  it('equal the batch metrics of services/ml/metrics.ts over the same predictions, however bucketed', () => {
    const rng = createRng(7);
    const classes = 4;
    const yTrue: number[] = [];
    const probabilities: number[][] = [];
    for (let i = 0; i < 300; i++) {
      const raw = Array.from({ length: classes }, () => rng() ** 3);
      const total = raw.reduce((a, b) => a + b, 0);
      probabilities.push(raw.map((r) => r / total));
      // Class 3 never occurs as truth: macro averages must follow sklearn's labels=None.
      yTrue.push(Math.floor(rng() * 3));
    }
    probabilities[5] = [1, 0, 0, 0]; // a confident answer, possibly wrong: clipped log loss
    const samples = yTrue.map((t, i) => classificationSample(t, argmax(probabilities[i] ?? []), probabilities[i] ?? null));
    const sums = emptySums();
    for (let i = 0; i < samples.length; i += 37) addBucket(sums, bucketFields(samples.slice(i, i + 37)));
    const figures = windowFigures(sums, 'classification', classes);
    const expected = evaluateProbabilities(yTrue, probabilities);
    expect(figures.labelled).toBe(300);
    expect(figures.accuracy).toBeCloseTo(expected.accuracy, 12);
    expect(figures.macroPrecision).toBeCloseTo(expected.macroPrecision, 12);
    expect(figures.macroRecall).toBeCloseTo(expected.macroRecall, 12);
    expect(figures.macroF1).toBeCloseTo(expected.macroF1, 12);
    expect(figures.logLoss).toBeCloseTo(expected.logLoss, 10);
    expect(figures.brier).toBeCloseTo(expected.brier, 10);
    expect(figures.mae).toBeNull();
  });

  it('count answers without probabilities in the confusion matrix only', () => {
    const sums = emptySums();
    addBucket(sums, bucketFields([classificationSample(0, 0, [0.9, 0.1]), classificationSample(1, 0, null)]));
    const figures = windowFigures(sums, 'classification', 2);
    expect(figures.accuracy).toBe(0.5);
    expect(figures.logLoss).toBeCloseTo(-Math.log(0.9), 12);
  });

  it('give MAE and RMSE for regression', () => {
    const truth = [1, 2, 3, 4];
    const predicted = [1.5, 1, 3, 6];
    const sums = emptySums();
    addBucket(sums, bucketFields(truth.map((t, i) => regressionSample(t, predicted[i] ?? 0))));
    const figures = windowFigures(sums, 'regression', 0);
    expect(figures.mae).toBeCloseTo((0.5 + 1 + 0 + 2) / 4, 12);
    expect(figures.rmse).toBeCloseTo(Math.sqrt((0.25 + 1 + 0 + 4) / 4), 12);
    expect(figures.accuracy).toBeNull();
  });

  it('are null for an empty window', () => {
    expect(windowFigures(emptySums(), 'classification', 3)).toMatchObject({ labelled: 0, accuracy: null, logLoss: null });
  });
});

describe('evaluator settings', () => {
  it('read defaults, and report every problem at once', () => {
    const s = readEvaluatorSettings(['m1', 'm2'], {});
    expect(s.window.toString()).toBe('count:1000');
    expect(s.eventWindow.toString()).toBe('time:300000');
    expect(s.metricsPort).toBe(9464);
    expect(readEvaluatorSettings(['m1'], { ES_EVAL_WINDOW: 'time:60000' }).eventWindow.toString()).toBe('time:60000');
    let message = '';
    try {
      readEvaluatorSettings(['ensemble', 'm2'], { ES_EVAL_WINDOW: 'count:x', ES_WEIGHT_MIN: '0.6', ES_METRICS_PORT: '70000' });
    } catch (error) {
      expect(error).toBeInstanceOf(ConfigError);
      message = (error as Error).message;
    }
    expect(message).toMatch(/count:x/);
    expect(message).toMatch(/cannot sum to 1/);
    expect(message).toMatch(/"ensemble"/);
    expect(message).toMatch(/ES_METRICS_PORT/);
  });
});
