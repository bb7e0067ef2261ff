import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { validateAggregatorConfig } from '../../services/core/ensemble-config.js';
import { createRng } from '../../services/ml/random.js';
import { basePredictionsFromFiles, parsePredictionArgument, readPredictionFile } from '../../services/selection/prediction-files.js';
import { selectFromPredictionFiles } from '../../services/selection/select-ensemble.js';

const CLASSES = ['cat', 'dog', 'eel'];

/**
 * Held-out predictions of three made-up models on 600 requests: `sharp` is right 85% of the time,
 * `blunt` 70%, `noise` is uniform. Written as CSV, JSON lines and gzip CSV, as a team would export them.
 */
function predictionsOf(quality: number, seed: number): { requestId: string; label: string; p: number[] }[] {
  const rng = createRng(seed);
  const truth = createRng(1);
  return Array.from({ length: 600 }, (_, i) => {
    const label = Math.floor(truth() * 3);
    const right = rng() < quality;
    const guess = right ? label : (label + 1 + Math.floor(rng() * 2)) % 3;
    const p = [0.1, 0.1, 0.1];
    p[guess] = 0.8;
    return { requestId: `req-${i}`, label: CLASSES[label]!, p: quality === 0 ? [1 / 3, 1 / 3, 1 / 3] : p };
  });
}

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'prediction-files-'));
  const sharp = predictionsOf(0.85, 2);
  // Columns in any order; rounded figures that sum to 1 within 1e-3.
  await writeFile(
    join(dir, 'sharp.csv'),
    ['label,eel,requestId,cat,dog', ...sharp.map((r) => `${r.label},${r.p[2]!.toFixed(4)},${r.requestId},${r.p[0]!.toFixed(4)},${r.p[1]}`)].join('\n'),
  );
  const blunt = predictionsOf(0.7, 3);
  await writeFile(
    join(dir, 'blunt.jsonl'),
    blunt
      .map((r) => JSON.stringify({ requestId: r.requestId, label: r.label, probabilities: Object.fromEntries(CLASSES.map((c, k) => [c, r.p[k]])) }))
      .join('\n'),
  );
  const noise = predictionsOf(0, 4).reverse();
  await writeFile(
    join(dir, 'noise.csv.gz'),
    gzipSync(['requestId,label,cat,dog,eel', ...noise.map((r) => `${r.requestId},${r.label},${r.p.join(',')}`)].join('\n')),
  );
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('prediction files', () => {
  it('reads CSV, JSON lines and gzip, and names each model after its file unless named', async () => {
    const [sharp, blunt, noise] = await Promise.all(['sharp.csv', 'blunt.jsonl', 'noise.csv.gz'].map((f) => readPredictionFile(join(dir, f))));
    expect([sharp!.modelId, blunt!.modelId, noise!.modelId]).toEqual(['sharp', 'blunt', 'noise']);
    for (const f of [sharp!, blunt!, noise!]) {
      expect(f.classes).toEqual(CLASSES);
      expect(f.rows).toHaveLength(600);
    }
    const row = sharp!.rows[0]!;
    expect([...row.probabilities.values()].reduce((a, b) => a + b, 0)).toBeCloseTo(1, 12);
    expect(parsePredictionArgument('my-model=/x/y.csv')).toEqual({ modelId: 'my-model', path: '/x/y.csv' });
  });

  it('joins the files on request id and splits the rows into validation and test', async () => {
    const files = await Promise.all(['sharp.csv', 'noise.csv.gz'].map((f) => readPredictionFile(join(dir, f))));
    const base = basePredictionsFromFiles(files, { name: 'pets', seed: 7 });
    expect(base.sizes).toEqual({ train: 0, validation: 450, test: 150 });
    const i = 5;
    const id = base.requestIds!.validation[i]!;
    const sharpRow = files[0]!.rows.find((r) => r.requestId === id)!;
    expect(CLASSES[base.yValidation[i]!]).toBe(sharpRow.label);
    // The noise file is in reverse order: its row for the same request is joined, not its row at the same place.
    expect(Array.from(base.models[1]!.validation[i]!)).toEqual([1 / 3, 1 / 3, 1 / 3]);
    expect(base.models[0]!.validation[i]![CLASSES.indexOf(sharpRow.label)]).toBeCloseTo(sharpRow.probabilities.get(sharpRow.label)!, 12);
  });

  it('lists bad rows with their lines, and refuses files that do not match', async () => {
    await writeFile(join(dir, 'bad.csv'), 'requestId,label,cat,dog\nr1,cat,0.5,0.5\nr2,cow,0.5,0.5\nr1,dog,0.2,0.8\nr3,dog,0.7,0.7\nr4,cat,x,1\n');
    await expect(readPredictionFile(join(dir, 'bad.csv'))).rejects.toThrow(
      /4 problems: line 3: label "cow" is not one of the classes \(cat, dog\); line 4: requestId "r1" repeats line 2; line 5: probabilities sum to 1.4.*; line 6: probability of "cat" is not a number/,
    );
    await writeFile(join(dir, 'bad.jsonl'), '{"requestId":"r1","label":"cat","probabilities":{"cat":1,"dog":0}}\nnot json\n');
    await expect(readPredictionFile(join(dir, 'bad.jsonl'))).rejects.toThrow(/line 2: not valid JSON/);
    await writeFile(join(dir, 'short.csv'), 'requestId,label,cat,dog,eel\nreq-0,cat,1,0,0\n');
    const files = await Promise.all(['sharp.csv', 'short.csv'].map((f) => readPredictionFile(join(dir, f))));
    expect(() => basePredictionsFromFiles(files, { name: 'x', seed: 1 })).toThrow(/do not cover the same requests.*599 missing/);
    await writeFile(join(dir, 'twoclass.csv'), 'requestId,label,cat,dog\nreq-0,cat,1,0\n');
    const mismatched = await Promise.all(['sharp.csv', 'twoclass.csv'].map((f) => readPredictionFile(join(dir, f))));
    expect(() => basePredictionsFromFiles(mismatched, { name: 'x', seed: 1 })).toThrow(/name the classes cat, dog; .* names cat, dog, eel/);
  });

  it('chooses models, strategy and weights from the files and writes a config and a report', async () => {
    const out = join(dir, 'out');
    const result = await selectFromPredictionFiles({
      files: [join(dir, 'sharp.csv'), join(dir, 'blunt.jsonl'), `uniform=${join(dir, 'noise.csv.gz')}`],
      name: 'pets',
      seed: 1,
      outDir: out,
    });
    expect(result.candidates.filter((c) => c.subset.name === 'single').map((c) => c.subset.models[0])).toEqual(['sharp', 'blunt', 'uniform']);
    const config = validateAggregatorConfig(JSON.parse(await readFile(result.files.config, 'utf8')), result.files.config);
    expect(config.classes).toEqual(CLASSES);
    // The sharp model is far ahead of the others on every fold: the choice relies on it.
    expect(config.models.map((m) => m.id)).toContain('sharp');
    expect(result.bestModel.subset.models).toEqual(['sharp']);
    const report = await readFile(result.files.report, 'utf8');
    expect(report).toContain('Predictions of 3 models read from');
    expect(report).toContain('best single model on test');
  });
});
