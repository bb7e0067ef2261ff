import { join } from 'node:path';
import type { RedisClient as Redis } from '../shared/redis.js';
import { InfrastructureError } from '../shared/errors.js';
import { joinLuaSchema, type RedisKeys } from '../shared/redis-keys.js';
import { defineScripts } from '../shared/redis-scripts.js';
import { repoRoot } from '../shared/repo-root.js';
import type { AwaitPlan } from './model-health.js';

/** One message of a batch, as the join script sees it. */
export type JoinEntry =
  | {
      kind: 'prediction';
      requestId: string;
      modelId: string;
      offset: string;
      requestCreatedAtMs: number;
      deadlineAtMs: number;
      /** The prediction's status is OK (it counts towards quorum). */
      ok: boolean;
      payload: Buffer;
    }
  | { kind: 'deadline'; requestId: string; offset: string };

export type JoinOutcome =
  | { kind: 'pending' }
  | {
      kind: 'fuse';
      why: 'all' | 'deadline';
      /** Models the request waited for when it closed. */
      awaited: Set<string>;
      /** Half-open models it was a probe for. */
      probes: Set<string>;
      predictions: Map<string, Buffer>;
      /** When the join closed the request (the same when it is fused again after a failed batch). */
      fusedAtMs: number;
    }
  | { kind: 'duplicate' }
  | { kind: 'late' }
  | { kind: 'ignored' }
  | { kind: 'expired' };

export interface JoinBatchResult {
  outcomes: JoinOutcome[];
  /** How many new requests were opened as probes for the plan's half-open models. */
  probesOpened: number;
}

/** The partition's join state is gone (Redis restarted empty, was flushed, failed over): rebuild it first. */
export class StateLostError extends InfrastructureError {
  override readonly name = 'StateLostError';
  constructor(readonly partition: number) {
    super(`join state of partition ${partition} is missing in Redis`);
  }
}

export interface JoinStoreOptions {
  /** How long a request's state lives, ms; must outlive the longest deadline. */
  stateTtlMs: number;
  /** How long fused requests are remembered, in log time, ms. */
  fusedMemoryMs: number;
  /** The quorum: fewest OK answers before a request may close ahead of its deadline. */
  quorum: number;
}

/** The join's options from a validated aggregator config. */
export function joinStoreOptions(config: { stateTtlMs: number; fusedMemoryMs: number; quorum: number }): JoinStoreOptions {
  return { stateTtlMs: config.stateTtlMs, fusedMemoryMs: config.fusedMemoryMs, quorum: config.quorum };
}

/** One open request to rebuild, with the predictions read back from Kafka. */
export interface RestoredRequest {
  requestId: string;
  requestCreatedAtMs: number;
  deadlineAtMs: number;
  predictions: { modelId: string; ok: boolean; payload: Buffer }[];
}

type RawOutcome = [number, ...Buffer[]];
type Arg = string | number | Buffer;

interface JoinCommands {
  joinBatchBuffer(...args: Arg[]): Promise<(RawOutcome | number)[]>;
  finishRequests(...args: Arg[]): Promise<number>;
  claimDeadlines(...args: Arg[]): Promise<string[]>;
  restorePartition(...args: Arg[]): Promise<number>;
}

const LUA_DIR = join(repoRoot(), 'services', 'aggregator', 'lua');

/**
 * The request join in Redis: typed wrappers around the Lua scripts, one script per atomic
 * operation, one call (one round trip) per Kafka batch.
 */
export class JoinStore {
  private readonly commands: JoinCommands;

  constructor(
    redis: Redis,
    readonly keys: RedisKeys,
    readonly options: JoinStoreOptions,
  ) {
    defineScripts(redis, LUA_DIR, { schema: joinLuaSchema() });
    this.commands = redis as unknown as JoinCommands;
  }

  private partitionKeys(partition: number): string[] {
    const k = this.keys;
    return [k.partitionPrefix(partition), k.deadlines(partition), k.epoch(partition), k.fusedIndex(partition)];
  }

