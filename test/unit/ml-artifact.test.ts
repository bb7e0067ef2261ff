import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EnsembleError } from '../../services/shared/errors.js';
import { ArtifactError, type ModelArtifact, artifactFromJSON, loadArtifact, paramsVersion, saveArtifact } from '../../services/ml/artifact.js';
import { evaluateProbabilities } from '../../services/ml/metrics.js';
import { ModelParamsError } from '../../services/ml/errors.js';
import { type Classifier, type ModelFamily, fitModel } from '../../services/ml/models/index.js';
import { createRng } from '../../services/ml/random.js';

const X = [
  [0, 0.1],
  [0.2, 0.3],
  [0.1, 0.4],
  [3, 3.1],
  [3.2, 2.8],
  [2.9, 3.3],
  [0.3, 0.2],
  [3.1, 2.9],
];
const y = [0, 0, 0, 1, 1, 1, 0, 1];

function artifactFor(model: Classifier, family: ModelFamily): ModelArtifact {
  const params = model.toJSON();
  const metrics = evaluateProbabilities(
    y,
    X.map((x) => model.predictProba(x)),
  );
  return {
    schemaVersion: 1,
    modelId: `toy-${family}`,
    version: paramsVersion(params),
    family,
    dataset: 'toy',
    classes: ['no', 'yes'],
    featureNames: ['a', 'b'],
    seed: 42,
    split: { fractions: { train: 0.6, validation: 0.2, test: 0.2 }, sizes: { train: 8, validation: 0, test: 0 } },
    trainedAt: '2024-01-01T00:00:00.000Z',
    metrics: { validation: metrics, test: metrics },
    params,
  };
}

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ml-artifact-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('model artifacts', () => {
  it.each<ModelFamily>(['logistic-regression', 'naive-bayes', 'knn', 'decision-tree', 'random-forest'])(
    'round-trips a %s with identical probabilities',
    async (family) => {
      const model = fitModel(family, X, y, 2, createRng(9));
      const artifact = artifactFor(model, family);
      const path = await saveArtifact(dir, artifact);
      expect(path).toBe(join(dir, `toy-${family}`, `${artifact.version}.json`));
      expect(await readdir(join(dir, `toy-${family}`))).toEqual([`${artifact.version}.json`]);

      const loaded = await loadArtifact(path);
      expect(loaded.artifact).toEqual(artifact);
      expect(loaded.model.family).toBe(family);
      for (const x of [...X, [1.5, 1.5], [-4, 9]]) expect(loaded.model.predictProba(x)).toEqual(model.predictProba(x));
    },
  );

  it('versions by content: same params, same version; different params, different version', () => {
    const a = fitModel('random-forest', X, y, 2, createRng(1));
    const b = fitModel('random-forest', X, y, 2, createRng(1));
    const c = fitModel('random-forest', X, y, 2, createRng(2));
    expect(paramsVersion(a.toJSON())).toMatch(/^[0-9a-f]{12}$/);
    expect(paramsVersion(b.toJSON())).toBe(paramsVersion(a.toJSON()));
    expect(paramsVersion(c.toJSON())).not.toBe(paramsVersion(a.toJSON()));
  });

  it('refuses to save an artifact whose version is not its params hash', async () => {
    const artifact = artifactFor(fitModel('naive-bayes', X, y, 2, createRng(1)), 'naive-bayes');
    await expect(saveArtifact(dir, { ...artifact, version: '000000000000' })).rejects.toThrow(ArtifactError);
    await expect(saveArtifact(dir, { ...artifact, modelId: '../escape' })).rejects.toThrow(/safe file name/);
  });
});

describe('malformed artifacts', () => {
  const good = artifactFor(fitModel('decision-tree', X, y, 2, createRng(1)), 'decision-tree');
  // biome-ignore lint/suspicious/noExplicitAny: each case corrupts a different nested field of the artifact
  const clone = (): Record<string, any> => structuredClone(good) as unknown as Record<string, any>;

  async function expectRejected(content: string, message: RegExp): Promise<ArtifactError> {
    const path = join(dir, `bad-${Math.random().toString(16).slice(2)}.json`);
    await writeFile(path, content);
    const error = await loadArtifact(path).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(ArtifactError);
    expect(error).toBeInstanceOf(EnsembleError);
    expect((error as ArtifactError).code).toBe('ARTIFACT_INVALID');
    expect((error as Error).message).toMatch(message);
    expect((error as Error).message).toContain(path);
    return error as ArtifactError;
  }

  it('rejects a file that is not JSON or is missing', async () => {
    await expectRejected('{"schemaVersion": 1,', /not valid JSON/);
    await expect(loadArtifact(join(dir, 'absent.json'))).rejects.toThrow(/cannot read artifact/);
  });

  it('rejects missing or mistyped fields', async () => {
    const noClasses = clone();
    delete noClasses.classes;
    await expectRejected(JSON.stringify(noClasses), /classes must be a non-empty array of strings/);
    await expectRejected(JSON.stringify({ ...clone(), schemaVersion: 2 }), /unsupported schemaVersion 2/);
    await expectRejected(JSON.stringify({ ...clone(), family: 'svm' }), /unknown family "svm"/);
    await expectRejected(JSON.stringify({ ...clone(), trainedAt: 'yesterday' }), /not a date/);
  });

  it('rejects params that were altered after training', async () => {
    const altered = clone();
    altered.params.tree.threshold[0] += 1;
    await expectRejected(JSON.stringify(altered), /do not hash to version/);
  });

  it('rejects params that hash correctly but do not describe a model', async () => {
    const broken = clone();
    broken.params.tree.left[0] = 0;
    broken.version = paramsVersion(broken.params);
    const error = await expectRejected(JSON.stringify(broken), /invalid model params: .*bad children/);
    expect(error.cause).toBeInstanceOf(ModelParamsError);
  });

  it('rejects class or feature lists that do not fit the model', () => {
    expect(() => artifactFromJSON({ ...clone(), classes: ['a', 'b', 'c'] })).toThrow(/2 classes, artifact lists 3/);
    expect(() => artifactFromJSON({ ...clone(), featureNames: ['a'] })).toThrow(/takes 2 features, artifact names 1/);
    expect(() => artifactFromJSON({ ...clone(), params: { ...clone().params, family: 'knn' } })).toThrow(/params are for knn/);
  });

  it('accepts the untouched artifact', async () => {
    const path = join(dir, 'good.json');
    await writeFile(path, JSON.stringify(good));
    expect(JSON.parse(await readFile(path, 'utf8'))).toEqual(good);
    await expect(loadArtifact(path)).resolves.toMatchObject({ artifact: { modelId: 'toy-decision-tree' } });
  });
});
