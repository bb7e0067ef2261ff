import { join } from 'node:path';
import type { RedisClient } from '../shared/redis.js';
import { InfrastructureError } from '../shared/errors.js';
import type { FusionStatus } from '../shared/records.js';
import type { RedisKeys } from '../shared/redis-keys.js';
import { defineScripts } from '../shared/redis-scripts.js';
import { repoRoot } from '../shared/repo-root.js';
import { ENSEMBLE } from './event-figures.js';
import type { Sample } from './rolling-metrics.js';
import { decodeLabel, type StoredLabel } from './stored-answers.js';
import type { RollingWindow } from './window.js';

/** One message of a batch, as the record script sees it. `bucket` is its event bucket, null outside the event window. */
export type EventEntry =
  | { kind: 'prediction'; requestId: string; modelId: string; answer: Buffer; bucket: number | null; sketchField: string }
  | {
      kind: 'fused';
      requestId: string;
      status: FusionStatus;
      answer: Buffer;
      bucket: number | null;
      sketchField: string;
      missing: readonly string[];
      /** Missing for DEADLINE or CIRCUIT_OPEN: an answer from them that shows up is late. */
      lateEligible: readonly string[];
    }
  | { kind: 'label'; requestId: string; label: Buffer };

/** A labelled request with answers not scored yet: subject -> stored answer. */
export interface Unscored {
  requestId: string;
  label: StoredLabel;
  answers: Map<string, Buffer>;
}

export interface ScoredSample {
  requestId: string;
  subject: string;
  /** Time windows: the sample's bucket, null when it is already outside the window. Count windows: ignored. */
  bucket: number | null;
  sample: Sample;
  /** The loss the learned weights follow; null for the ensemble. */
  loss: number | null;
}

/** What one snapshot is computed from, read atomically. */
export interface StoredState {
  totals: Map<string, number>;
  /** Learned-weight losses: `s:<model>` and `w:<model>`. */
  learning: Map<string, number>;
  /** The event window's buckets, merged. */
  events: Map<string, number>;
  /** Per subject, every window bucket still held: bucket number -> fields. */
  windows: Map<string, Map<number, Map<string, string>>>;
}

export interface EvaluatorStoreOptions {
  window: RollingWindow;
  eventWindow: RollingWindow;
  /** How long a request's answers and label are kept, ms. */
  requestTtlMs: number;
  /** Decay of earlier losses per label (learned weights). */
  decay: number;
}

type Nested = (Buffer | Nested)[];
type Flat = (string | number)[];

interface EvaluatorCommands {
  recordEventsBuffer(prefix: string, totals: string, ...args: (string | number | Buffer)[]): Promise<Nested>;
  scoreSamples(prefix: string, totals: string, learning: string, ...args: (string | number)[]): Promise<number>;
  readState(prefix: string, totals: string, learning: string, ...args: (string | number)[]): Promise<(Flat | (string | Flat)[])[]>;
}

/** Registers the evaluator scripts on a connection (see shared/redis-scripts.ts). */
export function defineEvaluatorScripts(redis: RedisClient): void {
  defineScripts(redis, join(repoRoot(), 'services', 'evaluator', 'lua'));
}

/**
 * The evaluator's state in Redis: typed wrappers around its Lua scripts, one script per atomic
 * operation. A batch costs one call, plus one more when labels met answers.
 */
export class EvaluatorStore {
  private readonly commands: EvaluatorCommands;

  constructor(
    private readonly redis: RedisClient,
    readonly keys: RedisKeys,
    readonly options: EvaluatorStoreOptions,
  ) {
    defineEvaluatorScripts(redis);
    this.commands = redis as unknown as EvaluatorCommands;
  }

