import { beforeAll, describe, expect, it } from 'vitest';
import { type ModelArtifact, paramsVersion } from '../../services/ml/artifact.js';
import { loadDataset } from '../../services/ml/dataset.js';
import { fitDecisionTree } from '../../services/ml/models/decision-tree.js';
import type { Classifier } from '../../services/ml/models/index.js';
import { fitLogisticRegression } from '../../services/ml/models/logistic-regression.js';
import { fitRandomForest } from '../../services/ml/models/random-forest.js';
import { createRng } from '../../services/ml/random.js';
import { artifactToOnnx, buildOnnxModel, floats, node, tensorInfo, text } from '../../services/ml/onnx/onnx-export.js';
import { ELEM, decodeModel } from '../../services/ml/onnx/onnx-proto.js';
import { ConfigError } from '../../services/shared/errors.js';
import { planOnnxModel } from '../../services/worker/onnx-graph.js';
import { OnnxRunner } from '../../services/worker/onnx-runner.js';

// Real data, real onnxruntime: the exported graphs must give the built-in models' probabilities.
const TRAIN_ROWS = 3000;
const TEST_ROWS = 2000;

let classes: string[];
let featureNames: string[];
let test: Float64Array[];
const models: Record<string, Classifier> = {};

function artifactOf(model: Classifier, names = { classes, featureNames, dataset: 'letter' }): ModelArtifact {
  const params = model.toJSON();
  const metrics = { accuracy: 0, macroF1: 0, logLoss: 0, brier: 0 } as never;
  return {
    schemaVersion: 1,
    modelId: `${names.dataset}-${model.family}`,
    version: paramsVersion(params),
    family: model.family,
    dataset: names.dataset,
    classes: names.classes,
    featureNames: names.featureNames,
    seed: 1,
    split: { fractions: { train: 0.6, validation: 0.2, test: 0.2 }, sizes: { train: TRAIN_ROWS, validation: 0, test: TEST_ROWS } },
    trainedAt: new Date(0).toISOString(),
    metrics: { validation: metrics, test: metrics },
    params,
  } as ModelArtifact;
}

function maxAbsDifference(model: Classifier, answers: { probabilities?: number[] }[], rows = test): number {
  let max = 0;
  rows.forEach((row, i) => {
    const expected = model.predictProba(row);
    const got = answers[i]!.probabilities!;
    expect(got).toHaveLength(expected.length);
    for (let c = 0; c < expected.length; c++) max = Math.max(max, Math.abs(got[c]! - expected[c]!));
  });
  return max;
}

beforeAll(async () => {
  const data = await loadDataset('letter');
  classes = data.classes;
  featureNames = data.featureNames;
  const X = data.X.slice(0, TRAIN_ROWS);
  const y = data.y.slice(0, TRAIN_ROWS);
  test = data.X.slice(TRAIN_ROWS, TRAIN_ROWS + TEST_ROWS);
  models['logistic-regression'] = fitLogisticRegression(X, y, classes.length);
  models['decision-tree'] = fitDecisionTree(X, y, classes.length, createRng(7));
  models['random-forest'] = fitRandomForest(X, y, classes.length, createRng(7), { nTrees: 20 });
}, 120_000);

