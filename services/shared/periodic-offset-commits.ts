/** A partition's next offset to consume, as kafkajs's commitOffsets takes it. */
export interface PartitionOffset {
  topic: string;
  partition: number;
  offset: string;
}

/**
 * Commits a consumer's offsets at most every `intervalMs`, instead of after every batch: an offset
 * commit is a Kafka request and a write to the offsets log, which the bench measured at a third of
 * a worker's requests and 44 % of an at-least-once aggregator's. Only offsets whose output is
 * acknowledged get here, so a crash makes the next owner process again what came after the last
 * commit (the aggregator drops those duplicates or writes the same bytes again), never lose
 * anything. A failed commit keeps its offsets for the next one. kafkajs commits nothing once its
 * consumer stops, so a service flushes before it leaves its group, and before every rebalance.
 */
export class PeriodicOffsetCommits {
  private pending = new Map<string, PartitionOffset>();
  private lastCommitAt = Date.now();
  private chain: Promise<void> = Promise.resolve();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly commit: (offsets: PartitionOffset[]) => Promise<void>,
    private readonly intervalMs: number,
    private readonly onError: (error: unknown) => void,
  ) {}

  /** Commits what is pending every interval, so offsets reach Kafka when traffic stops too. */
  start(): void {
    this.timer = setInterval(() => void this.flush(), this.intervalMs);
    this.timer.unref();
  }

  /** Records offsets whose messages are done; commits them once the interval has passed. */
  async done(offsets: readonly PartitionOffset[]): Promise<void> {
    for (const o of offsets) this.keep(o);
    if (Date.now() - this.lastCommitAt >= this.intervalMs) await this.flush();
  }

  /** After a rebalance: forgets offsets of partitions this member no longer owns. */
  retain(assigned: ReadonlyMap<string, readonly number[]>): void {
    for (const [key, o] of this.pending) if (!(assigned.get(o.topic) ?? []).includes(o.partition)) this.pending.delete(key);
  }

  /** Commits everything pending now; never rejects (a failure is reported and retried later). */
  flush(): Promise<void> {
    const run = this.chain.then(async () => {
      if (this.pending.size === 0) return;
      const offsets = [...this.pending.values()];
      this.pending = new Map();
      this.lastCommitAt = Date.now();
      try {
        await this.commit(offsets);
      } catch (error) {
        for (const o of offsets) this.keep(o);
        this.onError(error);
      }
    });
    this.chain = run;
    return run;
  }

  /** Stops the timer and commits what is pending. */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.flush();
  }

  /** Keeps the highest offset per partition (a failed commit's may meet newer ones). */
  private keep(o: PartitionOffset): void {
    const key = `${o.topic}:${o.partition}`;
    const current = this.pending.get(key);
    if (current === undefined || BigInt(o.offset) > BigInt(current.offset)) this.pending.set(key, o);
  }
}
