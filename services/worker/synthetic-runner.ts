import type { ModelAnswer, ModelRunner } from './model-runner.js';

/**
 * A stand-in model for measuring the pipeline rather than inference: a fixed-size probability
 * vector derived deterministically from the features in O(features + classes), so replays and
 * redeliveries give identical answers and different requests give different ones.
 */
export class SyntheticRunner implements ModelRunner {
  readonly modelVersion = 'synthetic-1';
  readonly featureCount = undefined;
  private readonly salt: number;

  constructor(
    readonly modelId: string,
    readonly classCount: number,
  ) {
    this.salt = hashString(modelId);
  }

  predict(features: readonly number[]): Promise<ModelAnswer> {
    let h = this.salt;
    for (const f of features) h = Math.imul(h ^ Math.round(f * 1000), 0x01000193) >>> 0;
    // An xorshift stream seeded by the hash: positive weights, normalised to sum to 1.
    const probabilities = new Array<number>(this.classCount);
    let total = 0;
    for (let i = 0; i < this.classCount; i++) {
      h ^= h << 13;
      h ^= h >>> 17;
      h ^= h << 5;
      h >>>= 0;
      const w = 1 + (h & 0xffff);
      probabilities[i] = w;
      total += w;
    }
    for (let i = 0; i < this.classCount; i++) probabilities[i] = (probabilities[i] as number) / total;
    return Promise.resolve({ probabilities });
  }
}

/** FNV-1a of a string, so each model id gives its own answers. */
function hashString(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193) >>> 0;
  return h === 0 ? 1 : h;
}
