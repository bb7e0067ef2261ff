import type { Redis } from 'ioredis';
import { JOIN_KEY } from '../services/shared/redis-keys.js';

/**
 * What Redis did between two readings of INFO. commandstats count every command run, those that
 * scripts run inside Redis included; `total_reads_processed` counts socket reads, i.e. round trips
 * however many pipelined commands each carried. The bench's own INFO calls are taken out.
 */
export interface RedisSnapshot {
  readsProcessed: number;
  usedMemory: number;
  /** calls per command name, lower case */
  commands: Record<string, { calls: number; usec: number }>;
}

export interface RedisDelta {
  /** Script calls (EVALSHA, EVAL). */
  scriptCalls: number;
  /** Socket reads: round trips. */
  roundTrips: number;
  /** Every command run, including those inside scripts. */
  executedCommands: number;
  /** Time Redis spent running scripts (their inner commands included), ms. */
  scriptMs: number;
  byCommand: Record<string, { calls: number; usecPerCall: number }>;
}

export async function redisSnapshot(redis: Redis): Promise<RedisSnapshot> {
  const text = (await redis.call('INFO', 'stats', 'commandstats', 'memory')) as string;
  const fields = new Map<string, string>();
  for (const line of text.split('\r\n')) {
    const colon = line.indexOf(':');
    if (colon > 0) fields.set(line.slice(0, colon), line.slice(colon + 1));
  }
  const commands: RedisSnapshot['commands'] = {};
  for (const [key, value] of fields) {
    if (!key.startsWith('cmdstat_')) continue;
    const calls = /calls=(\d+)/.exec(value);
    const usec = /usec=(\d+)/.exec(value);
    commands[key.slice('cmdstat_'.length)] = { calls: Number(calls?.[1] ?? 0), usec: Number(usec?.[1] ?? 0) };
  }
  return {
    readsProcessed: Number(fields.get('total_reads_processed') ?? 0),
    usedMemory: Number(fields.get('used_memory') ?? 0),
    commands,
  };
}

/** `after - before`, without the INFO calls that took the readings (one read each). */
export function redisDelta(before: RedisSnapshot, after: RedisSnapshot): RedisDelta {
  const infoCalls = (after.commands.info?.calls ?? 0) - (before.commands.info?.calls ?? 0);
  const byCommand: RedisDelta['byCommand'] = {};
  let executed = 0;
  let scriptCalls = 0;
  let usec = 0;
  for (const [name, a] of Object.entries(after.commands)) {
    if (name === 'info') continue;
    const b = before.commands[name] ?? { calls: 0, usec: 0 };
    const calls = a.calls - b.calls;
    if (calls <= 0) continue;
    byCommand[name] = { calls, usecPerCall: (a.usec - b.usec) / calls };
    executed += calls;
    if (name === 'evalsha' || name === 'eval') {
      scriptCalls += calls;
      usec += a.usec - b.usec;
    }
  }
  return {
    scriptCalls,
    roundTrips: after.readsProcessed - before.readsProcessed - infoCalls,
    executedCommands: executed,
    scriptMs: usec / 1000,
    byCommand,
  };
}

/**
 * Keys of one namespace left in Redis: per-request join state and prediction hashes (they expire
 * with the state TTL), deadline entries, and the few keys each partition keeps for good (its epoch,
 * and the fused buckets with their index, dropped by log time as requests move on).
 */
export interface KeysLeft {
  states: number;
  predictionHashes: number;
  deadlineEntries: number;
  partitionKeys: number;
}

export async function keysLeft(redis: Redis, namespace: string): Promise<KeysLeft> {
  const left: KeysLeft = { states: 0, predictionHashes: 0, deadlineEntries: 0, partitionKeys: 0 };
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${namespace}:*`, 'COUNT', 1000);
    cursor = next;
    for (const key of keys) {
      const local = key.slice(key.indexOf('}:') + 2);
      if (!local.startsWith(JOIN_KEY.request)) {
        if (local === JOIN_KEY.deadlines) left.deadlineEntries += await redis.zcard(key);
        else left.partitionKeys++;
      } else if (local.endsWith(JOIN_KEY.predictions)) left.predictionHashes++;
      else left.states++;
    }
  } while (cursor !== '0');
  return left;
}