  /** Records a batch (see record-events-2.lua); returns the labelled requests with answers to score. */
  async record(entries: readonly EventEntry[]): Promise<Unscored[]> {
    if (entries.length === 0) return [];
    const args: (string | number | Buffer)[] = [this.options.requestTtlMs, this.options.eventWindow.retentionMs(), ENSEMBLE, entries.length];
    for (const e of entries) {
      if (e.kind === 'prediction') args.push('p', e.requestId, e.modelId, e.answer, e.bucket ?? '', e.sketchField, '', '');
      else if (e.kind === 'fused') {
        args.push('f', e.requestId, e.status, e.answer, e.bucket ?? '', e.sketchField, e.missing.join(','), e.lateEligible.join(','));
      } else args.push('l', e.requestId, '', e.label, '', '', '', '');
    }
    let raw: Nested;
    try {
      raw = await this.commands.recordEventsBuffer(this.keys.evaluatorPrefix(), this.keys.evaluatorTotals(), ...args);
    } catch (cause) {
      throw new InfrastructureError('evaluator record script failed', cause);
    }
    return raw.map((row) => {
      const items = row as Buffer[];
      const answers = new Map<string, Buffer>();
      for (let i = 2; i + 1 < items.length; i += 2) answers.set(String(items[i]), items[i + 1] as Buffer);
      return { requestId: String(items[0]), label: decodeLabel(items[1] as Buffer), answers };
    });
  }

  /** Adds samples to the windows, totals and learned losses (see score-samples-3.lua); returns how many were new. */
  async score(samples: readonly ScoredSample[]): Promise<number> {
    if (samples.length === 0) return 0;
    const { window } = this.options;
    const args: (string | number)[] = [window.kind, window.bucketSize, window.buckets, window.retentionMs(), this.options.decay, samples.length];
    for (const s of samples) {
      const x = s.sample;
      const bucket = s.bucket === null ? '' : s.bucket;
      const loss = s.loss === null ? '' : String(s.loss);
      if (x.task === 'classification') {
        args.push(s.requestId, s.subject, bucket, `${x.trueClass}:${x.predictedClass}`, num(x.logLoss), num(x.brier), '', '', loss);
      } else {
        args.push(s.requestId, s.subject, bucket, '', '', '', String(x.absError), String(x.squaredError), loss);
      }
    }
    try {
      return await this.commands.scoreSamples(this.keys.evaluatorPrefix(), this.keys.evaluatorTotals(), this.keys.evaluatorLearning(), ...args);
    } catch (cause) {
      throw new InfrastructureError('evaluator score script failed', cause);
    }
  }

  /** Reads the state of `subjects` and the given event buckets (see read-state-3.lua). */
  async read(subjects: readonly string[], eventBuckets: readonly number[]): Promise<StoredState> {
    let raw: (Flat | (string | Flat)[])[];
    try {
      raw = await this.commands.readState(
        this.keys.evaluatorPrefix(),
        this.keys.evaluatorTotals(),
        this.keys.evaluatorLearning(),
        subjects.length,
        ...subjects,
        eventBuckets.length,
        ...eventBuckets,
      );
    } catch (cause) {
      throw new InfrastructureError('evaluator read script failed', cause);
    }
    const [totals, learning, events, ...held] = raw;
    const windows = new Map<string, Map<number, Map<string, string>>>();
    for (const row of held) {
      const buckets = new Map<number, Map<string, string>>();
      for (let i = 1; i + 1 < row.length; i += 2) buckets.set(Number(row[i]), pairs(row[i + 1] as Flat, String));
      windows.set(String(row[0]), buckets);
    }
    return {
      totals: pairs((totals ?? []) as Flat, Number),
      learning: pairs((learning ?? []) as Flat, Number),
      events: pairs((events ?? []) as Flat, Number),
      windows,
    };
  }

  /** Keeps the latest snapshot (Avro) for the readers in learned-weights.ts. */
  async saveSnapshot(bytes: Buffer): Promise<void> {
    await this.redis.set(this.keys.evaluatorSnapshot(), bytes);
  }
}

function num(value: number | null): string {
  return value === null ? '' : String(value);
}

function pairs<T>(flat: Flat, convert: (v: string | number) => T): Map<string, T> {
  const out = new Map<string, T>();
  for (let i = 0; i + 1 < flat.length; i += 2) out.set(String(flat[i]), convert(flat[i + 1] as string | number));
  return out;
}
