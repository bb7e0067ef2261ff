import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadStackingMeta, validateAggregatorConfig } from '../../services/core/ensemble-config.js';
import { STRATEGIES } from '../../services/core/fusion/index.js';
import { createRng } from '../../services/ml/random.js';
import { stratifiedFolds } from '../../services/selection/folds.js';
import { greedyForwardSelection } from '../../services/selection/greedy.js';
import { chooseCandidate, complexityOf } from '../../services/selection/choice-rule.js';
import { SELECTION_FOLDS, SELECTION_REPETITIONS, type SelectionResult, selectEnsemble } from '../../services/selection/select-ensemble.js';
import { fitAverageWeights, fitVoteWeights } from '../../services/selection/weight-fitting.js';

describe('selection building blocks', () => {
  it('deals stratified folds of near-equal size, the same for the same seed', () => {
    const y = Int32Array.from({ length: 23 }, (_, i) => (i < 15 ? 0 : 1));
    const folds = stratifiedFolds(y, 4, createRng(3));
    expect(folds.flat().sort((a, b) => a - b)).toEqual(Array.from({ length: 23 }, (_, i) => i));
    expect(folds.map((f) => f.length).sort()).toEqual([5, 6, 6, 6]);
    for (const fold of folds) expect(fold.filter((i) => y[i] === 1).length).toBeGreaterThanOrEqual(2);
    expect(stratifiedFolds(y, 4, createRng(3))).toEqual(folds);
  });

  it('fits averaging weights that minimise the log loss', () => {
    // Model 0 gives the true class 0.9 on every row, model 1 0.5: all weight on model 0 is optimal.
    const sure = fitAverageWeights([new Float64Array(8).fill(0.9), new Float64Array(8).fill(0.5)]);
    expect(sure[0]).toBeGreaterThan(0.99);
    // Each model rules out the true class on half the rows: an equal mixture is optimal.
    const half = fitAverageWeights([Float64Array.from([1, 1, 0, 0]), Float64Array.from([0, 0, 1, 1])]);
    expect(half).toEqual([0.5, 0.5]);
  });

  it('fits vote weights that let the one right model outvote two wrong ones', () => {
    const votes = [Int32Array.from([0, 0, 1, 1]), Int32Array.from([1, 1, 0, 0]), Int32Array.from([1, 1, 0, 0])];
    const weights = fitVoteWeights(votes, [0, 0, 1, 1], 2);
    expect(weights[0]).toBeGreaterThan(weights[1]! + weights[2]!);
  });

  it('adds items greedily while the loss falls', () => {
    const loss = (subset: readonly string[]) => (({ a: 3, b: 2, ab: 1.5, bc: 1.8, abc: 1.6 }) as Record<string, number>)[subset.join('')] ?? 9;
    expect(greedyForwardSelection(['a', 'b', 'c'], loss)).toEqual(['b', 'a']);
  });
});

describe('ensemble selection on spam', () => {
  let dir: string;
  let result: SelectionResult;
  const progress: string[] = [];

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'selection-'));
    result = await selectEnsemble({ dataset: 'spam', seed: 42, outDir: dir, onProgress: (line) => progress.push(line) });
  }, 120_000);
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('chooses by the rule on repeated cross-validation folds, shared by every candidate', () => {
    const singles = result.candidates.filter((c) => c.subset.name === 'single');
    expect(singles).toHaveLength(5);
    for (const c of result.candidates) expect(c.folds).toHaveLength(SELECTION_FOLDS * SELECTION_REPETITIONS);
    const choice = chooseCandidate(result.candidates, SELECTION_FOLDS);
    expect(result.chosen).toBe(result.candidates[choice.chosen]);
    expect(result.bar).toBe(choice.bar);
    expect(result.scores[choice.chosen]!.meanError).toBeLessThanOrEqual(choice.bar);
    // Nothing simpler than the chosen config is within the bar.
    const simpler = result.candidates.filter((c, i) => complexityOf(c) < complexityOf(result.chosen) && result.scores[i]!.meanError <= choice.bar);
    expect(simpler).toEqual([]);
    expect(result.bestModel).toBe(singles[chooseCandidate(singles, SELECTION_FOLDS).chosen]);
    expect(result.bestModelOnTest.test.accuracy).toBe(Math.max(...singles.map((c) => c.test.accuracy)));
    expect(result.chosen.test.accuracy).toBeGreaterThanOrEqual(result.bestModelOnTest.test.accuracy);
  });

  it('evaluates every strategy with equal and fitted weights over all models and the greedy subset', () => {
    for (const subset of ['all', 'greedy'] as const) {
      const fused = result.candidates.filter((c) => c.subset.name === subset);
      expect(fused.map((c) => `${c.strategy}/${c.weighting}`).sort()).toEqual(
        [...STRATEGIES.classification.filter((s) => s !== 'stacking').flatMap((s) => [`${s}/equal`, `${s}/fitted`]), 'stacking/meta-model'].sort(),
      );
    }
    expect(result.greedyOrder.length).toBeGreaterThan(0);
    expect(progress.some((line) => line.includes('repetition 3 of 3, fold 5 of 5'))).toBe(true);
  });

  it('lists every model and strategy in the table and the report', async () => {
    const report = await readFile(result.files.report, 'utf8');
    const chart = await readFile(result.files.chart, 'utf8');
    const modelIds = ['logistic-regression', 'naive-bayes', 'knn', 'decision-tree', 'random-forest'].map((f) => `spam-${f}`);
    for (const text of [result.table, report]) {
      for (const name of [...modelIds, ...STRATEGIES.classification]) expect(text).toContain(name);
    }
    // Two metric tables (validation, test), one row per candidate in each.
    expect(report.split('\n').filter((line) => line.startsWith('| spam-knn |')).length).toBe(2);
    expect(report).toContain('## Confusion matrix of the chosen config (test)');
    expect(report).toContain('| nonspam |');
    expect(report).toMatch(/the chosen config is (at or above|below) it/);
    expect(report).toContain('Choice rule:');
    expect(chart.match(/<rect [^>]*fill="#/g)).toHaveLength(result.candidates.length);
  });

  it('writes a config that validates and serves the chosen fusion', async () => {
    const raw: unknown = JSON.parse(await readFile(result.files.config, 'utf8'));
    const config = validateAggregatorConfig(raw, result.files.config);
    expect(config).toEqual(result.config);
    expect(config.strategy).toBe(result.chosen.strategy);
    expect(config.classes).toEqual(['nonspam', 'spam']);
    if (config.strategy === 'stacking') {
      const meta = await loadStackingMeta(config, result.files.config);
      expect(meta.toJSON()).toEqual(result.chosen.meta?.toJSON());
    } else {
      expect(Object.fromEntries(config.models.map((m) => [m.id, m.weight]))).toEqual(
        Object.fromEntries(Object.entries(result.chosen.weights).filter(([, w]) => w > 0)),
      );
    }
  });
});
