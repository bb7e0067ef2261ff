import { loadArtifact } from '../ml/artifact.js';
import { type DatasetSource, resolveDataset } from '../ml/dataset.js';
import type { ModelFamily } from '../ml/models/index.js';
import type { Split } from '../ml/split.js';
import { type TrainSummary, trainModels } from '../ml/trainer.js';

/** One model's probabilities on the validation and test rows, in split order. */
export interface ModelPredictions {
  modelId: string;
  /** Models the project trained; absent for predictions read from files. */
  family?: ModelFamily;
  artifactPath?: string;
  validation: Float64Array[];
  test: Float64Array[];
}

/** What selection works on: every model's validation and test probabilities and the true classes. */
export interface BasePredictions {
  dataset: string;
  seed: number;
  classes: string[];
  /** Rows the base models were fitted on (0 for predictions read from files), validation and test rows. */
  sizes: { train: number; validation: number; test: number };
  yValidation: Int32Array;
  yTest: Int32Array;
  models: ModelPredictions[];
  /** Models the project trained: what the trainer reported (artifacts, split, metrics), for the manifest. */
  training?: TrainSummary;
  /** Predictions read from files: the request id of each validation and test row. */
  requestIds?: { validation: string[]; test: string[] };
}

export interface BasePredictionOptions {
  /** A built-in data set's name, or a loaded one. */
  dataset: DatasetSource;
  families?: readonly ModelFamily[];
  seed: number;
  /** The trainer writes the artifacts here. */
  modelsDir: string;
  onProgress?: (line: string) => void;
}

/**
 * Trains the models with the trainer (the same split and the same models as `train` with this seed)
 * and replays the saved artifacts on the validation and test rows, so every later figure comes from
 * the models exactly as workers will serve them (preprocessing included).
 */
export async function predictBaseModels(options: BasePredictionOptions): Promise<BasePredictions & { split: Split; training: TrainSummary }> {
  const log = options.onProgress ?? (() => {});
  const data = await resolveDataset(options.dataset);
  const summary = await trainModels({
    dataset: data,
    ...(options.families === undefined ? {} : { families: options.families }),
    seed: options.seed,
    outDir: options.modelsDir,
    onProgress: (e) => {
      if (e.type === 'dataset-loaded') log(`${e.dataset}: ${e.rows} rows, ${e.features} features, ${e.classes} classes`);
      if (e.type === 'model-started') log(`training ${e.family} ...`);
      if (e.type === 'model-finished') log(`trained ${e.model.modelId} in ${(e.model.fitMs / 1000).toFixed(1)} s`);
    },
  });
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
    dataset: summary.dataset,
    seed: summary.seed,
    classes: summary.classes,
    sizes: { train: summary.split.train.length, validation: summary.split.validation.length, test: summary.split.test.length },
    split: summary.split,
    yValidation: labels(summary.split.validation),
    yTest: labels(summary.split.test),
    models,
    training: summary,
  };
}
