import { performance } from 'node:perf_hooks';
import { ARTIFACT_SCHEMA_VERSION, type ModelArtifact, artifactVersion, saveArtifact } from './artifact.js';
import { type Dataset, type DatasetSource, resolveDataset } from './dataset.js';
import { MlArgumentError } from './errors.js';
import { type EvaluationMetrics, evaluateProbabilities } from './metrics.js';
import { type Classifier, MODEL_FAMILIES, type ModelFamily, fitModel, isModelFamily } from './models/index.js';
import { type Preprocessing, encodeRow, fitPreprocessing, needsPreprocessing } from './preprocessing.js';
import { createRng, deriveSeed } from './random.js';
import { DEFAULT_SPLIT_FRACTIONS, type Split, type SplitFractions, stratifiedSplit } from './split.js';

export interface TrainOptions {
  /** A built-in data set's name, or a loaded one (`loadCsvDataset`). */
  dataset: DatasetSource;
  /** Default: every family. */
  families?: readonly ModelFamily[];
  seed?: number;
  fractions?: SplitFractions;
  /** Artifacts go to `<outDir>/<modelId>/<version>.json`. */
  outDir: string;
  onProgress?: (event: TrainProgress) => void;
}

export type TrainProgress =
  | { type: 'dataset-loaded'; dataset: string; rows: number; features: number; classes: number; preprocessing?: Preprocessing }
  | { type: 'model-started'; family: ModelFamily }
  | { type: 'model-finished'; model: TrainedModel };

export interface TrainedModel {
  family: ModelFamily;
  modelId: string;
  version: string;
  artifactPath: string;
  fitMs: number;
  /** Mean wall time of one predictProba call over the test rows. */
  predictMicros: number;
  metrics: { validation: EvaluationMetrics; test: EvaluationMetrics };
}

export interface TrainSummary {
  dataset: string;
  seed: number;
  classes: string[];
  featureNames: string[];
  /** Fitted on the training rows when the data set has categorical columns or missing values. */
  preprocessing?: Preprocessing;
  /** Row indices into the data set (its data rows in file order), so callers can replay any part exactly. */
  split: Split;
  models: TrainedModel[];
  totalMs: number;
}

export function modelIdFor(dataset: string, family: ModelFamily): string {
  return `${dataset}-${family}`;
}

/**
 * Loads a data set, splits it (stratified, seeded), fits each family on the training part, scores
 * it on validation and test and writes one artifact per model. Each family draws from its own
 * seed derived from `seed`, so a model does not change when other families are added or removed.
 */
export async function trainModels(options: TrainOptions): Promise<TrainSummary> {
  const started = performance.now();
  const seed = options.seed ?? 42;
  const families = options.families ?? MODEL_FAMILIES;
  checkFamilies(families);
  const fractions = options.fractions ?? DEFAULT_SPLIT_FRACTIONS;

  const data = await resolveDataset(options.dataset);
  const split = stratifiedSplit(data.y, createRng(deriveSeed(seed, 'split')), fractions);
  // Fitted on the training rows only: medians and levels of the validation and test rows stay unseen.
  const preprocessing = needsPreprocessing(data) ? fitPreprocessing(data, split.train) : undefined;
  options.onProgress?.({
    type: 'dataset-loaded',
    dataset: data.name,
    rows: data.X.length,
    features: data.featureNames.length,
    classes: data.classes.length,
    ...(preprocessing === undefined ? {} : { preprocessing }),
  });
  const encoded = preprocessing === undefined ? data.X : data.X.map((x) => encodeRow(preprocessing, x));
  const parts: SplitRows = {
    train: rowsOf(encoded, data.y, split.train),
    validation: rowsOf(encoded, data.y, split.validation),
    test: rowsOf(encoded, data.y, split.test),
  };

  const models: TrainedModel[] = [];
  for (const family of families) {
    options.onProgress?.({ type: 'model-started', family });
    const trained = await trainFamily({ family, data, split, fractions, preprocessing, parts, seed, outDir: options.outDir });
    models.push(trained);
    options.onProgress?.({ type: 'model-finished', model: trained });
  }
  return {
    dataset: data.name,
    seed,
    classes: data.classes,
    featureNames: data.featureNames,
    ...(preprocessing === undefined ? {} : { preprocessing }),
    split,
    models,
    totalMs: performance.now() - started,
  };
}

function checkFamilies(families: readonly ModelFamily[]): void {
  const unknown = families.filter((f) => !isModelFamily(f));
  if (unknown.length > 0) throw new MlArgumentError(`unknown model families: ${unknown.join(', ')}`);
  if (new Set(families).size !== families.length) throw new MlArgumentError('families must not repeat');
}

interface Rows {
  X: Float64Array[];
  y: Int32Array;
}

/** The (encoded) rows of each part of the split. */
interface SplitRows {
  train: Rows;
  validation: Rows;
  test: Rows;
}

interface FamilyTraining {
  family: ModelFamily;
  data: Dataset;
  split: Split;
  fractions: SplitFractions;
  preprocessing: Preprocessing | undefined;
  parts: SplitRows;
  seed: number;
  outDir: string;
}

/** Fits one family on the training rows, scores it on validation and test, and saves its artifact. */
async function trainFamily(t: FamilyTraining): Promise<TrainedModel> {
  const { family, data, parts, seed } = t;
  const fitStarted = performance.now();
  const fitted = fitModel(family, parts.train.X, parts.train.y, data.classes.length, createRng(deriveSeed(seed, `model:${family}`)));
  const fitMs = performance.now() - fitStarted;

  const validationMetrics = evaluateProbabilities(parts.validation.y, predictAll(fitted, parts.validation.X));
  const predictStarted = performance.now();
  const testProbabilities = predictAll(fitted, parts.test.X);
  const predictMicros = ((performance.now() - predictStarted) * 1000) / parts.test.X.length;
  const testMetrics = evaluateProbabilities(parts.test.y, testProbabilities);

  const artifact = artifactOf(t, fitted, { validation: validationMetrics, test: testMetrics });
  const artifactPath = await saveArtifact(t.outDir, artifact);
  return {
    family,
    modelId: artifact.modelId,
    version: artifact.version,
    artifactPath,
    fitMs,
    predictMicros,
    metrics: artifact.metrics,
  };
}

function artifactOf(t: FamilyTraining, fitted: Classifier, metrics: TrainedModel['metrics']): ModelArtifact {
  const { data, split, preprocessing } = t;
  const params = fitted.toJSON();
  return {
    schemaVersion: ARTIFACT_SCHEMA_VERSION,
    modelId: modelIdFor(data.name, t.family),
    version: artifactVersion(params, preprocessing),
    family: t.family,
    dataset: data.name,
    classes: data.classes,
    featureNames: data.featureNames,
    ...(preprocessing === undefined ? {} : { preprocessing }),
    seed: t.seed,
    split: {
      fractions: { ...t.fractions },
      sizes: { train: split.train.length, validation: split.validation.length, test: split.test.length },
    },
    trainedAt: new Date().toISOString(),
    metrics,
    params,
  };
}

function rowsOf(X: readonly Float64Array[], y: Int32Array, indices: readonly number[]): Rows {
  return { X: indices.map((i) => X[i]!), y: Int32Array.from(indices, (i) => y[i]!) };
}

function predictAll(model: Classifier, X: readonly Float64Array[]): Float64Array[] {
  return X.map((x) => model.predictProba(x));
}
