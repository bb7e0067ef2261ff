import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { loadArtifact } from '../ml/artifact.js';
import type { Classifier } from '../ml/models/index.js';
import { ConfigError, describeError } from '../shared/errors.js';
import { stackingFeatureNames, strategyProblem } from './fusion/index.js';
import type { ConfiguredStrategy } from './fusion/types.js';

/**
 * The aggregator's fusion config: which models to expect, how to weigh and fuse them, how long to
 * wait. One JSON file, validated once at start-up; every problem is reported, not just the first.
 */
export interface ModelSpec {
  id: string;
  /** Fusion weight; defaults to 1. */
  weight: number;
}

/** The task and the strategy a config names: each task has its own strategies. */
export type TaskStrategy =
  | { task: 'classification'; strategy: ConfiguredStrategy<'classification'> }
  | { task: 'regression'; strategy: ConfiguredStrategy<'regression'> };

export type AggregatorConfig = TaskStrategy & EnsembleSettings;

export interface EnsembleSettings {
  /** Classification: class labels, in the order of every model's probabilities. */
  classes: string[];
  models: ModelSpec[];
  /** Wall-clock join deadline after the request was created, unless the request sets its own. */
  deadlineMs: number;
  /** Fewest models that must contribute for an answer; below it the result is INSUFFICIENT. */
  quorum: number;
  /** How long a request's join state is kept; within it a duplicate answer is told from a late one. */
  stateTtlMs: number;
  /** Predictions larger than this go to the dead-letter topic unread. */
  maxMessageBytes: number;
  /**
   * How long fused requests are remembered, in log time (Kafka timestamps: an outage does not count).
   * An answer for a request older than that is dead-lettered as EXPIRED instead of being joined.
   */
  fusedMemoryMs: number;
  /** When Redis lost a partition's state, how far back Kafka is read to rebuild it, ms. */
  restoreHorizonMs: number;
  /** The per-model circuit breakers that take unhealthy models out of the join. */
  breaker: BreakerOptions;
  /** Required when `strategy` is stacking, and only then; model weights do not apply to stacking. */
  stacking?: StackingConfig;
}

/**
 * The per-model circuit breakers of the join (the aggregator's join-breaker.ts): whom a request waits for.
 */
export interface BreakerOptions {
  /** Share of recent outcomes that may fail before the breaker opens, percent. @defaultValue 50 */
  errorThresholdPercentage: number;
  /** Outcomes in the window before the share counts. @defaultValue 10 */
  volumeThreshold: number;
  /** How long an open breaker waits before probing the model again, ms. @defaultValue 5000 */
  resetTimeout: number;
  /** Length of the rolling window of outcomes, ms. @defaultValue 3000 */
  rollingCountTimeout: number;
  /** How many new requests wait for a half-open model, per probe round. @defaultValue 3 */
  probeRequests: number;
  /**
   * After the aggregator starts, missed deadlines of a model not yet heard from are not held
   * against it for this long (consumer groups joining, first connections, cold code). @defaultValue 10000
   */
  warmupMs: number;
}

export const BREAKER_DEFAULTS: BreakerOptions = {
  errorThresholdPercentage: 50,
  volumeThreshold: 10,
  resetTimeout: 5000,
  rollingCountTimeout: 3000,
  probeRequests: 3,
  warmupMs: 10_000,
};

export interface StackingConfig {
  /**
   * The meta-model's artifact (selection writes a logistic regression), relative to the config file or absolute.
   * Its inputs are the models' probabilities in the order `models` lists them.
   */
  metaArtifact: string;
}

export const CONFIG_DEFAULTS = {
  deadlineMs: 2000,
  quorum: 1,
  stateTtlMs: 600_000,
  maxMessageBytes: 65_536,
  fusedMemoryMs: 3_600_000,
  restoreHorizonMs: 120_000,
} as const;

