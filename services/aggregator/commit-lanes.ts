/**
 * The aggregator's commits, per input partition. A partition's batch n+1 is joined in Redis while
 * batch n's transaction commits, so the Redis and Kafka round trips overlap and the consumer
 * fetches on; batch n+1's own commit starts only once batch n's has settled. At most one commit
 * is in flight per partition, so a partition's offsets are committed in order and a failed commit
 * stops everything joined after it:
 *
 * - every batch takes the partition's epoch when it starts; a failed commit starts a recovery
 *   (reading the partition again from its committed offset), and once that has repositioned the
 *   consumer a new epoch: a batch of an older epoch is dropped (the join script's offset rule fuses
 *   its requests again, with the same bytes, when they are read again);
 * - after a failure, the partition's next batch commits before its eachBatch returns, so an error
 *   that is the messages' fault reaches the poison guard, which isolates the message;
 * - offsets below what this instance committed are never processed again (a batch fetched from an
 *   older committed offset, e.g. after a rebalance that kept the partition here).
 */
export interface LaneState {
  epoch: number;
  /** The commit in flight or the last one, settled (never rejects). */
  commit: Promise<void>;
  /** The recovery after a failed commit; resolves once the partition is repositioned. */
  recovery: Promise<void>;
  /** The last commit failed: commit the next batch before returning. */
  recovering: boolean;
  /** Offsets below this one were committed by this instance. */
  committedTo: bigint;
}

export class CommitLanes {
  private readonly lanes = new Map<number, LaneState>();

  private lane(partition: number): LaneState {
    let lane = this.lanes.get(partition);
    if (lane === undefined) {
      lane = { epoch: 0, commit: Promise.resolve(), recovery: Promise.resolve(), recovering: false, committedTo: -1n };
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

  /**
   * Waits until the partition's commit in flight (and a recovery it needed) settled. True if a
   * batch that started in `epoch` may commit now; false if a failure since then means the batch
   * will be read again.
   */
  async mayCommit(partition: number, epoch: number): Promise<boolean> {
    await this.settled(partition);
    return this.lane(partition).epoch === epoch;
  }

  /** Whether the partition's last commit failed, so that its next one runs before eachBatch returns. */
  recovering(partition: number): boolean {
    return this.lane(partition).recovering;
  }

  /** A commit that succeeded: offsets below `nextOffset` are done. */
  committed(partition: number, nextOffset: bigint): void {
    const lane = this.lane(partition);
    lane.recovering = false;
    if (nextOffset > lane.committedTo) lane.committedTo = nextOffset;
  }

  /**
   * Starts a commit that settles after eachBatch returned. `commit` resolves with the next offset
   * once committed; if it fails, the partition starts a new epoch and `recover` repositions it.
   */
  start(partition: number, commit: () => Promise<bigint>, recover: (error: unknown) => Promise<void>): void {
    const lane = this.lane(partition);
    lane.commit = commit().then(
      (nextOffset) => this.committed(partition, nextOffset),
      (error: unknown) => {
        lane.recovering = true;
        // The new epoch starts once the consumer is repositioned: a batch fetched before that,
        // even one whose handler starts after the failure, is from the old position.
        lane.recovery = recover(error).then(() => {
          lane.epoch++;
        });
      },
    );
  }

  /** The partition's commit in flight and the recovery it needed, settled. */
  async settled(partition: number): Promise<void> {
    const lane = this.lane(partition);
    await lane.commit;
    await lane.recovery;
  }

  /** Every commit in flight, settled (before the group rebalances or the consumer leaves). */
  async drain(): Promise<void> {
    await Promise.all([...this.lanes.values()].map((lane) => lane.commit));
  }
}
