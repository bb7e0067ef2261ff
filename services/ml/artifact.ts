import { createHash, randomUUID } from 'node:crypto';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ArtifactError } from './errors.js';
import type { EvaluationMetrics } from './metrics.js';
import { type Classifier, type ModelFamily, type ModelParams, isModelFamily, modelFromParams } from './models/index.js';
import { PreprocessedClassifier, type Preprocessing, preprocessingFromJSON } from './preprocessing.js';
import type { SplitFractions } from './split.js';

export { ArtifactError } from './errors.js';

export const ARTIFACT_SCHEMA_VERSION = 1;

export interface ArtifactSplit {
  fractions: SplitFractions;
  sizes: { train: number; validation: number; test: number };
}

/** A trained model with everything needed to serve it and to know where it came from. */
export interface ModelArtifact {
  schemaVersion: typeof ARTIFACT_SCHEMA_VERSION;
  /** Stable name, e.g. `letter-knn`. */
  modelId: string;
  /**
   * Content hash of `params` (and of `preprocessing` when there is one): retraining on the same data
   * with the same seed gives the same version.
   */
  version: string;
  family: ModelFamily;
  dataset: string;
  classes: string[];
  /** The inputs a request carries, in order; with `preprocessing`, before it is applied. */
  featureNames: string[];
  /** Imputation and one-hot encoding fitted on the training rows; the loaded model applies it. */
  preprocessing?: Preprocessing;
  seed: number;
  split: ArtifactSplit;
  /** ISO-8601. */
  trainedAt: string;
  metrics: { validation: EvaluationMetrics; test: EvaluationMetrics };
  params: ModelParams;
}

export interface LoadedArtifact {
  artifact: ModelArtifact;
  model: Classifier;
}

const MODEL_ID = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;
const VERSION = /^[0-9a-f]{12}$/;

/** First 12 hex digits of the sha256 of the params JSON. */
export function paramsVersion(params: unknown): string {
  return createHash('sha256').update(JSON.stringify(params)).digest('hex').slice(0, 12);
}

/** The version of an artifact: the params' hash, or the hash of params and preprocessing together. */
export function artifactVersion(params: unknown, preprocessing?: Preprocessing): string {
  return preprocessing === undefined ? paramsVersion(params) : paramsVersion({ params, preprocessing });
}

export function artifactPath(dir: string, modelId: string, version: string): string {
  return join(dir, modelId, `${version}.json`);
}

/**
 * Writes `<dir>/<modelId>/<version>.json` through a temporary file and a rename, so a reader never
 * sees half an artifact. Returns the path.
 */
export async function saveArtifact(dir: string, artifact: ModelArtifact): Promise<string> {
  if (!MODEL_ID.test(artifact.modelId)) throw new ArtifactError(`model id ${JSON.stringify(artifact.modelId)} is not a safe file name`);
  if (artifact.version !== artifactVersion(artifact.params, artifact.preprocessing)) {
    throw new ArtifactError(`artifact version ${artifact.version} is not the hash of its params`);
  }
  const path = artifactPath(dir, artifact.modelId, artifact.version);
  const temporary = `${path}.${process.pid}.${randomUUID()}.tmp`;
  try {
    await mkdir(join(dir, artifact.modelId), { recursive: true });
    await writeFile(temporary, JSON.stringify(artifact));
    await rename(temporary, path);
  } catch (error) {
    await rm(temporary, { force: true });
    throw new ArtifactError(`cannot write artifact ${path}`, error);
  }
  return path;
}

export async function loadArtifact(path: string): Promise<LoadedArtifact> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw new ArtifactError(`cannot read artifact ${path}`, error);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new ArtifactError(`artifact ${path} is not valid JSON`, error);
  }
  try {
    return artifactFromJSON(value);
  } catch (error) {
    if (error instanceof ArtifactError) throw new ArtifactError(`artifact ${path}: ${error.message}`, error.cause);
    throw error;
  }
}

