import type { Kafka, Producer } from 'kafkajs';
import { describeError } from '../shared/errors.js';
import type { Logger } from '../shared/log.js';
import { deadlineRecord } from '../shared/control-records.js';
import type { JoinStore } from './join-store.js';

export interface DeadlineSweeperOptions {
  kafka: Kafka;
  joinStore: JoinStore;
  predictionsTopic: string;
  /** Signs the deadline records (control-records.ts). */
  controlSecret: Buffer;
  intervalMs: number;
  logger: Logger;
  /** How long a claim holds before another instance may claim the same request. @defaultValue 5000 */
  leaseMs?: number;
  /** Most requests claimed per partition per sweep. @defaultValue 1000 */
  claimLimit?: number;
}

/**
 * Expires requests whose wall-clock deadline passed. Any aggregator instance sweeps every partition:
 * it claims due requests in Redis (atomically, with a lease) and appends a deadline record to each
 * request's predictions partition. The record is then fused by whichever instance owns that
 * partition, inside its Kafka transaction, so an expiry is exactly-once like any completion, and
 * requests left behind by a dead instance still expire.
 */
export class DeadlineSweeper {
  private readonly producer: Producer;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private partitions = 0;

  constructor(private readonly o: DeadlineSweeperOptions) {
    this.producer = o.kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
  }

  async start(): Promise<void> {
    await this.producer.connect();
    await this.refreshPartitions();
    this.timer = setInterval(() => {
      if (this.running !== undefined) return;
      this.running = this.sweep()
        .then(() => undefined)
        .catch((error: unknown) => this.o.logger.warn('deadline sweep failed', { error: describeError(error) }))
        .finally(() => {
          this.running = undefined;
        });
    }, this.o.intervalMs);
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.running;
    await this.producer.disconnect();
  }

  /** One pass over every partition; returns how many requests were claimed. */
  async sweep(nowMs = Date.now()): Promise<number> {
    let claimed = 0;
    for (let partition = 0; partition < this.partitions; partition++) {
      const due = await this.o.joinStore.claimDue(partition, nowMs, this.o.leaseMs ?? 5000, this.o.claimLimit ?? 1000);
      if (due.length === 0) continue;
      claimed += due.length;
      await this.producer.send({
        topic: this.o.predictionsTopic,
        messages: due.map((requestId) => deadlineRecord(requestId, partition, this.o.controlSecret)),
      });
    }
    return claimed;
  }

  private async refreshPartitions(): Promise<void> {
    const admin = this.o.kafka.admin();
    await admin.connect();
    try {
      const meta = await admin.fetchTopicMetadata({ topics: [this.o.predictionsTopic] });
      this.partitions = meta.topics[0]?.partitions.length ?? 0;
    } finally {
      await admin.disconnect();
    }
  }
}
