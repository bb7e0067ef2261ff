import { ConfigError } from '../../shared/errors.js';
import type { Weights } from './types.js';

/** Configured per-model weights, validated once at start-up. */
export class WeightTable {
  private readonly byModel: ReadonlyMap<string, number> | undefined;

  constructor(weights: Weights | undefined) {
    this.byModel = weights === undefined ? undefined : validate(weights);
  }

  /** The model's configured weight; 1 when no weights were configured, undefined for an unknown model. */
  weightOf(modelId: string): number | undefined {
    return this.byModel === undefined ? 1 : this.byModel.get(modelId);
  }
}

function validate(weights: Weights): Map<string, number> {
  if (typeof weights !== 'object' || weights === null || Array.isArray(weights)) {
    throw new ConfigError('fusion weights must be an object mapping model ids to numbers');
  }
  // A Map, not the record itself: model ids such as "constructor" must not hit Object.prototype.
  const byModel = new Map<string, number>();
  let total = 0;
  for (const [modelId, weight] of Object.entries(weights)) {
    if (typeof weight !== 'number' || !Number.isFinite(weight) || weight < 0) {
      throw new ConfigError(`fusion weight of model "${modelId}" must be a finite number >= 0, got ${String(weight)}`);
    }
    byModel.set(modelId, weight);
    total += weight;
  }
  if (byModel.size === 0) throw new ConfigError('fusion weights name no model');
  if (!(total > 0)) throw new ConfigError('fusion weights must not all be 0');
  // A finite total bounds every partial sum the strategies form (vote counts, weighted sums).
  if (!Number.isFinite(total)) throw new ConfigError('fusion weights sum beyond the double range');
  return byModel;
}
