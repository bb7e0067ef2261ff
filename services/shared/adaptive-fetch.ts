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

/** The wait for the next fetch, given whether the previous one brought records. */
export function nextFetchWait(settings: AdaptiveFetchSettings, lastBroughtRecords: boolean): FetchWait {
  if (lastBroughtRecords || settings.idleWaitMs <= 0) return settings.busy;
  return { maxWaitMs: Math.max(settings.idleWaitMs, settings.busy.maxWaitMs), minBytes: 1 };
}