/** Validates a parsed artifact and rebuilds its model. */
export function artifactFromJSON(value: unknown): LoadedArtifact {
  const a = record(value, 'artifact');
  if (a.schemaVersion !== ARTIFACT_SCHEMA_VERSION) {
    throw new ArtifactError(`unsupported schemaVersion ${JSON.stringify(a.schemaVersion)}, expected ${ARTIFACT_SCHEMA_VERSION}`);
  }
  const modelId = string(a.modelId, 'modelId');
  if (!MODEL_ID.test(modelId)) throw new ArtifactError(`modelId ${JSON.stringify(modelId)} is malformed`);
  const version = string(a.version, 'version');
  if (!VERSION.test(version)) throw new ArtifactError(`version ${JSON.stringify(version)} is not 12 hex digits`);
  if (!isModelFamily(a.family)) throw new ArtifactError(`unknown family ${JSON.stringify(a.family)}`);
  const family = a.family;
  string(a.dataset, 'dataset'); // checked, though the model does not need it
  const classes = stringArray(a.classes, 'classes');
  const featureNames = stringArray(a.featureNames, 'featureNames');
  if (typeof a.seed !== 'number' || !Number.isInteger(a.seed)) throw new ArtifactError('seed must be an integer');
  const trainedAt = string(a.trainedAt, 'trainedAt');
  if (Number.isNaN(Date.parse(trainedAt))) throw new ArtifactError(`trainedAt ${JSON.stringify(trainedAt)} is not a date`);
  const split = record(a.split, 'split');
  record(split.fractions, 'split.fractions');
  record(split.sizes, 'split.sizes');
  const metrics = record(a.metrics, 'metrics');
  for (const part of ['validation', 'test'] as const) {
    const m = record(metrics[part], `metrics.${part}`);
    for (const key of ['accuracy', 'macroF1', 'logLoss', 'brier']) {
      if (typeof m[key] !== 'number') throw new ArtifactError(`metrics.${part}.${key} must be a number`);
    }
  }

  const params = record(a.params, 'params');
  if (params.family !== family) throw new ArtifactError(`params are for ${String(params.family)}, artifact says ${family}`);
  let preprocessing: Preprocessing | undefined;
  let model: Classifier;
  try {
    preprocessing = a.preprocessing === undefined ? undefined : preprocessingFromJSON(a.preprocessing);
    if (artifactVersion(params, preprocessing) !== version) throw new ArtifactError(`params do not hash to version ${version}: the file was altered`);
    const inner = modelFromParams(params);
    model = preprocessing === undefined ? inner : new PreprocessedClassifier(preprocessing, inner);
  } catch (error) {
    if (error instanceof ArtifactError) throw error;
    throw new ArtifactError(`invalid model params: ${error instanceof Error ? error.message : String(error)}`, error);
  }
  if (model.nClasses !== classes.length) throw new ArtifactError(`model has ${model.nClasses} classes, artifact lists ${classes.length}`);
  if (preprocessing?.inputs.some((input, j) => input.name !== featureNames[j])) {
    throw new ArtifactError("preprocessing inputs are not the artifact's featureNames");
  }
  if (model.nFeatures !== featureNames.length) {
    throw new ArtifactError(`model takes ${model.nFeatures} features, artifact names ${featureNames.length}`);
  }
  return { artifact: value as ModelArtifact, model };
}

function record(value: unknown, what: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new ArtifactError(`${what} must be an object`);
  return value as Record<string, unknown>;
}

function string(value: unknown, what: string): string {
  if (typeof value !== 'string' || value === '') throw new ArtifactError(`${what} must be a non-empty string`);
  return value;
}

function stringArray(value: unknown, what: string): string[] {
  if (!Array.isArray(value) || value.length === 0 || !value.every((v) => typeof v === 'string')) {
    throw new ArtifactError(`${what} must be a non-empty array of strings`);
  }
  return value as string[];
}
