import type { Kafka, Producer } from 'kafkajs';
import { describeError } from '../shared/errors.js';
import { deadlineRecord } from '../shared/control-records.js';
import { retryForever } from '../shared/kafka.js';
import type { Logger } from '../shared/log.js';
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
 *
 * When: at the exact deadline of the requests this instance joined (`wake`), and every
 * `intervalMs` as a backstop for requests joined by others (a rebalance, a dead instance).
 */
export class DeadlineSweeper {
  private readonly producer: Producer;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  /** A sweep was asked for while one ran: run again right after it. */
  private again = false;
  private wakeAt = Infinity;
  private wakeTimer: NodeJS.Timeout | undefined;
  private stopped = false;
  private partitions = 0;

  constructor(private readonly o: DeadlineSweeperOptions) {
    this.producer = o.kafka.producer({ idempotent: true, maxInFlightRequests: 1, retry: retryForever({ initialRetryTime: 20, maxRetryTime: 500 }) });
  }

  async start(): Promise<void> {
    await this.producer.connect();
    await this.refreshPartitions();
    this.timer = setInterval(() => this.trigger(), this.o.intervalMs);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    clearTimeout(this.wakeTimer);
    await this.running;
    await this.producer.disconnect();
  }

  /** Sweeps at `atMs` (a request's deadline), unless a sweep is due earlier already. */
  wake(atMs: number): void {
    if (this.stopped || atMs >= this.wakeAt) return;
    this.wakeAt = atMs;
    clearTimeout(this.wakeTimer);
    this.wakeTimer = setTimeout(
      () => {
        this.wakeAt = Infinity;
        this.trigger();
      },
      Math.max(0, atMs - Date.now()),
    );
  }

  private trigger(): void {
    if (this.stopped) return;
    if (this.running !== undefined) {
      this.again = true;
      return;
    }
    this.running = this.sweep()
      .then(() => undefined)
      .catch((error: unknown) => this.o.logger.warn('deadline sweep failed', { error: describeError(error) }))
      .finally(() => {
        this.running = undefined;
        if (this.again) {
          this.again = false;
          this.trigger();
        }
      });
  }

  /** One pass over every partition; returns how many requests were claimed. */
  async sweep(nowMs = Date.now()): Promise<number> {
    // Every partition claimed at once (pipelined on one connection), then one produce request.
    const partitions = Array.from({ length: this.partitions }, (_, p) => p);
    const claims = await Promise.all(partitions.map((p) => this.o.joinStore.claimDue(p, nowMs, this.o.leaseMs ?? 5000, this.o.claimLimit ?? 1000)));
    const messages = claims.flatMap(({ due }, partition) => due.map((requestId) => deadlineRecord(requestId, partition, this.o.controlSecret, nowMs)));
    if (messages.length > 0) await this.producer.send({ topic: this.o.predictionsTopic, messages, acks: -1 });
    // The next deadline of any partition, whoever joined it: sweep again exactly then.
    const next = Math.min(...claims.map((c) => c.nextAtMs));
    if (next < Infinity) this.wake(next);
    return messages.length;
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
