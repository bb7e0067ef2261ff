import type { FusedSeen } from './collector.js';
import { type Distribution, distribution } from './latency.js';

/**
 * How late requests that waited for their deadline became visible to a read_committed client, and
 * where that time went: the sweep (deadline -> deadline record sent), the record's way back to the
 * partition's owner and the join (record sent -> fused), and the transaction plus the client's
 * fetch (fused -> received). All in ms on this machine's clock.
 */
export interface DeadlineLateness {
  /** Results fused at their deadline (a model never answered). */
  count: number;
  total: Distribution;
  sweep: Distribution;
  toFused: Distribution;
  toClient: Distribution;
}

export function deadlineLateness(
  ids: readonly string[],
  fused: ReadonlyMap<string, FusedSeen>,
  deadlineMs: number,
  /** Request id -> when its first deadline record was sent (its Kafka timestamp). */
  records: ReadonlyMap<string, number>,
): DeadlineLateness {
  const total: number[] = [];
  const sweep: number[] = [];
  const toFused: number[] = [];
  const toClient: number[] = [];
  for (const id of ids) {
    const f = fused.get(id);
    const sentAt = records.get(id);
    if (f === undefined || sentAt === undefined) continue;
    const deadline = f.requestCreatedAtMs + deadlineMs;
    total.push(f.receivedAtMs - deadline);
    sweep.push(sentAt - deadline);
    toFused.push(f.fusedAtMs - sentAt);
    toClient.push(f.receivedAtMs - f.fusedAtMs);
  }
  return { count: total.length, total: distribution(total), sweep: distribution(sweep), toFused: distribution(toFused), toClient: distribution(toClient) };
}
