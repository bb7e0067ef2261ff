/**
 * How long the broker may hold a consumer's next fetch, chosen from what the last one returned.
 * Busy (the last fetch brought records): the configured short wait and minimum size, so a loaded
 * pipeline batches its fetches. Idle (it brought none): a long poll that the broker answers as soon
 * as one record is there, so an idle consumer sends a fetch a second instead of a hundred, and the
 * first record after a quiet spell is not held for the short wait either.
 */
export interface FetchWait {
  maxWaitMs: number;
  minBytes: number;
}

export interface AdaptiveFetchSettings {
  /** The wait and size while records flow. */
  busy: FetchWait;
  /** The long poll's wait once a fetch came back empty; 0 or less turns adapting off. */
  idleWaitMs: number;
}

/**
 * An idle consumer's long poll unless configured: its heartbeat interval. kafkajs heartbeats between
 * fetches once the interval has passed, so every idle poll is followed by a heartbeat: a rebalance
 * is noticed within about one interval, as when busy, and a stopping consumer's last poll holds its
 * LeaveGroup back at most that long. An idle consumer then sends two requests per interval.
 */
export function idleWaitFor(fetch: { idleWaitMs?: number }, heartbeatIntervalMs: number): number {
  return fetch.idleWaitMs ?? heartbeatIntervalMs;
}

/** The wait for the next fetch, given whether the previous one brought records. */
export function nextFetchWait(settings: AdaptiveFetchSettings, lastBroughtRecords: boolean): FetchWait {
  if (lastBroughtRecords || settings.idleWaitMs <= 0) return settings.busy;
  return { maxWaitMs: Math.max(settings.idleWaitMs, settings.busy.maxWaitMs), minBytes: 1 };
}
