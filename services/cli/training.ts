import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { DatasetName } from '../ml/dataset.js';
import type { Split } from '../ml/split.js';
import { type TrainSummary, trainModels } from '../ml/trainer.js';
import { repoRoot } from '../shared/repo-root.js';

/**
 * What the trainer leaves for the services and tools: artifacts under `artifacts/<dataset>/models`,
 * and a manifest naming them, the classes, and the split, so the exact test rows can be replayed.
 */
export interface Manifest {
  dataset: DatasetName;
  seed: number;
  classes: string[];
  featureNames: string[];
  split: Split;
  models: { modelId: string; family: string; version: string; artifactPath: string; testAccuracy: number; testMacroF1: number }[];
}

export function artifactsDir(dataset: DatasetName, root = join(repoRoot(), 'artifacts')): string {
  return join(root, dataset);
}

export function manifestPath(dataset: DatasetName, root?: string): string {
  return join(artifactsDir(dataset, root), 'manifest.json');
}

export async function readManifest(dataset: DatasetName, root?: string): Promise<Manifest | undefined> {
  const path = manifestPath(dataset, root);
  if (!existsSync(path)) return undefined;
  const manifest = JSON.parse(await readFile(path, 'utf8')) as Manifest;
  return manifest.models.every((m) => existsSync(m.artifactPath)) ? manifest : undefined;
}

export async function train(dataset: DatasetName, seed: number, log: (line: string) => void, root?: string): Promise<Manifest> {
  const summary: TrainSummary = await trainModels({
    dataset,
    seed,
    outDir: join(artifactsDir(dataset, root), 'models'),
    onProgress: (e) => {
      if (e.type === 'dataset-loaded') log(`  ${e.dataset}: ${e.rows} rows, ${e.features} features, ${e.classes} classes`);
      if (e.type === 'model-started') log(`  training ${e.family} ...`);
      if (e.type === 'model-finished') {
        const t = e.model.metrics.test;
        log(`  ${e.model.modelId.padEnd(28)} test accuracy ${t.accuracy.toFixed(3)}  macro-F1 ${t.macroF1.toFixed(3)}  (${(e.model.fitMs / 1000).toFixed(1)} s)`);
      }
    },
  });
  return writeManifest(summary, root);
}

/** Records what the trainer produced, so services and tools find the artifacts and the split. */
export async function writeManifest(summary: TrainSummary, root?: string): Promise<Manifest> {
  const manifest: Manifest = {
    dataset: summary.dataset,
    seed: summary.seed,
    classes: summary.classes,
    featureNames: summary.featureNames,
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
