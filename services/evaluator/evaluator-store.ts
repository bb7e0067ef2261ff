import { join } from 'node:path';
import type { RedisClient } from '../shared/redis.js';
import { InfrastructureError } from '../shared/errors.js';
import type { FusionStatus } from '../shared/records.js';
import { EVAL_SUBJECT_FIELD, evaluatorLuaSchema, type RedisKeys } from '../shared/redis-keys.js';
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
  scoreSamples(prefix: string, state: string, ...args: (string | number)[]): Promise<number>;
  readShard(prefix: string, totals: string, ...args: (string | number)[]): Promise<[Flat, Flat]>;
  readSubject(prefix: string, state: string): Promise<(Flat | string)[]>;
}

/** Registers the evaluator scripts on a connection (see shared/redis-scripts.ts). */
export function defineEvaluatorScripts(redis: RedisClient): void {
  defineScripts(redis, join(repoRoot(), 'services', 'evaluator', 'lua'), { schema: evaluatorLuaSchema() });
}

/**
 * The evaluator's state in Redis: typed wrappers around its Lua scripts, one script per atomic
 * operation. A batch costs one call per request shard it touches, plus one per subject scored when
 * labels met answers; the calls of a step go out side by side (on a Redis Cluster, to their nodes).
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

  /**
   * Records a batch (see record-events-2.lua), one script call per request shard it touches, side by
   * side; returns the labelled requests with answers to score, in the batch's order.
   */
  async record(entries: readonly EventEntry[]): Promise<Unscored[]> {
    if (entries.length === 0) return [];
    const byShard = groupBy(entries, (e) => this.keys.evaluatorShard(e.requestId));
    const rows = await Promise.all([...byShard].map(([shard, group]) => this.recordShard(shard, group)));
    // In the batch's order of first appearance, across shards: a count window numbers samples in it.
    const first = new Map<string, number>();
    for (const [i, e] of entries.entries()) if (!first.has(e.requestId)) first.set(e.requestId, i);
    const position = (row: Nested) => first.get(String(row[0])) ?? 0;
    return rows
      .flat()
      .sort((a, b) => position(a as Nested) - position(b as Nested))
      .map((row) => {
        const items = row as Buffer[];
        const answers = new Map<string, Buffer>();
        for (let i = 2; i + 1 < items.length; i += 2) answers.set(String(items[i]), items[i + 1] as Buffer);
        return { requestId: String(items[0]), label: decodeLabel(items[1] as Buffer), answers };
      });
  }

  private async recordShard(shard: number, entries: readonly EventEntry[]): Promise<Nested> {
    const args: (string | number | Buffer)[] = [this.options.requestTtlMs, this.options.eventWindow.retentionMs(), ENSEMBLE, entries.length];
    for (const e of entries) {
      if (e.kind === 'prediction') args.push('p', e.requestId, e.modelId, e.answer, e.bucket ?? '', e.sketchField, '', '');
      else if (e.kind === 'fused') {
        args.push('f', e.requestId, e.status, e.answer, e.bucket ?? '', e.sketchField, e.missing.join(','), e.lateEligible.join(','));
      } else args.push('l', e.requestId, '', e.label, '', '', '', '');
    }
    try {
      return await this.commands.recordEventsBuffer(this.keys.evaluatorShardPrefix(shard), this.keys.evaluatorTotals(shard), ...args);
    } catch (cause) {
      throw new InfrastructureError('evaluator record script failed', cause);
    }
  }

  /** Adds samples to the windows, counts and learned losses (see score-samples-2.lua), one call per subject; returns how many were new. */
  async score(samples: readonly ScoredSample[]): Promise<number> {
    if (samples.length === 0) return 0;
    const bySubject = groupBy(samples, (s) => s.subject);
    const added = await Promise.all([...bySubject].map(([subject, group]) => this.scoreSubject(subject, group)));
    return added.reduce((a, b) => a + b, 0);
  }

  private async scoreSubject(subject: string, samples: readonly ScoredSample[]): Promise<number> {
    const { window, requestTtlMs, decay } = this.options;
    const args: (string | number)[] = [window.kind, window.bucketSize, window.buckets, window.retentionMs(), decay, requestTtlMs, samples.length];
    for (const s of samples) {
      const x = s.sample;
      const bucket = s.bucket === null ? '' : s.bucket;
      const loss = s.loss === null ? '' : String(s.loss);
      if (x.task === 'classification') {
        args.push(s.requestId, bucket, `${x.trueClass}:${x.predictedClass}`, num(x.logLoss), num(x.brier), '', '', loss);
      } else {
        args.push(s.requestId, bucket, '', '', '', String(x.absError), String(x.squaredError), loss);
      }
    }
    try {
      return await this.commands.scoreSamples(this.keys.evaluatorSubjectPrefix(subject), this.keys.evaluatorSubjectState(subject), ...args);
    } catch (cause) {
      throw new InfrastructureError('evaluator score script failed', cause);
    }
  }

  /**
   * Reads the state of `subjects` and the given event buckets: every request shard (read-shard-2.lua)
   * and every subject (read-subject-2.lua), side by side, each consistent in itself, merged here.
   */
  async read(subjects: readonly string[], eventBuckets: readonly number[]): Promise<StoredState> {
    const keys = this.keys;
    let shards: [Flat, Flat][];
    let held: (Flat | string)[][];
    try {
      [shards, held] = await Promise.all([
        Promise.all(
          keys
            .evaluatorShards()
            .map((n) => this.commands.readShard(keys.evaluatorShardPrefix(n), keys.evaluatorTotals(n), eventBuckets.length, ...eventBuckets)),
        ),
        Promise.all(subjects.map((s) => this.commands.readSubject(keys.evaluatorSubjectPrefix(s), keys.evaluatorSubjectState(s)))),
      ]);
    } catch (cause) {
      throw new InfrastructureError('evaluator read script failed', cause);
    }
    const totals = new Map<string, number>();
    const events = new Map<string, number>();
    for (const [shardTotals, shardEvents] of shards) {
      addInto(totals, pairs(shardTotals, Number));
      addInto(events, pairs(shardEvents, Number));
    }
    const learning = new Map<string, number>();
    const windows = new Map<string, Map<number, Map<string, string>>>();
    subjects.forEach((subject, i) => {
      const [state, ...rows] = held[i] ?? [];
      const fields = pairs((state ?? []) as Flat, Number);
      const { labelled, lossSum, weightSum } = EVAL_SUBJECT_FIELD;
      if (fields.has(labelled)) totals.set(`lab:${subject}`, fields.get(labelled) as number);
      if (fields.has(lossSum)) learning.set(`s:${subject}`, fields.get(lossSum) as number);
      if (fields.has(weightSum)) learning.set(`w:${subject}`, fields.get(weightSum) as number);
      const buckets = new Map<number, Map<string, string>>();
      for (let j = 0; j + 1 < rows.length; j += 2) buckets.set(Number(rows[j]), pairs(rows[j + 1] as Flat, String));
      windows.set(subject, buckets);
    });
    return { totals, learning, events, windows };
  }

  /** Keeps the latest snapshot (Avro) for the readers in learned-weights.ts. */
  async saveSnapshot(bytes: Buffer): Promise<void> {
    await this.redis.set(this.keys.evaluatorSnapshot(), bytes);
  }
}

function groupBy<T, K>(items: readonly T[], keyOf: (item: T) => K): Map<K, T[]> {
  const groups = new Map<K, T[]>();
  for (const item of items) {
    const key = keyOf(item);
    const group = groups.get(key);
    if (group === undefined) groups.set(key, [item]);
    else group.push(item);
  }
  return groups;
}

function addInto(sums: Map<string, number>, values: Map<string, number>): void {
  for (const [field, value] of values) sums.set(field, (sums.get(field) ?? 0) + value);
}

function num(value: number | null): string {
  return value === null ? '' : String(value);
}

function pairs<T>(flat: Flat, convert: (v: string | number) => T): Map<string, T> {
  const out = new Map<string, T>();
  for (let i = 0; i + 1 < flat.length; i += 2) out.set(String(flat[i]), convert(flat[i + 1] as string | number));
  return out;
}