  /**
   * Joins a batch of one partition's messages; one outcome per entry, in order. `logTimeMs` is the
   * Kafka timestamp of the batch's last message. Throws StateLostError when the partition's state
   * must be restored first (nothing was changed then).
   */
  async joinBatch(partition: number, entries: readonly JoinEntry[], plan: AwaitPlan, nowMs: number, logTimeMs = nowMs): Promise<JoinBatchResult> {
    // Called even with no entries: the epoch check then still tells a lost state early.
    const o = this.options;
    const args: Arg[] = [
      ...this.partitionKeys(partition),
      nowMs,
      o.stateTtlMs,
      plan.waitFor.join(','),
      plan.probe.join(','),
      plan.probeBudget,
      o.quorum,
      logTimeMs,
      o.fusedMemoryMs,
      entries.length,
    ];
    for (const e of entries) {
      if (e.kind === 'prediction') args.push('p', e.requestId, e.modelId, e.offset, e.requestCreatedAtMs, e.deadlineAtMs, e.ok ? '1' : '0', e.payload);
      else args.push('d', e.requestId, '', e.offset, 0, 0, '0', '');
    }
    let raw: (RawOutcome | number)[];
    try {
      raw = await this.commands.joinBatchBuffer(...args);
    } catch (cause) {
      throw new InfrastructureError(`join script failed on partition ${partition}`, cause);
    }
    if (Number(raw[0]) === -1) throw new StateLostError(partition);
    const probesOpened = Number(raw.pop());
    return { outcomes: (raw as RawOutcome[]).map(decodeOutcome), probesOpened };
  }

  /** Frees the predictions of requests whose fused result is committed. */
  async finish(partition: number, requestIds: readonly string[]): Promise<void> {
    if (requestIds.length === 0) return;
    await this.commands.finishRequests(this.keys.partitionPrefix(partition), ...requestIds);
  }

  /**
   * Claims up to `limit` requests of a partition whose deadline passed (see claim-deadlines-1.lua);
   * also says when the partition's next deadline (or lease) falls due.
   */
  async claimDue(partition: number, nowMs: number, leaseMs: number, limit: number): Promise<{ due: string[]; nextAtMs: number }> {
    const reply = await this.commands.claimDeadlines(this.keys.deadlines(partition), nowMs, leaseMs, limit);
    const next = reply.pop();
    return { due: reply, nextAtMs: next === undefined || next === '' ? Infinity : Number(next) };
  }

  /**
   * Writes rebuilt state of one partition (see restore-partition-4.lua); `last` creates the epoch
   * with `floorMs`, after which the join accepts the partition again.
   */
  async restore(
    partition: number,
    chunk: { fused: { requestId: string; requestCreatedAtMs: number }[]; open: RestoredRequest[] },
    last: boolean,
    floorMs: number,
    logTimeMs: number,
  ): Promise<void> {
    const args: Arg[] = [...this.partitionKeys(partition), this.options.stateTtlMs, last ? '1' : '0', floorMs, logTimeMs, chunk.fused.length];
    for (const f of chunk.fused) args.push(f.requestId, f.requestCreatedAtMs);
    args.push(chunk.open.length);
    for (const r of chunk.open) {
      args.push(r.requestId, r.requestCreatedAtMs, r.deadlineAtMs, r.predictions.length);
      for (const p of r.predictions) args.push(p.modelId, p.ok ? '1' : '0', p.payload);
    }
    await this.commands.restorePartition(...args);
  }
}

const csvSet = (b: Buffer | undefined): Set<string> =>
  new Set(
    String(b ?? '')
      .split(',')
      .filter((m) => m !== ''),
  );

function decodeOutcome(raw: RawOutcome): JoinOutcome {
  switch (Number(raw[0])) {
    case 0:
      return { kind: 'pending' };
    case 1: {
      const predictions = new Map<string, Buffer>();
      for (let i = 5; i + 1 < raw.length; i += 2) predictions.set(String(raw[i]), raw[i + 1] as Buffer);
      return {
        kind: 'fuse',
        why: String(raw[1]) === 'deadline' ? 'deadline' : 'all',
        awaited: csvSet(raw[2]),
        probes: csvSet(raw[3]),
        fusedAtMs: Number(String(raw[4])),
        predictions,
      };
    }
    case 2:
      return { kind: 'duplicate' };
    case 3:
      return { kind: 'late' };
    case 5:
      return { kind: 'expired' };
    default:
      return { kind: 'ignored' };
  }
}
