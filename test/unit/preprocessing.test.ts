import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { artifactFromJSON, loadArtifact } from '../../services/ml/artifact.js';
import { type Dataset, datasetFromCsv } from '../../services/ml/dataset.js';
import { PreprocessedClassifier, encodeRow, encodedNames, fitPreprocessing, needsPreprocessing } from '../../services/ml/preprocessing.js';
import { type TrainSummary, trainModels } from '../../services/ml/trainer.js';
import { exportOnnxModels, onnxPathFor } from '../../services/cli/onnx-models.js';

/** 200 rows: the class follows the colour and the size; some sizes and colours are missing. */
function toyCsv(): string {
  const colours = ['red', 'green', 'blue', 'grey'];
  const lines = ['id,colour,size,label'];
  for (let i = 0; i < 200; i++) {
    const colour = i % 17 === 0 ? '' : colours[i % 4]!;
    const size = i % 13 === 0 ? 'NA' : String((i % 4) * 10 + (i % 7));
    const label = colours[i % 4] === 'red' || colours[i % 4] === 'green' ? 'warm' : 'cold';
    lines.push(`row-${i},${colour},${size},${label}`);
  }
  return `${lines.join('\n')}\n`;
}

describe('preprocessing', () => {
  const data = datasetFromCsv('colour,size,y\nred,1,a\nblue,,b\nred,5,a\ngreen,3,b\n,100,a\n', { name: 't', target: 'y' });

  it('takes medians and one-hot levels from the training rows only', () => {
    expect(needsPreprocessing(data)).toBe(true);
    // Training rows 0, 1, 2, 3: sizes 1, 5, 3 (median 3); the 100 of row 4 is not seen.
    const p = fitPreprocessing(data, [0, 1, 2, 3], 2);
    expect(p.inputs).toEqual([
      // categories sorted: blue 0, green 1, red 2; red is the most frequent, then blue (ties by code).
      { name: 'colour', kind: 'categorical', categories: ['blue', 'green', 'red'], oneHot: [2, 0] },
      { name: 'size', kind: 'numeric', median: 3 },
    ]);
    expect(encodedNames(p)).toEqual(['colour=red', 'colour=blue', 'size']);
    expect(Array.from(encodeRow(p, data.X[0]!))).toEqual([1, 0, 1]);
    expect(Array.from(encodeRow(p, data.X[1]!))).toEqual([0, 1, 3]);
    // green was not kept (bounded levels) and a missing colour: all zeros.
    expect(Array.from(encodeRow(p, data.X[3]!))).toEqual([0, 0, 3]);
    expect(Array.from(encodeRow(p, data.X[4]!))).toEqual([0, 0, 100]);
    expect(() => encodeRow(p, [7, 1])).toThrow(/not a code in \[0, 3\)/);
  });

  it('is not needed for numeric data without gaps', () => {
    const plain: Dataset = datasetFromCsv('a,y\n1,p\n2,q\n', { name: 't', target: 'y' });
    expect(needsPreprocessing(plain)).toBe(false);
  });
});

describe('training on a CSV with text columns and missing values', () => {
  let dir: string;
  let summary: TrainSummary;
  let data: Dataset;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'preprocessing-'));
    data = datasetFromCsv(toyCsv(), { name: 'toy', target: 'label', id: 'id' });
    summary = await trainModels({ dataset: data, families: ['logistic-regression', 'decision-tree'], seed: 3, outDir: dir });
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('stores the preprocessing in the artifact, and the loaded model applies it to raw values', async () => {
    expect(summary.preprocessing).toBeDefined();
    const sizes = summary.split.train
      .map((i) => data.X[i]![1]!)
      .filter((v) => !Number.isNaN(v))
      .sort((a, b) => a - b);
    const median = sizes.length % 2 === 1 ? sizes[sizes.length >> 1]! : (sizes[sizes.length / 2 - 1]! + sizes[sizes.length / 2]!) / 2;
    expect(summary.preprocessing!.inputs[1]).toEqual({ name: 'size', kind: 'numeric', median });
    for (const model of summary.models) {
      const stored = JSON.parse(await readFile(model.artifactPath, 'utf8')) as { featureNames: string[]; preprocessing: unknown };
      expect(stored.featureNames).toEqual(['colour', 'size']);
      expect(stored.preprocessing).toEqual(summary.preprocessing);
      const { model: loaded } = await loadArtifact(model.artifactPath);
      expect(loaded).toBeInstanceOf(PreprocessedClassifier);
      expect(loaded.nFeatures).toBe(2);
      // A missing size and a missing colour are served, as the workers will see them.
      const p = loaded.predictProba([Number.NaN, Number.NaN]);
      expect(p.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 9);
      expect(model.metrics.test.accuracy).toBeGreaterThan(0.8);
    }
  });

  it('is not exported to ONNX: the graph would expect encoded inputs, not the raw ones a request carries', async () => {
    const lines: string[] = [];
    const written = await exportOnnxModels(summary.models, (line) => lines.push(line));
    expect(written.size).toBe(0);
    for (const m of summary.models) expect(existsSync(onnxPathFor(m.artifactPath))).toBe(false);
    expect(lines.join('\n')).toMatch(/no ONNX: its data set needs imputation or one-hot encoding/);
  });

  it('refuses an artifact whose preprocessing was altered', async () => {
    const path = summary.models[0]!.artifactPath;
    const stored = JSON.parse(await readFile(path, 'utf8')) as { preprocessing: { inputs: { median?: number }[] } };
    stored.preprocessing.inputs[1]!.median = 1e6;
    expect(() => artifactFromJSON(stored)).toThrow(/altered/);
  });
});
