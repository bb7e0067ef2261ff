import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { nextPendingCheck, stopIdleRequestQueueTimers } from '../../services/shared/kafkajs-request-queue-fix.js';

describe('kafkajs request queue timer', () => {
  it('is not armed when nothing waits, throttled or not', () => {
    expect(nextPendingCheck(0, -1, 1_000)).toBeUndefined();
    expect(nextPendingCheck(0, 5_000, 1_000)).toBeUndefined();
  });

  it('waits for the throttle to end, or checks soon when only the in-flight limit holds requests back', () => {
    expect(nextPendingCheck(2, 1_250, 1_000)).toBe(250);
    expect(nextPendingCheck(1, -1, 1_000)).toBe(10);
    expect(nextPendingCheck(1, 1_000, 1_000)).toBe(10);
  });

  it('arms no timer on an idle queue once installed, and one for a pending request', () => {
    stopIdleRequestQueueTimers();
    const RequestQueue = createRequire(import.meta.url)('kafkajs/src/network/requestQueue/index.js') as {
      prototype: { scheduleCheckPendingRequests(this: object): void };
    };
    const idle = { pending: [], throttledUntil: -1, throttleCheckTimeoutId: null, checkPendingRequests: () => undefined };
    RequestQueue.prototype.scheduleCheckPendingRequests.call(idle);
    expect(idle.throttleCheckTimeoutId).toBeNull();
    let checked = 0;
    const waiting = { pending: [{}], throttledUntil: -1, throttleCheckTimeoutId: null as unknown, checkPendingRequests: () => void checked++ };
    RequestQueue.prototype.scheduleCheckPendingRequests.call(waiting);
    expect(waiting.throttleCheckTimeoutId).not.toBeNull();
    clearTimeout(waiting.throttleCheckTimeoutId as ReturnType<typeof setTimeout>);
    expect(checked).toBe(0);
  });
});
