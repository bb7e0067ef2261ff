import { createRequire } from 'node:module';

/**
 * kafkajs 2.2.4 checks a connection's queue of pending requests on a timer that re-arms itself
 * after every response: with nothing pending and no throttling, the delay it computes is negative,
 * so Node runs it after 1 ms, and every connection of every client spins a 1 ms timer for as long
 * as it is open (kafkajs issue #1556; the fix, PR #1667, was never released). A CPU profile of an
 * idle worker showed the process busy for 4.6 % of a core, nearly all of it in that timer.
 *
 * Here the timer is armed only when a request is waiting: until a throttle ends (the broker asked
 * the client to slow down), or as a backstop while the in-flight limit holds requests back (each
 * response checks the queue anyway). kafkajs is no longer maintained, so its request queue class
 * is wrapped, once per process.
 */

interface RequestQueueInternals {
  pending: unknown[];
  throttledUntil: number;
  throttleCheckTimeoutId: ReturnType<typeof setTimeout> | null;
  checkPendingRequests(): void;
  scheduleCheckPendingRequests(): void;
}

/** kafkajs's own backstop interval for requests held back by the in-flight limit. */
const CHECK_PENDING_REQUESTS_INTERVAL_MS = 10;

/** When the queue should be checked again, ms from now; undefined: only when a request or response comes. */
export function nextPendingCheck(pending: number, throttledUntil: number, now: number): number | undefined {
  if (pending === 0) return undefined;
  const throttledFor = throttledUntil - now;
  return throttledFor > 0 ? throttledFor : CHECK_PENDING_REQUESTS_INTERVAL_MS;
}

let installed = false;

export function stopIdleRequestQueueTimers(): void {
  if (installed) return;
  installed = true;
  const RequestQueue = createRequire(import.meta.url)('kafkajs/src/network/requestQueue/index.js') as { prototype: RequestQueueInternals };
  RequestQueue.prototype.scheduleCheckPendingRequests = function scheduleWhenPending(this: RequestQueueInternals) {
    if (this.throttleCheckTimeoutId) return;
    const delay = nextPendingCheck(this.pending.length, this.throttledUntil, Date.now());
    if (delay === undefined) return;
    this.throttleCheckTimeoutId = setTimeout(() => {
      this.throttleCheckTimeoutId = null;
      this.checkPendingRequests();
    }, delay);
  };
}
