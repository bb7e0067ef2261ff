import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type AggregatorConfig, loadStackingMeta, validateAggregatorConfig } from '../../services/core/ensemble-config.js';
import { FusionError, type ModelOutput, createFuser, stackingFeatureNames, stackingInput } from '../../services/core/fusion/index.js';
import { ARTIFACT_SCHEMA_VERSION, type ModelArtifact, paramsVersion, saveArtifact } from '../../services/ml/artifact.js';
import { evaluateProbabilities } from '../../services/ml/metrics.js';
import { LogisticRegression, fitLogisticRegression } from '../../services/ml/models/logistic-regression.js';
import { createRng } from '../../services/ml/random.js';
import { ConfigError } from '../../services/shared/errors.js';

const ABC = ['a', 'b', 'c'];
const MODELS = ['m1', 'm2', 'm3'];
const P1 = [0.7, 0.2, 0.1];
const P2 = [0.2, 0.5, 0.3];
const P3 = [0.1, 0.6, 0.3];
const out = (modelId: string, probabilities: number[]): ModelOutput => ({ modelId, probabilities });

/** A meta-model whose scores are block `block` of its input: its output is softmax(p_block). */
function blockCopier(block: number, models = MODELS.length): LogisticRegression {
  const k = ABC.length;
  const weights = new Array<number>(k * models * k).fill(0);
  for (let c = 0; c < k; c++) weights[c * models * k + block * k + c] = 1;
  return new LogisticRegression({
    family: 'logistic-regression',
    nClasses: k,
    nFeatures: models * k,
    standardiser: null,
    weights,
    intercepts: [0, 0, 0],
  });
}

function softmax(z: readonly number[]): number[] {
  const e = z.map(Math.exp);
  const sum = e.reduce((a, b) => a + b, 0);
  return e.map((x) => x / sum);
}

function expectClose(actual: readonly number[] | undefined, expected: readonly number[]): void {
  expect(actual).toHaveLength(expected.length);
  expected.forEach((e, i) => {
    expect(actual?.[i]).toBeCloseTo(e, 12);
  });
}

describe('stacking input', () => {
  it('concatenates the probability blocks in model order', () => {
    expect(Array.from(stackingInput([P1, P2, P3], 3))).toEqual([...P1, ...P2, ...P3]);
    expect(stackingFeatureNames(['m1', 'm2'], ['a', 'b'])).toEqual(['m1:a', 'm1:b', 'm2:a', 'm2:b']);
  });

  it("fills a missing model's block with the mean of the present models", () => {
    const input = Array.from(stackingInput([P1, undefined, P3], 3));
    expect(input.slice(0, 3)).toEqual(P1);
    expectClose(input.slice(3, 6), [0.4, 0.4, 0.2]); // (P1 + P3) / 2
    expect(input.slice(6, 9)).toEqual(P3);
    expect(Array.from(stackingInput([undefined, P2, undefined], 3))).toEqual([...P2, ...P2, ...P2]);
  });

  it('rejects no block at all and a block of the wrong length', () => {
    expect(() => stackingInput([undefined, undefined], 3)).toThrow(FusionError);
    expect(() => stackingInput([P1, [0.5, 0.5]], 3)).toThrow(/block 1 has 2 probabilities, expected 3/);
  });
});

describe('stacking fuser', () => {
  const spec = (meta = blockCopier(1)) => ({ task: 'classification', strategy: 'stacking', classes: ABC, models: MODELS, meta }) as const;

  it('feeds the meta-model the blocks in configured order, whatever the arrival order', () => {
    const fuser = createFuser(spec());
    expect(fuser.strategy).toBe('stacking');
    const r = fuser.fuse([out('m3', P3), out('m1', P1), out('m2', P2)]);
    expectClose(r.probabilities, softmax(P2)); // the meta-model reads block 1: m2
    expect(r.labelIndex).toBe(1);
    expect(r.label).toBe('b');
    expect(r.weightsUsed).toEqual({ m1: 1 / 3, m2: 1 / 3, m3: 1 / 3 });
    expect(fuser.fuse([out('m1', P1), out('m2', P2), out('m3', P3)])).toEqual(r);
  });

  it('answers with a model missing, reading the mean of the present ones in its block', () => {
    const r = createFuser(spec()).fuse([out('m3', P3), out('m1', P1)]);
    expectClose(r.probabilities, softmax([0.4, 0.4, 0.2]));
    expect(r.labelIndex).toBe(0); // a tie between a and b goes to the lower index
    expect(r.weightsUsed).toEqual({ m1: 0.5, m3: 0.5 });
  });

  it('rejects unknown and duplicate models and invalid probabilities', () => {
    const fuser = createFuser(spec());
    expect(() => fuser.fuse([out('m1', P1), out('m4', P2)])).toThrow(expect.objectContaining({ code: 'UNKNOWN_MODEL', modelId: 'm4' }));
    expect(() => fuser.fuse([out('m1', P1), out('m1', P1)])).toThrow(expect.objectContaining({ code: 'DUPLICATE_MODEL' }));
    expect(() => fuser.fuse([out('m1', [0.5, 0.6, 0.1])])).toThrow(expect.objectContaining({ code: 'INVALID_PROBABILITIES' }));
  });

  it('rejects a meta-model that does not fit the models and classes', () => {
    expect(() => createFuser({ ...spec(), models: ['m1', 'm2'] })).toThrow(/takes 9 inputs, 2 models x 3 classes give 6/);
    expect(() => createFuser({ ...spec(), classes: ['a', 'b', 'c', 'd'] })).toThrow(/gives 3 classes, the config lists 4/);
    expect(() => createFuser({ ...spec(), models: [] })).toThrow(ConfigError);
    expect(() => createFuser({ ...spec(), models: ['m1', 'm1', 'm2'] })).toThrow(/"m1" is listed twice/);
  });
});