export function loadAggregatorConfig(path: string): AggregatorConfig {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, 'utf8'));
  } catch (cause) {
    throw new ConfigError(`cannot read aggregator config ${path}: ${(cause as Error).message}`, cause);
  }
  return validateAggregatorConfig(raw, path);
}

export function validateAggregatorConfig(raw: unknown, source = 'config'): AggregatorConfig {
  const problems: string[] = [];
  const obj = asObject(raw);
  if (obj !== raw) problems.push('must be a JSON object');

  const task = obj.task;
  if (task !== 'classification' && task !== 'regression') problems.push('task: must be "classification" or "regression"');
  else {
    const problem = strategyProblem(task, obj.strategy, { adaptive: true });
    if (problem !== undefined) problems.push(`strategy: ${problem}`);
  }
  const classes = task === 'classification' ? readClasses(obj.classes, problems) : [];
  const models = readModels(obj.models, problems);
  const numbers = readNumbers(obj, problems);
  if (models.length > 0 && numbers.quorum > models.length) problems.push(`quorum: ${numbers.quorum} is more than the ${models.length} models listed`);
  if (numbers.stateTtlMs <= numbers.deadlineMs) problems.push('stateTtlMs: must be longer than deadlineMs');
  if (numbers.restoreHorizonMs <= numbers.deadlineMs) problems.push('restoreHorizonMs: must be longer than deadlineMs');
  const breaker = readBreaker(obj.breaker, problems);
  const stacking = readStacking(obj, problems);

  const known = new Set(['task', 'classes', 'strategy', 'models', 'breaker', 'stacking', ...Object.keys(CONFIG_DEFAULTS)]);
  for (const key of Object.keys(obj)) if (!known.has(key)) problems.push(`${key}: unknown setting`);

  if (problems.length > 0) throw new ConfigError(`invalid aggregator config (${source}):\n  - ${problems.join('\n  - ')}`);
  return {
    ...({ task, strategy: obj.strategy } as TaskStrategy),
    classes,
    models,
    ...numbers,
    breaker,
    ...(stacking === undefined ? {} : { stacking }),
  };
}

function asObject(raw: unknown): Record<string, unknown> {
  return (typeof raw === 'object' && raw !== null && !Array.isArray(raw) ? raw : {}) as Record<string, unknown>;
}

function readClasses(raw: unknown, problems: string[]): string[] {
  if (!Array.isArray(raw) || raw.length < 2 || !raw.every((c) => typeof c === 'string' && c !== '')) {
    problems.push('classes: a classification config needs at least two non-empty class labels');
  } else if (new Set(raw).size !== raw.length) {
    problems.push('classes: labels must be unique');
  } else {
    return raw as string[];
  }
  return [];
}

function readModels(raw: unknown, problems: string[]): ModelSpec[] {
  const models: ModelSpec[] = [];
  if (!Array.isArray(raw) || raw.length === 0) {
    problems.push('models: list at least one model');
    return models;
  }
  raw.forEach((m: unknown, i: number) => {
    const spec = asObject(m);
    const id = spec.id;
    const weight = spec.weight ?? 1;
    if (typeof id !== 'string' || !/^[A-Za-z0-9_.-]+$/.test(id)) {
      problems.push(`models[${i}].id: letters, digits, _ . - only`);
      return;
    }
    if (models.some((x) => x.id === id)) problems.push(`models[${i}].id: "${id}" is listed twice`);
    if (typeof weight !== 'number' || !Number.isFinite(weight) || weight < 0) {
      problems.push(`models[${i}].weight: must be a finite number >= 0`);
      return;
    }
    models.push({ id, weight });
  });
  if (models.length > 0 && models.every((m) => m.weight === 0)) problems.push('models: at least one weight must be positive');
  return models;
}

