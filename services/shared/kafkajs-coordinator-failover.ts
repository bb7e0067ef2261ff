import { createRequire } from 'node:module';

/**
 * kafkajs 2.2.4 looks a consumer group's coordinator up once, when it joins, and sends every
 * heartbeat and offset commit to that broker. Only a NOT_COORDINATOR answer makes it look again;
 * a coordinator that died answers nothing, so every heartbeat fails with a connection error
 * (ECONNREFUSED). The heartbeat runs inside the fetch loop, so the whole consumer stops: its fetch
 * loop fails on each retry until the retries run out (about 13 s with createKafka's retry
 * settings), then the consumer crashes, leaves the group and joins again from scratch. Seen as
 * 13 to 40 s without predictions from a worker whose group's coordinator was the broker killed.
 *
 * Here a heartbeat or an offset commit that meets a lost connection (a commit also: a broker that
 * is no longer the coordinator) looks the coordinator up again (the group's offsets partition has a new leader once the controller fenced the dead
 * broker) and tries once more there, as the Java client does: the new coordinator knows the
 * member, so the consumer keeps its partitions and fetches on. kafkajs has no option for this,
 * so two of its classes are wrapped, once per process.
 */

interface Broker {
  nodeId: number;
  isConnected(): boolean;
}
interface Cluster {
  findGroupCoordinator(lookup: { groupId: string }): Promise<Broker>;
  findBroker(query: { nodeId: number }): Promise<Broker>;
}
interface ConsumerGroupInternals {
  groupId: string;
  cluster: Cluster;
  coordinator: Broker | null;
  offsetManager?: { coordinator: Broker } | null;
  heartbeat(options: { interval: number }): Promise<void>;
}
interface OffsetManagerInternals {
  groupId: string;
  cluster: Cluster;
  coordinator: Broker;
  getCoordinator(): Promise<Broker>;
  commitOffsets(offsets?: unknown): Promise<void>;
}

/** Errors that say the broker is gone (or unknown), not that it answered. */
const LOST_BROKER_ERRORS = new Set(['KafkaJSConnectionError', 'KafkaJSConnectionClosedError', 'KafkaJSBrokerNotFound', 'KafkaJSRequestTimeoutError']);

export function isLostBroker(error: unknown): boolean {
  return error instanceof Error && LOST_BROKER_ERRORS.has(error.name);
}

let installed = false;

export function followMovedCoordinators(): void {
  if (installed) return;
  installed = true;
  const require = createRequire(import.meta.url);
  const ConsumerGroup = require('kafkajs/src/consumer/consumerGroup.js') as { prototype: ConsumerGroupInternals };
  const OffsetManager = require('kafkajs/src/consumer/offsetManager/index.js') as { prototype: OffsetManagerInternals };

  const heartbeat = ConsumerGroup.prototype.heartbeat;
  ConsumerGroup.prototype.heartbeat = async function heartbeatAtCurrentCoordinator(this: ConsumerGroupInternals, options) {
    try {
      return await heartbeat.call(this, options);
    } catch (error) {
      if (!isLostBroker(error) || this.coordinator === null || this.coordinator.isConnected()) throw error;
      // A failed lookup throws its own error: the fetch loop retries, and the next heartbeat looks again.
      const coordinator = await this.cluster.findGroupCoordinator({ groupId: this.groupId });
      this.coordinator = coordinator;
      if (this.offsetManager) this.offsetManager.coordinator = coordinator;
      return heartbeat.call(this, options);
    }
  };

  OffsetManager.prototype.getCoordinator = async function currentCoordinator(this: OffsetManagerInternals) {
    if (this.coordinator.isConnected()) return this.coordinator;
    try {
      this.coordinator = await this.cluster.findBroker(this.coordinator);
    } catch (error) {
      if (!isLostBroker(error)) throw error;
      this.coordinator = await this.cluster.findGroupCoordinator({ groupId: this.groupId });
    }
    return this.coordinator;
  };

  // A commit refused by a broker that is no longer the coordinator (its offsets partition moved,
  // back to a restarted broker say) looks the coordinator up again for the next commit; kafkajs
  // only refreshes metadata and keeps sending to the old one until the consumer rejoins.
  const commitOffsets = OffsetManager.prototype.commitOffsets;
  OffsetManager.prototype.commitOffsets = async function commitAtCurrentCoordinator(this: OffsetManagerInternals, offsets) {
    try {
      return await commitOffsets.call(this, offsets);
    } catch (error) {
      if ((error as { type?: string }).type === 'NOT_COORDINATOR_FOR_GROUP' || isLostBroker(error)) {
        this.coordinator = await this.cluster.findGroupCoordinator({ groupId: this.groupId }).catch(() => this.coordinator);
      }
      throw error;
    }
  };
}
