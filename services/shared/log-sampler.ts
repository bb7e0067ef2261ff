/**
 * Lets through the first event of each key per interval and counts the rest, so a flood of one kind
 * (a producer writing garbage) costs one log line per interval, not one per message. The next line
 * let through says how many were held back. Pure apart from the clock passed in.
 */
export class LogSampler {
  private readonly last = new Map<string, { atMs: number; suppressed: number }>();

  constructor(
    private readonly intervalMs = 10_000,
    /** Most keys tracked; the table is cleared past it (keys are reason codes, a bounded set). */
    private readonly maxKeys = 1000,
  ) {}

  /** undefined: do not log; else log, with how many of this key were held back since the last line. */
  admit(key: string, nowMs: number): { suppressed: number } | undefined {
    const seen = this.last.get(key);
    if (seen !== undefined && nowMs - seen.atMs < this.intervalMs) {
      seen.suppressed++;
      return undefined;
    }
    if (this.last.size >= this.maxKeys) this.last.clear();
    this.last.set(key, { atMs: nowMs, suppressed: 0 });
    return { suppressed: seen?.suppressed ?? 0 };
  }
}
