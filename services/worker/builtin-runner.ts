import { loadArtifact } from '../ml/artifact.js';
import type { Classifier } from '../ml/models/index.js';
import type { ModelAnswer, ModelRunner } from './model-runner.js';

/** Runs a model trained by our own trainer, in process, from its versioned artifact. */
export class BuiltinRunner implements ModelRunner {
  private constructor(
    readonly modelId: string,
    readonly modelVersion: string,
    readonly featureCount: number,
    private readonly model: Classifier,
    readonly classCount: number,
  ) {}

  static async load(artifactPath: string, modelId?: string): Promise<BuiltinRunner> {
    const { artifact, model } = await loadArtifact(artifactPath);
    return new BuiltinRunner(modelId ?? artifact.modelId, artifact.version, artifact.featureNames.length, model, artifact.classes.length);
  }

  predict(features: readonly number[]): Promise<ModelAnswer> {
    return Promise.resolve({ probabilities: Array.from(this.model.predictProba(features)) });
  }

  /** A partition's batch in one synchronous pass: one promise and one breaker call instead of one per row. */
  predictBatch(rows: readonly (readonly number[])[]): Promise<ModelAnswer[]> {
    const { model } = this;
    const probabilities = model.predictProbaBatch !== undefined ? model.predictProbaBatch(rows) : rows.map((row) => model.predictProba(row));
    return Promise.resolve(probabilities.map((p) => ({ probabilities: Array.from(p) })));
  }
}