function readNumbers(obj: Record<string, unknown>, problems: string[]): { -readonly [K in keyof typeof CONFIG_DEFAULTS]: number } {
  const num = (name: keyof typeof CONFIG_DEFAULTS, min: number): number => {
    const v = obj[name] ?? CONFIG_DEFAULTS[name];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min) {
      problems.push(`${name}: must be an integer >= ${min}`);
      return CONFIG_DEFAULTS[name];
    }
    return v;
  };
  return {
    deadlineMs: num('deadlineMs', 1),
    quorum: num('quorum', 1),
    stateTtlMs: num('stateTtlMs', 1000),
    maxMessageBytes: num('maxMessageBytes', 64),
    fusedMemoryMs: num('fusedMemoryMs', 60_000),
    restoreHorizonMs: num('restoreHorizonMs', 1000),
  };
}

function readBreaker(raw: unknown, problems: string[]): BreakerOptions {
  const breaker = { ...BREAKER_DEFAULTS };
  if (raw === undefined) return breaker;
  const b = asObject(raw);
  if (b !== raw) problems.push('breaker: must be an object');
  for (const [name, value] of Object.entries(b)) {
    const min = name === 'warmupMs' ? 0 : 1;
    if (!(name in BREAKER_DEFAULTS)) problems.push(`breaker.${name}: unknown setting (known: ${Object.keys(BREAKER_DEFAULTS).join(', ')})`);
    else if (typeof value !== 'number' || !Number.isInteger(value) || value < min) problems.push(`breaker.${name}: must be an integer >= ${min}`);
    else breaker[name as keyof BreakerOptions] = value;
  }
  if (breaker.errorThresholdPercentage > 100) problems.push('breaker.errorThresholdPercentage: must be at most 100');
  return breaker;
}

function readStacking(obj: Record<string, unknown>, problems: string[]): StackingConfig | undefined {
  if (obj.strategy === 'stacking' && obj.stacking === undefined) {
    problems.push('stacking: the stacking strategy needs { "metaArtifact": "<path>" }');
    return undefined;
  }
  if (obj.stacking === undefined) return undefined;
  const s = asObject(obj.stacking);
  for (const name of Object.keys(s)) if (name !== 'metaArtifact') problems.push(`stacking.${name}: unknown setting`);
  if (obj.strategy !== 'stacking') problems.push('stacking: applies only to the stacking strategy');
  else if (typeof s.metaArtifact !== 'string' || s.metaArtifact === '') problems.push('stacking.metaArtifact: must be a non-empty path');
  else return { metaArtifact: s.metaArtifact };
  return undefined;
}

/**
 * Loads the stacking meta-model of a validated config whose strategy is stacking, checking that it
 * was fitted for exactly these classes and these models in this order (its feature names say so).
 * `configPath` anchors a relative `stacking.metaArtifact`.
 */
export async function loadStackingMeta(config: AggregatorConfig, configPath: string): Promise<Classifier> {
  if (config.stacking === undefined) throw new ConfigError(`strategy ${config.strategy} has no stacking meta-model`);
  const path = resolve(dirname(configPath), config.stacking.metaArtifact);
  const { artifact, model } = await loadArtifact(path).catch((cause: unknown) => {
    throw new ConfigError(`stacking.metaArtifact: ${describeError(cause)}`, cause);
  });
  const mismatch = (actual: readonly string[], expected: readonly string[]): string | undefined => {
    const i = expected.findIndex((name, j) => actual[j] !== name);
    if (i >= 0) return `has ${JSON.stringify(actual[i] ?? null)} where the config needs ${JSON.stringify(expected[i])}`;
    return actual.length > expected.length ? `has ${actual.length - expected.length} entries too many` : undefined;
  };
  const classProblem = mismatch(artifact.classes, config.classes);
  if (classProblem !== undefined) throw new ConfigError(`stacking.metaArtifact ${path}: its class list ${classProblem}`);
  // `<model>:<class>` per input: the meta-model must have been fitted on these models in this order.
  const expected = stackingFeatureNames(
    config.models.map((m) => m.id),
    config.classes,
  );
  const inputProblem = mismatch(artifact.featureNames, expected);
  if (inputProblem !== undefined) throw new ConfigError(`stacking.metaArtifact ${path}: its input list ${inputProblem}`);
  return model;
}
