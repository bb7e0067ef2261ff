import type { RedisClient as Redis } from '../shared/redis.js';
import { LearnedWeights } from '../core/learned-weights.js';
import { ConfigError } from '../shared/errors.js';
import type { Logger } from '../shared/log.js';
import type { RedisKeys } from '../shared/redis-keys.js';
import { AdaptiveFuser } from './adaptive-fuser.js';
import { type AggregatorConfig, loadStackingMeta } from '../core/ensemble-config.js';
import { createFuser, type Fuser, isAdaptiveStrategy } from '../core/fusion/index.js';

/** A fuser and what keeps it current (adaptive strategies refresh their weights in the background). */
export interface RunningFuser {
  fuser: Fuser;
  start(): void;
  stop(): void;
}

/**
 * Builds the fuser a validated config asks for: a fixed-weight strategy, stacking with its
 * meta-model artifact, or an adaptive strategy reading the evaluator's learned weights from Redis.
 */
export async function buildFuser(config: AggregatorConfig, configPath: string, deps: { redis: Redis; keys: RedisKeys; logger: Logger }): Promise<RunningFuser> {
  const models = config.models.map((m) => m.id);
  if (isAdaptiveStrategy(config.strategy)) {
    const fuser = new AdaptiveFuser({
      strategy: config.strategy,
      task: config.task,
      classes: config.classes,
      models,
      source: new LearnedWeights(deps.redis, deps.keys, models),
      logger: deps.logger,
    });
    return { fuser, start: () => fuser.start(), stop: () => fuser.stop() };
  }
  if (config.strategy === 'stacking') {
    const meta = await loadStackingMeta(config, configPath);
    return fixed(createFuser({ task: 'classification', strategy: 'stacking', classes: config.classes, models, meta }));
  }
  return fixed(staticFuser(config));
}

/** The fuser of a fixed-weight strategy (everything but stacking and the adaptive ones). */
export function staticFuser(config: AggregatorConfig): Fuser {
  if (config.strategy === 'stacking' || isAdaptiveStrategy(config.strategy)) {
    throw new ConfigError(`strategy ${config.strategy} needs buildFuser (a meta-model or learned weights)`);
  }
  const weights = Object.fromEntries(config.models.map((m) => [m.id, m.weight]));
  return config.task === 'classification'
    ? createFuser({ task: 'classification', strategy: config.strategy, classes: config.classes, weights })
    : createFuser({ task: 'regression', strategy: config.strategy, weights });
}

function fixed(fuser: Fuser): RunningFuser {
  return { fuser, start: () => undefined, stop: () => undefined };
}
