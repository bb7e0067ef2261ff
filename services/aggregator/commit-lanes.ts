/**
 * The aggregator's commits, per input partition (group commit). A batch is queued once it is
 * joined, and its eachBatch returns at once, so kafkajs fetches on and the next batches are joined
 * in Redis while the partition's transaction commits; one partition's slow commit never holds the
 * fetches of the others. When the commit in flight settles, every batch queued meanwhile goes into
 * the next one (up to `maxCommitBytes` of records): the slower the commits, the fewer and larger
 * they are. At most one commit is in flight per partition, batches commit in offset order, and a
 * failed commit stops everything joined after it:
 *
 * - every batch takes the partition's epoch when it starts; a failed commit drops the queued
 *   batches and starts a recovery (reading the partition again from its committed offset), and
 *   once that has repositioned the consumer a new epoch: a batch of an older epoch is dropped (the
 *   join script's offset rule fuses its requests again, with the same bytes, when they are read
 *   again);
 * - after a failure, the partition's next batch commits before its eachBatch returns, so an error
 *   that is the messages' fault reaches the poison guard, which isolates the message;
 * - offsets below what this instance committed are never processed again (a batch fetched from an
 *   older committed offset, e.g. after a rebalance that kept the partition here);
 * - a partition whose queue holds more than `maxQueuedBytes` makes its next eachBatch wait, so a
 *   backlog is not joined far ahead of its commits.
 */
export interface CommitLaneOptions<T> {
  /** Commits `items` (one partition's, in offset order) together; resolves with the next offset. */
  commit(partition: number, items: readonly T[]): Promise<bigint>;
  /** After a failed commit of `items`: repositions the partition at its committed offset. */
  recover(partition: number, items: readonly T[], error: unknown): Promise<void>;
  /** The bytes of records an item's commit writes. */
  bytes(item: T): number;
  /** Most bytes of records in one commit; a larger item commits alone. */
  maxCommitBytes: number;
  /** Bytes queued behind a commit above which the next batch waits. */
  maxQueuedBytes: number;
}

interface LaneState<T> {
  epoch: number;
  /** The commit in flight (settles, never rejects); undefined when none is. */
  inFlight: Promise<void> | undefined;
  /** Joined batches waiting for the commit in flight, and their bytes. */
  queued: T[];
  queuedBytes: number;
  /** The recovery after a failed commit; resolves once the partition is repositioned. */
  recovery: Promise<void>;
  /** The last commit failed: commit the next batch before returning. */
  recovering: boolean;
  /** Offsets below this one were committed by this instance. */
  committedTo: bigint;
}

export class CommitLanes<T> {
  private readonly lanes = new Map<number, LaneState<T>>();

  constructor(private readonly o: CommitLaneOptions<T>) {}

  private lane(partition: number): LaneState<T> {
    let lane = this.lanes.get(partition);
    if (lane === undefined) {
      lane = { epoch: 0, inFlight: undefined, queued: [], queuedBytes: 0, recovery: Promise.resolve(), recovering: false, committedTo: -1n };
      this.lanes.set(partition, lane);
    }
    return lane;
  }

  /** The partition's epoch, taken by a batch when it starts. */
  epoch(partition: number): number {
    return this.lane(partition).epoch;
  }

  /** Index of the first message this instance has not committed yet (messages in offset order). */
  firstUncommitted(partition: number, messages: readonly { offset: string }[]): number {
    const committedTo = this.lane(partition).committedTo;
    let i = 0;
    while (i < messages.length && BigInt((messages[i] as { offset: string }).offset) < committedTo) i++;
    return i;
  }

  /** Whether the partition's last commit failed, so that its next batch commits before eachBatch returns. */
  recovering(partition: number): boolean {
    return this.lane(partition).recovering;
  }

  /**
   * Queues a joined batch behind the partition's commit in flight, or commits it at once if none
   * is. False if a failure since the batch started in `epoch` means it will be read again. Resolves
   * once the partition's queue has room for the next batch.
   */
  async enqueue(partition: number, epoch: number, item: T): Promise<boolean> {
    const lane = this.lane(partition);
    await lane.recovery;
    // Recovering: either the recovery is still repositioning the partition (the batch is from the
    // old position) or the batch took the epoch before the failure; either way it is read again.
    if (lane.epoch !== epoch || lane.recovering) return false;
    lane.queued.push(item);
    lane.queuedBytes += this.o.bytes(item);
    if (lane.inFlight === undefined) this.commitQueued(partition, lane);
    while (lane.queuedBytes > this.o.maxQueuedBytes && lane.inFlight !== undefined) await lane.inFlight;
    return true;
  }

  /**
   * Commits a batch before its eachBatch returns (after a failure, see `recovering`), once nothing
   * is in flight. False if the batch's epoch is over; a failure rejects, to the caller.
   */
  async commitNow(partition: number, epoch: number, item: T): Promise<boolean> {
    await this.settled(partition);
    const lane = this.lane(partition);
    if (lane.epoch !== epoch) return false;
    this.committed(lane, await this.o.commit(partition, [item]));
    return true;
  }

  /** Starts the next commit with the queued batches that fit in it. */
  private commitQueued(partition: number, lane: LaneState<T>): void {
    let bytes = 0;
    let count = 0;
    for (const item of lane.queued) {
      const b = this.o.bytes(item);
      if (count > 0 && bytes + b > this.o.maxCommitBytes) break;
      bytes += b;
      count++;
    }
    const items = lane.queued.splice(0, count);
    lane.queuedBytes -= bytes;
    lane.inFlight = this.o.commit(partition, items).then(
      (nextOffset) => {
        this.committed(lane, nextOffset);
        lane.inFlight = undefined;
        if (lane.queued.length > 0) this.commitQueued(partition, lane);
      },
      (error: unknown) => {
        lane.recovering = true;
        lane.queued = [];
        lane.queuedBytes = 0;
        lane.inFlight = undefined;
        // The new epoch starts once the consumer is repositioned: a batch fetched before that,
        // even one whose handler starts after the failure, is from the old position.
        lane.recovery = this.o.recover(partition, items, error).then(() => {
          lane.epoch++;
        });
      },
    );
  }

  private committed(lane: LaneState<T>, nextOffset: bigint): void {
    lane.recovering = false;
    if (nextOffset > lane.committedTo) lane.committedTo = nextOffset;
  }

  /** The partition's commits, queued and in flight, and the recovery one needed, settled. */
  async settled(partition: number): Promise<void> {
    const lane = this.lane(partition);
    while (lane.inFlight !== undefined) await lane.inFlight;
    await lane.recovery;
  }

  /** Every commit queued or in flight, settled (before the group rebalances or the consumer leaves). */
  async drain(): Promise<void> {
    await Promise.all(
      [...this.lanes.values()].map(async (lane) => {
        while (lane.inFlight !== undefined) await lane.inFlight;
      }),
    );
  }
}
