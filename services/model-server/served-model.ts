import { loadArtifact } from '../ml/artifact.js';

/** One model a V2 server serves, under a name the server's `models` map gives it. */
export interface ServedModel {
  readonly version: string;
  /** Features per row; requests with another count are refused with 400. */
  readonly featureCount: number;
  /**
   * Values per answer (class count, or 1 for regression), advertised in the model's metadata so
   * clients can check answers. @defaultValue unknown (advertised as -1)
   */
  readonly outputCount?: number;
  /** One answer per row; a throw becomes a 500. */
  predict(features: readonly number[]): number[];
}

/** Loads one of our trained model artifacts for serving, named by its model id. */
export async function servedModelFromArtifact(path: string): Promise<{ name: string; model: ServedModel }> {
  const { artifact, model } = await loadArtifact(path);
  return {
    name: artifact.modelId,
    model: {
      version: artifact.version,
      featureCount: artifact.featureNames.length,
      outputCount: artifact.classes.length,
      predict: (features) => Array.from(model.predictProba(features)),
    },
  };
}
