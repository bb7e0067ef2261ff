import { loadArtifact } from '../ml/artifact.js';
import { type DatasetName, loadDataset } from '../ml/dataset.js';
import type { ModelFamily } from '../ml/models/index.js';
import type { Split } from '../ml/split.js';
import { type TrainSummary, trainModels } from '../ml/trainer.js';

/** One trained model's probabilities on the validation and test rows, in split order. */
export interface ModelPredictions {
  modelId: string;
  family: ModelFamily;
  artifactPath: string;
  validation: Float64Array[];
  test: Float64Array[];
}

export interface BasePredictions {
  dataset: DatasetName;
  seed: number;
  classes: string[];
  split: Split;
  yValidation: Int32Array;
  yTest: Int32Array;
  models: ModelPredictions[];
  /** What the trainer reported (artifacts, split, metrics), for the manifest. */
  training: TrainSummary;
}

export interface BasePredictionOptions {
  dataset: DatasetName;
  families?: readonly ModelFamily[];
  seed: number;
  /** The trainer writes the artifacts here. */
  modelsDir: string;
  onProgress?: (line: string) => void;
}

/**
 * Trains the models with the trainer (the same split and the same models as `train` with this seed)
 * and replays the saved artifacts on the validation and test rows, so every later figure comes from
 * the models exactly as workers will serve them.
 */
export async function predictBaseModels(options: BasePredictionOptions): Promise<BasePredictions> {
  const log = options.onProgress ?? (() => {});
  const summary = await trainModels({
    dataset: options.dataset,
    ...(options.families === undefined ? {} : { families: options.families }),
    seed: options.seed,
    outDir: options.modelsDir,
    onProgress: (e) => {
      if (e.type === 'dataset-loaded') log(`${e.dataset}: ${e.rows} rows, ${e.features} features, ${e.classes} classes`);
      if (e.type === 'model-started') log(`training ${e.family} ...`);
      if (e.type === 'model-finished') log(`trained ${e.model.modelId} in ${(e.model.fitMs / 1000).toFixed(1)} s`);
    },
  });
  const data = await loadDataset(options.dataset);
  const models: ModelPredictions[] = [];
  for (const trained of summary.models) {
    log(`predicting validation and test rows with ${trained.modelId} ...`);
    const { model } = await loadArtifact(trained.artifactPath);
    const predict = (rows: readonly number[]) => rows.map((i) => model.predictProba(data.X[i]!));
    models.push({
      modelId: trained.modelId,
      family: trained.family,
      artifactPath: trained.artifactPath,
      validation: predict(summary.split.validation),
      test: predict(summary.split.test),
    });
  }
  const labels = (rows: readonly number[]) => Int32Array.from(rows, (i) => data.y[i]!);
  return {
    dataset: options.dataset,
    seed: summary.seed,
    classes: summary.classes,
    split: summary.split,
    yValidation: labels(summary.split.validation),
    yTest: labels(summary.split.test),
    models,
    training: summary,
  };
}
