import { ConfigError } from '../../shared/errors.js';
import { Batch } from './batch.js';
import { fuseClassification } from './classification.js';
import { fuseRegression } from './regression.js';
import { stackingFusion } from './stacking.js';
import { STRATEGIES, isTask, strategyProblem } from './types.js';
import type { FusionResult, Fuser, FuserSpec, ModelOutput } from './types.js';
import { WeightTable } from './weights.js';

export { FusionError } from './errors.js';
export type { FusionErrorCode } from './errors.js';
export { stackingFeatureNames, stackingInput } from './stacking.js';
export { ADAPTIVE_STRATEGIES, STRATEGIES, isAdaptiveStrategy, isStrategy, isTask, strategyProblem } from './types.js';
export type {
  AdaptiveStrategy,
  ClassificationSpec,
  ConfiguredStrategy,
  ClassificationStrategy,
  FusionResult,
  Fuser,
  FuserSpec,
  ModelOutput,
  RegressionSpec,
  RegressionStrategy,
  StackingSpec,
  Strategy,
  Task,
  Weights,
} from './types.js';
export { PROBABILITY_SUM_TOLERANCE } from './validate.js';

/**
 * Builds the fuser of one ensemble. The spec is validated here, once (ConfigError); each `fuse` call
 * validates that request's outputs (FusionError).
 */
export function createFuser(spec: FuserSpec): Fuser {
  if (typeof spec !== 'object' || spec === null) throw new ConfigError('fusion spec must be an object');
  if (!isTask(spec.task)) {
    throw new ConfigError(`fusion task must be one of ${Object.keys(STRATEGIES).join(', ')}, got ${String(spec.task)}`);
  }
  const problem = strategyProblem(spec.task, spec.strategy, { adaptive: false });
  if (problem !== undefined) throw new ConfigError(`fusion strategy ${problem}`);
  if (spec.task === 'classification' && spec.strategy === 'stacking') {
    const stacking = stackingFusion(spec, checkedClasses(spec.classes));
    return fuser('classification', 'stacking', new WeightTable(stacking.weights), stacking.run);
  }
  const table = new WeightTable(spec.weights);
  if (spec.task === 'classification') {
    const { strategy } = spec;
    const classes = checkedClasses(spec.classes);
    return fuser('classification', strategy, table, (batch) => fuseClassification(strategy, batch, classes));
  }
  if ((spec as { classes?: unknown }).classes !== undefined) {
    throw new ConfigError('fusion classes apply to classification only');
  }
  const { strategy } = spec;
  return fuser('regression', strategy, table, (batch) => fuseRegression(strategy, batch));
}

function fuser(task: Fuser['task'], strategy: string, table: WeightTable, run: (batch: Batch) => FusionResult): Fuser {
  const batch = new Batch();
  return Object.freeze({
    task,
    strategy,
    fuse(outputs: readonly ModelOutput[]): FusionResult {
      try {
        batch.load(outputs, table);
        return run(batch);
      } finally {
        batch.release();
      }
    },
  });
}

function checkedClasses(classes: unknown): readonly string[] {
  if (!Array.isArray(classes) || classes.length < 2) {
    throw new ConfigError('fusion classes must list at least two class labels');
  }
  const seen = new Set<string>();
  for (const label of classes) {
    if (typeof label !== 'string' || label === '') {
      throw new ConfigError(`fusion class labels must be non-empty strings, got ${JSON.stringify(label)}`);
    }
    if (seen.has(label)) throw new ConfigError(`fusion class "${label}" is listed twice`);
    seen.add(label);
  }
  // A private copy: later edits to the configuration must not change the class order.
  return Object.freeze([...seen]);
}