describe('ONNX export of the built-in families (letter, onnxruntime)', () => {
  for (const family of ['logistic-regression', 'decision-tree', 'random-forest']) {
    it(`${family}: onnxruntime's probabilities equal the built-in model's to 1e-6`, async () => {
      const model = models[family]!;
      const artifact = artifactOf(model);
      const runner = await OnnxRunner.fromBytes(artifactToOnnx(artifact));
      try {
        expect(runner.modelId).toBe(artifact.modelId);
        expect(runner.modelVersion).toBe(artifact.version);
        expect(runner.featureCount).toBe(16);
        expect(runner.classes).toEqual(classes);
        const answers = (await runner.predictBatch(test)) as { probabilities: number[] }[];
        const difference = maxAbsDifference(model, answers);
        process.stdout.write(
          `ONNX parity ${family}: max |p_onnx - p_builtin| = ${difference.toExponential(2)} over ${test.length} rows x ${classes.length} classes\n`,
        );
        expect(difference).toBeLessThanOrEqual(1e-6);
        for (const a of answers) expect(Math.abs(a.probabilities.reduce((s, p) => s + p, 0) - 1)).toBeLessThan(1e-9);
      } finally {
        await runner.close();
      }
    });
  }

  it('a skl2onnx-style graph (label + ZipMap, no metadata) is cut before its ZipMap; labels come from the ZipMap', async () => {
    const model = models['random-forest']!;
    const bytes = artifactToOnnx(artifactOf(model), { zipMap: true, metadata: false });
    const runner = await OnnxRunner.fromBytes(bytes, { source: 'forest.onnx' });
    try {
      expect(runner.modelId).toBe('forest');
      expect(runner.classes).toEqual(classes);
      expect(maxAbsDifference(model, (await runner.predictBatch(test)) as never)).toBeLessThanOrEqual(1e-6);
    } finally {
      await runner.close();
    }
  });

  it('configured classes reorder the probabilities; other labels are refused', async () => {
    const model = models['logistic-regression']!;
    const bytes = artifactToOnnx(artifactOf(model));
    const reversed = [...classes].reverse();
    const runner = await OnnxRunner.fromBytes(bytes, { classes: reversed });
    try {
      const [answer] = (await runner.predictBatch([test[0]!])) as { probabilities: number[] }[];
      const expected = Array.from(model.predictProba(test[0]!)).reverse();
      answer!.probabilities.forEach((p, c) => {
        expect(p).toBeCloseTo(expected[c]!, 6);
      });
    } finally {
      await runner.close();
    }
    await expect(OnnxRunner.fromBytes(bytes, { classes: ['x', ...classes.slice(1)] })).rejects.toThrow(/are not the model's classes/);
  });

  it('a regression output gives one value per row', async () => {
    const bytes = buildOnnxModel({
      nodes: [node('LinearRegressor', ['x'], ['y'], [floats('coefficients', [2, -1]), floats('intercepts', [0.5]), text('post_transform', 'NONE')])],
      inputs: [tensorInfo('x', ELEM.FLOAT, ['N', 2])],
      outputs: [tensorInfo('y', ELEM.FLOAT, ['N', 1])],
    });
    const runner = await OnnxRunner.fromBytes(bytes);
    try {
      expect(
        await runner.predictBatch([
          [1, 1],
          [3, 0.5],
        ]),
      ).toEqual([{ value: 1.5 }, { value: 6 }]);
    } finally {
      await runner.close();
    }
    await expect(OnnxRunner.fromBytes(bytes, { classes: ['a', 'b'] })).rejects.toThrow(/regression value, but class labels were configured/);
  });
});

describe('ONNX export of a two-class data set (spam, onnxruntime)', () => {
  it('decision tree and random forest (two classes take their own graph) and logistic regression match to 1e-6', async () => {
    const data = await loadDataset('spam');
    // The file is sorted by class: alternate rows keep both classes in both halves.
    const X = data.X.filter((_, i) => i % 2 === 0);
    const y = data.y.filter((_, i) => i % 2 === 0);
    const rows = data.X.filter((_, i) => i % 2 === 1);
    const names = { classes: data.classes, featureNames: data.featureNames, dataset: 'spam' };
    const fitted = [fitLogisticRegression(X, y, 2), fitDecisionTree(X, y, 2, createRng(3)), fitRandomForest(X, y, 2, createRng(3), { nTrees: 20 })];
    for (const model of fitted) {
      const runner = await OnnxRunner.fromBytes(artifactToOnnx(artifactOf(model, names)));
      try {
        const difference = maxAbsDifference(model, (await runner.predictBatch(rows)) as never, rows);
        process.stdout.write(`ONNX parity spam ${model.family}: max |p_onnx - p_builtin| = ${difference.toExponential(2)} over ${rows.length} rows\n`);
        expect(difference).toBeLessThanOrEqual(1e-6);
      } finally {
        await runner.close();
      }
    }
  }, 60_000);
});

describe('ONNX graphs the worker refuses at start', () => {
  const plan = (bytes: Uint8Array, options = {}) => planOnnxModel(decodeModel(bytes), { source: 'm.onnx', ...options });
  const identity = (inputs = [tensorInfo('x', ELEM.FLOAT, ['N', 3])], outputs = [tensorInfo('p', ELEM.FLOAT, ['N', 3])]) =>
    buildOnnxModel({ nodes: [node('Identity', ['x'], ['p'], [], '')], inputs, outputs });

  it('an input that is not float or double', () => {
    expect(() => plan(identity([tensorInfo('x', ELEM.INT64, ['N', 3])]))).toThrow(/input "x" has element type int64/);
  });
  it('more than one input', () => {
    expect(() => plan(identity([tensorInfo('x', ELEM.FLOAT, ['N', 3]), tensorInfo('z', ELEM.FLOAT, ['N', 3])]))).toThrow(/has 2 inputs/);
  });
  it('a fixed batch size, or an input that is not [batch, features]', () => {
    expect(() => plan(identity([tensorInfo('x', ELEM.FLOAT, [1, 3])]))).toThrow(/fixed batch size of 1/);
    expect(() => plan(identity([tensorInfo('x', ELEM.FLOAT, ['N', 3, 2])]))).toThrow(/rank 3/);
  });
  it('probabilities without class labels, unless configured', () => {
    expect(() => plan(identity())).toThrow(/no class labels .* pass --classes/);
    expect(plan(identity(), { classes: ['a', 'b', 'c'] }).output).toMatchObject({ kind: 'probabilities', name: 'p', classes: ['a', 'b', 'c'] });
  });
  it('no usable output', () => {
    expect(() => plan(identity(undefined, [tensorInfo('p', ELEM.INT64, ['N', 3])]))).toThrow(/has no output the worker can publish/);
  });
  it('the errors are configuration errors', () => {
    expect(() => plan(identity())).toThrow(ConfigError);
  });
});