describe('stacking config and meta artifact', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'stacking-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const base = { task: 'classification', classes: ABC, models: MODELS.map((id) => ({ id })) };

  it('needs the stacking block with the stacking strategy, and only then', () => {
    expect(() => validateAggregatorConfig({ ...base, strategy: 'stacking' })).toThrow(/stacking: the stacking strategy needs/);
    expect(() => validateAggregatorConfig({ ...base, strategy: 'soft-voting', stacking: { metaArtifact: 'm.json' } })).toThrow(
      /stacking: applies only to the stacking strategy/,
    );
    expect(() => validateAggregatorConfig({ ...base, strategy: 'stacking', stacking: { metaArtifact: '', extra: 1 } })).toThrow(
      /metaArtifact: must be a non-empty path[\s\S]*stacking.extra: unknown setting/,
    );
    expect(validateAggregatorConfig({ ...base, strategy: 'stacking', stacking: { metaArtifact: 'm.json' } }).stacking).toEqual({
      metaArtifact: 'm.json',
    });
    expect(validateAggregatorConfig({ ...base, strategy: 'soft-voting' })).not.toHaveProperty('stacking');
  });

  it('reproduces the fused probabilities offline from a meta-model saved, loaded and served', async () => {
    // Base-model outputs and labels for a meta-model to learn: m1 is right, m2 is noise, m3 lags m1.
    const rng = createRng(7);
    const distribution = (label: number, sharpness: number): number[] => softmax(ABC.map((_, c) => (c === label ? sharpness : 0) + rng()));
    const y = Int32Array.from({ length: 90 }, (_, i) => i % 3);
    const blocks = Array.from(y, (label) => [distribution(label, 2), distribution(Math.floor(rng() * 3), 1), distribution(label, 0.5)]);
    const meta = fitLogisticRegression(
      blocks.map((b) => stackingInput(b, 3)),
      y,
      3,
      { l2: 1, standardise: false },
    );
    const fitted = blocks.map((b) => meta.predictProba(stackingInput(b, 3)));
    expect(evaluateProbabilities(y, fitted).accuracy).toBeGreaterThan(0.9);

    const params = meta.toJSON();
    const artifact: ModelArtifact = {
      schemaVersion: ARTIFACT_SCHEMA_VERSION,
      modelId: 'toy-stacking-meta',
      version: paramsVersion(params),
      family: 'logistic-regression',
      dataset: 'toy',
      classes: ABC,
      featureNames: stackingFeatureNames(MODELS, ABC),
      seed: 7,
      split: { fractions: { train: 0.6, validation: 0.2, test: 0.2 }, sizes: { train: 0, validation: 90, test: 0 } },
      trainedAt: new Date(0).toISOString(),
      metrics: { validation: evaluateProbabilities(y, fitted), test: evaluateProbabilities(y, fitted) },
      params,
    };
    const metaPath = await saveArtifact(join(dir, 'models'), artifact);
    const configPath = join(dir, 'aggregator.json');
    const config: AggregatorConfig = validateAggregatorConfig({
      ...base,
      strategy: 'stacking',
      stacking: { metaArtifact: relative(dir, metaPath) },
    });
    await writeFile(configPath, JSON.stringify(config));

    const served = createFuser({
      task: 'classification',
      strategy: 'stacking',
      classes: config.classes,
      models: config.models.map((m) => m.id),
      meta: await loadStackingMeta(config, configPath),
    });
    blocks.forEach((b, i) => {
      // Arrival order reversed, and every third request without m2.
      const outputs = MODELS.map((id, j) => out(id, b[j]!)).reverse();
      const partial = i % 3 === 0 ? outputs.filter((o) => o.modelId !== 'm2') : outputs;
      const present = MODELS.map((id, j) => (partial.some((o) => o.modelId === id) ? b[j] : undefined));
      const offline = meta.predictProba(stackingInput(present, 3));
      expect(served.fuse(partial).probabilities).toEqual(Array.from(offline));
      if (partial === outputs) expect(served.fuse(partial).probabilities).toEqual(Array.from(fitted[i]!));
    });
  });

  it('refuses a meta-model fitted for another model order', async () => {
    const metaPath = await saveArtifact(join(dir, 'models'), {
      schemaVersion: ARTIFACT_SCHEMA_VERSION,
      modelId: 'order-meta',
      version: paramsVersion(blockCopier(0).toJSON()),
      family: 'logistic-regression',
      dataset: 'toy',
      classes: ABC,
      featureNames: stackingFeatureNames(['m2', 'm1', 'm3'], ABC),
      seed: 1,
      split: { fractions: { train: 0.6, validation: 0.2, test: 0.2 }, sizes: { train: 0, validation: 0, test: 0 } },
      trainedAt: new Date(0).toISOString(),
      metrics: { validation: evaluateProbabilities([0], [[1, 0, 0]]), test: evaluateProbabilities([0], [[1, 0, 0]]) },
      params: blockCopier(0).toJSON(),
    });
    const config = validateAggregatorConfig({ ...base, strategy: 'stacking', stacking: { metaArtifact: metaPath } });
    await expect(loadStackingMeta(config, join(dir, 'aggregator.json'))).rejects.toThrow(/its input list has "m2:a" where the config needs "m1:a"/);
    const missing = validateAggregatorConfig({ ...base, strategy: 'stacking', stacking: { metaArtifact: 'nowhere.json' } });
    await expect(loadStackingMeta(missing, join(dir, 'aggregator.json'))).rejects.toThrow(ConfigError);
  });
});
