import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { RedisClient as Redis } from '../shared/redis.js';
import { InfrastructureError } from '../shared/errors.js';
import type { RedisKeys } from '../shared/redis-keys.js';
import { repoRoot } from '../shared/repo-root.js';

/** One message of a batch, as the join script sees it. */
export type JoinEntry =
  | { kind: 'prediction'; requestId: string; modelId: string; offset: string; deadlineAtMs: number; payload: Buffer }
  | { kind: 'deadline'; requestId: string; offset: string };

export type JoinOutcome =
  | { kind: 'pending' }
  | { kind: 'fuse'; why: 'all' | 'deadline'; predictions: Map<string, Buffer> }
  | { kind: 'duplicate' }
  | { kind: 'late' }
  | { kind: 'ignored' };

export interface JoinStoreOptions {
  /** How long a request's state lives, ms; must outlive the longest deadline. */
  stateTtlMs: number;
}

type RawOutcome = [number, ...Buffer[]];

interface JoinCommands {
  joinBatchBuffer(prefix: string, deadlines: string, ...args: (string | number | Buffer)[]): Promise<RawOutcome[]>;
  finishRequests(prefix: string, ...requestIds: string[]): Promise<number>;
  claimDeadlines(deadlines: string, now: number, leaseMs: number, limit: number): Promise<string[]>;
}

const SCRIPTS = [
  { name: 'joinBatch', file: 'join-batch-2.lua', keys: 2 },
  { name: 'finishRequests', file: 'finish-requests-1.lua', keys: 1 },
  { name: 'claimDeadlines', file: 'claim-deadlines-1.lua', keys: 1 },
] as const;

/** Registers the join scripts on a connection (ioredis sends EVALSHA, loading a script when missing). */
export function defineJoinScripts(redis: Redis): void {
  const dir = join(repoRoot(), 'services', 'aggregator', 'lua');
  for (const s of SCRIPTS) {
    if ((redis as unknown as Record<string, unknown>)[s.name] !== undefined) continue;
    redis.defineCommand(s.name, { numberOfKeys: s.keys, lua: readFileSync(join(dir, s.file), 'utf8') });
  }
}

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
    defineJoinScripts(redis);
    this.commands = redis as unknown as JoinCommands;
  }

  /** Joins a batch of one partition's messages; returns one outcome per entry, in order. */
  async joinBatch(partition: number, entries: readonly JoinEntry[], waitFor: readonly string[], nowMs: number): Promise<JoinOutcome[]> {
    if (entries.length === 0) return [];
    const args: (string | number | Buffer)[] = [nowMs, this.options.stateTtlMs, waitFor.join(','), entries.length];
    for (const e of entries) {
      if (e.kind === 'prediction') args.push('p', e.requestId, e.modelId, e.offset, e.deadlineAtMs, e.payload);
      else args.push('d', e.requestId, '', e.offset, 0, '');
    }
    let raw: RawOutcome[];
    try {
      raw = await this.commands.joinBatchBuffer(this.keys.partitionPrefix(partition), this.keys.deadlines(partition), ...args);
    } catch (cause) {
      throw new InfrastructureError(`join script failed on partition ${partition}`, cause);
    }
    return raw.map(decodeOutcome);
  }

  /** Frees the predictions of requests whose fused result is committed. */
  async finish(partition: number, requestIds: readonly string[]): Promise<void> {
    if (requestIds.length === 0) return;
    await this.commands.finishRequests(this.keys.partitionPrefix(partition), ...requestIds);
  }

  /** Claims up to `limit` requests of a partition whose deadline passed (see claim-deadlines-1.lua). */
  claimDue(partition: number, nowMs: number, leaseMs: number, limit: number): Promise<string[]> {
    return this.commands.claimDeadlines(this.keys.deadlines(partition), nowMs, leaseMs, limit);
  }
}

function decodeOutcome(raw: RawOutcome): JoinOutcome {
  switch (Number(raw[0])) {
    case 0:
      return { kind: 'pending' };
    case 1: {
      const predictions = new Map<string, Buffer>();
      for (let i = 2; i + 1 < raw.length; i += 2) predictions.set(String(raw[i]), raw[i + 1] as Buffer);
      return { kind: 'fuse', why: String(raw[1]) === 'deadline' ? 'deadline' : 'all', predictions };
    }
    case 2:
      return { kind: 'duplicate' };
    case 3:
      return { kind: 'late' };
    default:
      return { kind: 'ignored' };
  }
}
