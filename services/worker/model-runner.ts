/**
 * What a model worker runs: something that turns one feature vector into class probabilities
 * (classification) or a value (regression). Built-in models, remote HTTP models and others all
 * implement this; the worker adds batching, breakers, timing and Kafka around it.
 */
export interface ModelRunner {
  readonly modelId: string;
  readonly modelVersion: string;
  /** How many features a request must carry; undefined when the model does not say. */
  readonly featureCount: number | undefined;
  /** How many probabilities a classifier's answer holds; undefined when unknown or for regression. */
  readonly classCount?: number | undefined;
  /** `requestId` is for runners that can pass it on (a remote model's logs); the answer must not depend on it. */
  predict(features: readonly number[], requestId?: string): Promise<ModelAnswer>;
  /**
   * One call for a whole batch (a partition's share of a fetch), answers in the rows' order. Runners
   * whose runtime is faster per batch than per row implement it; the worker then calls it once per batch.
   */
  predictBatch?(rows: readonly (readonly number[])[]): Promise<ModelAnswer[]>;
  close?(): Promise<void>;
}

export type ModelAnswer = { probabilities: number[] } | { value: number };
