import { ConfigError } from '../shared/errors.js';
import { ENSEMBLE } from './event-figures.js';
import { checkWeightLearning, WEIGHT_LEARNING_DEFAULTS, type WeightLearningOptions } from '../core/learned-weights.js';
import { RollingWindow } from './window.js';

export interface EvaluatorSettings {
  /** Window of the label-based metrics (ES_EVAL_WINDOW: count:<labels> or time:<ms>). */
  window: RollingWindow;
  /**
   * Time window of the label-free figures (latency, completeness, partial, late): the metrics window
   * when that is by time, else ES_EVAL_EVENT_WINDOW_MS. A sketch cannot forget single values, so
   * these are always windowed by time.
   */
  eventWindow: RollingWindow;
  /** How long a request's answers wait for its label (ES_EVAL_STATE_TTL_MS). */
  stateTtlMs: number;
  /** ES_METRICS_INTERVAL_MS. */
  metricsIntervalMs: number;
  /** ES_METRICS_PORT; 0 picks a free port. */
  metricsPort: number;
  /** ES_WEIGHT_HALF_LIFE (labels), ES_WEIGHT_ETA, ES_WEIGHT_MIN, ES_WEIGHT_MAX. */
  learning: WeightLearningOptions;
}

export const EVALUATOR_DEFAULTS = {
  window: 'count:1000',
  eventWindowMs: 300_000,
  stateTtlMs: 6 * 3_600_000,
  metricsIntervalMs: 5000,
  metricsPort: 9464,
} as const;

/** Reads and checks the evaluator's settings for an ensemble of `models`; every problem is reported. */
export function readEvaluatorSettings(models: readonly string[], env: NodeJS.ProcessEnv = process.env): EvaluatorSettings {
  const problems: string[] = [];
  const attempt = <T>(read: () => T, fallback: T): T => {
    try {
      return read();
    } catch (error) {
      if (!(error instanceof ConfigError)) throw error;
      problems.push(error.message);
      return fallback;
    }
  };
  const int = (name: string, fallback: number, min: number): number => {
    const text = env[name];
    if (text === undefined) return fallback;
    const n = Number(text);
    if (!Number.isSafeInteger(n) || n < min) {
      problems.push(`${name}: "${text}" is not an integer >= ${min}`);
      return fallback;
    }
    return n;
  };
  const real = (name: string, fallback: number): number => {
    const text = env[name];
    if (text === undefined) return fallback;
    const n = Number(text);
    if (text.trim() === '' || !Number.isFinite(n)) {
      problems.push(`${name}: "${text}" is not a number`);
      return fallback;
    }
    return n;
  };

  const fallbackWindow = RollingWindow.parse(EVALUATOR_DEFAULTS.window);
  const window = attempt(() => RollingWindow.parse(env.ES_EVAL_WINDOW ?? EVALUATOR_DEFAULTS.window), fallbackWindow);
  const eventWindowMs = int('ES_EVAL_EVENT_WINDOW_MS', EVALUATOR_DEFAULTS.eventWindowMs, 1);
  const learning: WeightLearningOptions = {
    halfLifeLabels: real('ES_WEIGHT_HALF_LIFE', WEIGHT_LEARNING_DEFAULTS.halfLifeLabels),
    eta: real('ES_WEIGHT_ETA', WEIGHT_LEARNING_DEFAULTS.eta),
    minWeight: real('ES_WEIGHT_MIN', WEIGHT_LEARNING_DEFAULTS.minWeight),
    maxWeight: real('ES_WEIGHT_MAX', WEIGHT_LEARNING_DEFAULTS.maxWeight),
  };
  attempt(() => checkWeightLearning(learning, models.length), undefined);
  if (models.includes(ENSEMBLE)) problems.push(`a model may not be called "${ENSEMBLE}": that name stands for the fused output`);
  const settings: EvaluatorSettings = {
    window,
    eventWindow: window.kind === 'time' ? window : new RollingWindow('time', eventWindowMs),
    stateTtlMs: int('ES_EVAL_STATE_TTL_MS', EVALUATOR_DEFAULTS.stateTtlMs, 1000),
    metricsIntervalMs: int('ES_METRICS_INTERVAL_MS', EVALUATOR_DEFAULTS.metricsIntervalMs, 1),
    metricsPort: int('ES_METRICS_PORT', EVALUATOR_DEFAULTS.metricsPort, 0),
    learning,
  };
  if (settings.metricsPort > 65_535) problems.push(`ES_METRICS_PORT: ${settings.metricsPort} is not a TCP port`);
  if (problems.length > 0) throw new ConfigError(`invalid evaluator settings:\n  - ${problems.join('\n  - ')}`);
  return settings;
}
