import { describe, expect, it } from 'vitest';
import { idleWaitFor, nextFetchWait } from '../../services/shared/adaptive-fetch.js';

const busy = { maxWaitMs: 10, minBytes: 32 * 1024 };

describe('nextFetchWait', () => {
  it('keeps the short wait and minimum size while fetches bring records', () => {
    expect(nextFetchWait({ busy, idleWaitMs: 1000 }, true)).toEqual(busy);
  });

  it('long-polls for the first record once a fetch came back empty', () => {
    expect(nextFetchWait({ busy, idleWaitMs: 1000 }, false)).toEqual({ maxWaitMs: 1000, minBytes: 1 });
  });

  it('never shortens a configured wait that is already longer than the idle one', () => {
    expect(nextFetchWait({ busy: { maxWaitMs: 5000, minBytes: 1 }, idleWaitMs: 1000 }, false)).toEqual({ maxWaitMs: 5000, minBytes: 1 });
  });

  it('does not adapt when the idle wait is 0', () => {
    expect(nextFetchWait({ busy, idleWaitMs: 0 }, false)).toEqual(busy);
  });
});

describe('idleWaitFor', () => {
  it("long-polls for the consumer's heartbeat interval unless a wait is configured", () => {
    expect(idleWaitFor({}, 1000)).toBe(1000);
    expect(idleWaitFor({ idleWaitMs: 250 }, 1000)).toBe(250);
    expect(idleWaitFor({ idleWaitMs: 0 }, 500)).toBe(0);
  });
});
