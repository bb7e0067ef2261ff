import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { loadArtifact } from '../ml/artifact.js';
import { type Dataset, type DatasetSource, resolveDataset } from '../ml/dataset.js';
import type { Preprocessing } from '../ml/preprocessing.js';
import type { Split } from '../ml/split.js';
import { type TrainSummary, trainModels } from '../ml/trainer.js';
import { predictionsCsv } from '../selection/prediction-files.js';
import { repoRoot } from '../shared/repo-root.js';

/**
 * What the trainer leaves for the services and tools: artifacts under `artifacts/<dataset>/models`,
 * and a manifest naming them, the classes, and the split, so the exact test rows can be replayed.
 */
export interface Manifest {
  dataset: string;
  seed: number;
  classes: string[];
  /** The order of the values in a feature event. */
  featureNames: string[];
  /** When the data set has text columns or missing values: the code of each category and the medians. */
  preprocessing?: Preprocessing;
  split: Split;
  models: { modelId: string; family: string; version: string; artifactPath: string; testAccuracy: number; testMacroF1: number }[];
}

export function artifactsDir(dataset: string, root = join(repoRoot(), 'artifacts')): string {
  return join(root, dataset);
}

export function manifestPath(dataset: string, root?: string): string {
  return join(artifactsDir(dataset, root), 'manifest.json');
}

export async function readManifest(dataset: string, root?: string): Promise<Manifest | undefined> {
  const path = manifestPath(dataset, root);
  if (!existsSync(path)) return undefined;
  const manifest = JSON.parse(await readFile(path, 'utf8')) as Manifest;
  return manifest.models.every((m) => existsSync(m.artifactPath)) ? manifest : undefined;
}

export async function train(source: DatasetSource, seed: number, log: (line: string) => void, root?: string): Promise<Manifest> {
  const dataset = await resolveDataset(source);
  const summary: TrainSummary = await trainModels({
    dataset,
    seed,
    outDir: join(artifactsDir(dataset.name, root), 'models'),
    onProgress: (e) => {
      if (e.type === 'dataset-loaded') {
        log(`  ${e.dataset}: ${e.rows} rows, ${e.features} features, ${e.classes} classes`);
        if (e.preprocessing !== undefined) log(`  ${describePreprocessing(e.preprocessing)}`);
      }
      if (e.type === 'model-started') log(`  training ${e.family} ...`);
      if (e.type === 'model-finished') {
        const t = e.model.metrics.test;
        log(
          `  ${e.model.modelId.padEnd(28)} test accuracy ${t.accuracy.toFixed(3)}  macro-F1 ${t.macroF1.toFixed(3)}  (${(e.model.fitMs / 1000).toFixed(1)} s)`,
        );
      }
    },
  });
  const dir = await writeHeldOutPredictions(dataset, summary, root);
  log(`  held-out predictions of every model (validation and test rows) in ${dir}/, as \`select --predictions\` reads them`);
  return writeManifest(summary, root);
}

/**
 * Writes each model's probabilities on the validation and test rows to `predictions/<modelId>.csv`,
 * keyed by the `--id` column (else `row-<n>`, the data row's index): with a team's own models'
 * predictions on the same rows, `select --predictions` chooses a fusion of both.
 */
export async function writeHeldOutPredictions(data: Dataset, summary: TrainSummary, root?: string): Promise<string> {
  const dir = join(artifactsDir(summary.dataset, root), 'predictions');
  await mkdir(dir, { recursive: true });
  const rows = [...summary.split.validation, ...summary.split.test];
  for (const trained of summary.models) {
    const { model } = await loadArtifact(trained.artifactPath);
    const csv = predictionsCsv(
      summary.classes,
      rows.map((i) => ({ requestId: data.ids?.[i] ?? `row-${i}`, label: summary.classes[data.y[i]!]!, probabilities: model.predictProba(data.X[i]!) })),
    );
    await writeFile(join(dir, `${trained.modelId}.csv`), csv);
  }
  return dir;
}

/** Records what the trainer produced, so services and tools find the artifacts and the split. */
export async function writeManifest(summary: TrainSummary, root?: string): Promise<Manifest> {
  const manifest: Manifest = {
    dataset: summary.dataset,
    seed: summary.seed,
    classes: summary.classes,
    featureNames: summary.featureNames,
    ...(summary.preprocessing === undefined ? {} : { preprocessing: summary.preprocessing }),
    split: summary.split,
    models: summary.models.map((m) => ({
      modelId: m.modelId,
      family: m.family,
      version: m.version,
      artifactPath: m.artifactPath,
      testAccuracy: m.metrics.test.accuracy,
      testMacroF1: m.metrics.test.macroF1,
    })),
  };
  await mkdir(artifactsDir(summary.dataset, root), { recursive: true });
  await writeFile(manifestPath(summary.dataset, root), `${JSON.stringify(manifest)}\n`);
  return manifest;
}

/** One line on what training fitted: which columns are one-hot encoded and which get medians. */
export function describePreprocessing(p: Preprocessing): string {
  const categorical = p.inputs.filter((i) => i.kind === 'categorical');
  const parts = categorical.map((i) => `${i.name} (${i.oneHot.length} of ${i.categories.length} levels one-hot)`);
  return `fitted on the training rows: missing numbers take the median; ${categorical.length === 0 ? 'no text columns' : `text columns ${parts.join(', ')}`}`;
}
