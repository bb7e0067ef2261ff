import { ConfigError } from '../../shared/errors.js';
import type { Batch } from './batch.js';
import { FusionError } from './errors.js';
import { argmax } from './numeric.js';
import type { FusionResult, StackingSpec, Weights } from './types.js';
import { checkedProbabilities } from './validate.js';

/**
 * Stacking: the base models' probability vectors, concatenated in the configured model order, are
 * the input of a meta-model (a multinomial logistic regression fitted on the base models' held-out
 * predictions) whose output is the fused distribution.
 *
 * A model missing from a request (deadline passed, breaker open) gets the mean of the present
 * models' probabilities in its block. The meta-model never saw such gaps in training, but the mean
 * is the present models' consensus: it keeps partial results possible instead of failing the request
 * or feeding the meta-model a zero block it would read as "this model ruled every class out".
 */

/** Names of the meta-model's inputs, `<modelId>:<class>` block by block, as the meta artifact records them. */
export function stackingFeatureNames(models: readonly string[], classes: readonly string[]): string[] {
  return models.flatMap((model) => classes.map((label) => `${model}:${label}`));
}

/**
 * The meta-model's input: block j holds model j's probabilities, or the mean of the present models'
 * probabilities when model j is missing (`undefined`). The mean is summed in block order, so the
 * same outputs give the same bits online and offline whatever order they arrived in.
 */
export function stackingInput(blocks: readonly (ArrayLike<number> | undefined)[], classCount: number): Float64Array {
  const input = new Float64Array(blocks.length * classCount);
  const mean = new Float64Array(classCount);
  let present = 0;
  blocks.forEach((p, j) => {
    if (p === undefined) return;
    if (p.length !== classCount) {
      throw new FusionError('INVALID_PROBABILITIES', `stacking block ${j} has ${p.length} probabilities, expected ${classCount}`);
    }
    present++;
    for (let c = 0; c < classCount; c++) {
      input[j * classCount + c] = p[c] as number;
      mean[c] = (mean[c] as number) + (p[c] as number);
    }
  });
  if (present === 0) throw new FusionError('NO_OUTPUTS', 'stacking needs at least one model output');
  if (present < blocks.length) {
    for (let c = 0; c < classCount; c++) mean[c] = (mean[c] as number) / present;
    blocks.forEach((p, j) => {
      if (p === undefined) input.set(mean, j * classCount);
    });
  }
  return input;
}

export interface StackingFusion {
  /** Weight 1 per configured model: lets the batch reject unknown and duplicate models. */
  weights: Weights;
  run(batch: Batch): FusionResult;
}

/** Validates a stacking spec (ConfigError) and returns its fusion step; `classes` are already checked. */
export function stackingFusion(spec: StackingSpec, classes: readonly string[]): StackingFusion {
  const models = checkedModels(spec.models);
  const { meta } = spec;
  const k = classes.length;
  if (typeof meta !== 'object' || meta === null || typeof meta.predictProba !== 'function') {
    throw new ConfigError('stacking needs a meta-model with predictProba');
  }
  if (meta.nClasses !== k) throw new ConfigError(`stacking meta-model gives ${meta.nClasses} classes, the config lists ${k}`);
  if (meta.nFeatures !== models.length * k) {
    throw new ConfigError(`stacking meta-model takes ${meta.nFeatures} inputs, ${models.length} models x ${k} classes give ${models.length * k}`);
  }
  const positions = new Map(models.map((model, j) => [model, j]));
  const blocks: (ArrayLike<number> | undefined)[] = models.map(() => undefined);
  return {
    weights: Object.fromEntries(models.map((model) => [model, 1])),
    run(batch: Batch): FusionResult {
      try {
        for (let i = 0; i < batch.size; i++) {
          blocks[positions.get(batch.modelId(i)) as number] = checkedProbabilities(batch.output(i), k);
        }
        const probabilities = Array.from(meta.predictProba(stackingInput(blocks, k)));
        const labelIndex = argmax(probabilities, k);
        batch.normaliseWeights();
        return { labelIndex, label: classes[labelIndex] as string, probabilities, weightsUsed: batch.weightsUsed() };
      } finally {
        // Drops the references to this request's outputs, as Batch.release does.
        blocks.fill(undefined);
      }
    },
  };
}

function checkedModels(models: unknown): readonly string[] {
  if (!Array.isArray(models) || models.length === 0) throw new ConfigError('stacking models must list at least one model id');
  const seen = new Set<string>();
  for (const model of models) {
    if (typeof model !== 'string' || model === '') {
      throw new ConfigError(`stacking model ids must be non-empty strings, got ${JSON.stringify(model)}`);
    }
    if (seen.has(model)) throw new ConfigError(`stacking model "${model}" is listed twice`);
    seen.add(model);
  }
  return Object.freeze([...seen]);
}
