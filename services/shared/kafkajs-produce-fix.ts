import { createRequire } from 'node:module';

/**
 * kafkajs 2.2.4 can acknowledge a produce it never sent. Its send loop remembers which *brokers*
 * answered; on a retry after a leader moved (a broker died), a partition whose new leader is a broker
 * that had already answered for other partitions is skipped, and `send` resolves without it. Seen on
 * a 3-broker cluster with one broker SIGKILLed: 17 feature events acknowledged and never written;
 * the same loop writes the aggregator's transactional results, so a fused result could be committed
 * away. kafkajs is no longer maintained, so its send loop is replaced here by one that remembers the
 * answered *partitions*, and retries every partition without an answer on its current leader.
 *
 * kafkajs captures the send loop when it is first loaded, so this module must be evaluated before
 * anything loads kafkajs (services/shared/kafka.ts imports it first); it refuses to run late.
 */

interface Broker {
  nodeId: number;
  produce(request: Record<string, unknown>): Promise<unknown>;
}
interface Cluster {
  refreshMetadataIfNecessary(): Promise<void>;
  refreshMetadata(): Promise<void>;
  isConnected(): boolean;
  connect(): Promise<void>;
  addMultipleTargetTopics(topics: string[]): Promise<void>;
  findTopicPartitionMetadata(topic: string): unknown[];
  findLeaderForPartitions(topic: string, partitions: string[]): Record<string, number[]>;
  findBroker(query: { nodeId: string }): Promise<Broker>;
  removeBroker(address: { host: string; port: number }): void;
}
interface EosManager {
  isTransactional(): boolean;
  getTransactionalId(): string;
  getProducerId(): number;
  getProducerEpoch(): number;
  addPartitionsToTransaction(topicData: unknown): Promise<void>;
  getSequence(topic: string, partition: number): number;
  updateSequence(topic: string, partition: number, increment: number): void;
  acquireBrokerLock(broker: Broker): Promise<void>;
  releaseBrokerLock(broker: Broker): Promise<void>;
}
type Retrier = <T>(fn: (bail: (e: unknown) => void, retryCount: number, retryTime: number) => Promise<T>) => Promise<T>;
interface Logger {
  error(message: string, extra?: object): void;
  debug(message: string, extra?: object): void;
}
interface TopicMessages {
  topic: string;
  messages: unknown[];
}
interface Answer {
  topicName: string;
  partition: number;
}
interface KafkaError extends Error {
  retriable?: boolean;
  host?: string;
  port?: number;
  type?: string;
}

const require = createRequire(import.meta.url);
const sendMessagesPath = require.resolve('kafkajs/src/producer/sendMessages.js');
const messageProducerPath = require.resolve('kafkajs/src/producer/messageProducer.js');

if (require.cache[messageProducerPath] !== undefined && (require.cache[sendMessagesPath]?.exports as { fixed?: boolean } | undefined)?.fixed !== true) {
  throw new Error('kafkajs was loaded before services/shared/kafkajs-produce-fix.ts: import services/shared/kafka.js (or the fix) before kafkajs');
}

const { KafkaJSMetadataNotLoaded } = require('kafkajs/src/errors.js') as { KafkaJSMetadataNotLoaded: new (message: string) => Error };
const { staleMetadata } = require('kafkajs/src/protocol/error.js') as { staleMetadata: (e: unknown) => boolean };
const groupMessagesPerPartition = require('kafkajs/src/producer/groupMessagesPerPartition.js') as (o: object) => Record<string, unknown[]>;
const createTopicData = require('kafkajs/src/producer/createTopicData.js') as (
  o: object[],
) => { topic: string; partitions: { partition: number; messages: unknown[]; firstSequence?: number }[] }[];
const responseSerializer = require('kafkajs/src/producer/responseSerializer.js') as (response: unknown) => Answer[];

interface SendDependencies {
  logger: Logger;
  cluster: Cluster;
  partitioner: unknown;
  eosManager: EosManager;
  retrier: Retrier;
}
interface SendRequest {
  acks: number;
  timeout: number;
  compression: unknown;
  topicMessages: TopicMessages[];
}
/** What one broker leads of one topic's open partitions. */
interface BrokerTopic {
  topic: string;
  partitions: number[];
  messagesPerPartition: Record<string, unknown[]>;
}
type TopicData = ReturnType<typeof createTopicData>;

const answerKey = (topic: string, partition: number | string) => `${topic}\u0000${partition}`;

function fixedSendMessages(dependencies: SendDependencies) {
  const { cluster, retrier } = dependencies;
  return async (request: SendRequest) => {
    const answers = new Map<string, Answer>();
    return retrier(async (bail, retryCount, retryTime) => {
      await cluster.addMultipleTargetTopics(request.topicMessages.map(({ topic }) => topic));
      try {
        await sendUnanswered(dependencies, request, answers);
        return request.acks === 0 ? [] : [...answers.values()];
      } catch (caught) {
        const e = caught as KafkaError;
        await rethrowIfRetriable(dependencies, e, retryCount, retryTime);
        bail(e);
        return [];
      }
    });
  };
}

async function sendUnanswered({ cluster, partitioner, eosManager }: SendDependencies, request: SendRequest, answers: Map<string, Answer>): Promise<void> {
  await cluster.refreshMetadataIfNecessary();
  const perBroker = unansweredPerLeader(cluster, partitioner, request.topicMessages, answers);
  await Promise.all(
    [...perBroker.entries()].map(async ([nodeId, topicDataForBroker]) => {
      const broker = await cluster.findBroker({ nodeId });
      await produceOnBroker(eosManager, broker, createTopicData(topicDataForBroker), request, answers);
    }),
  );
}

/** The partitions without an answer, grouped by the broker that leads them now. */
function unansweredPerLeader(cluster: Cluster, partitioner: unknown, topicMessages: TopicMessages[], answers: Map<string, Answer>): Map<string, BrokerTopic[]> {
  const perBroker = new Map<string, BrokerTopic[]>();
  for (const { topic, messages } of topicMessages) {
    const partitionMetadata = cluster.findTopicPartitionMetadata(topic);
    if (partitionMetadata.length === 0) throw new KafkaJSMetadataNotLoaded('Producing to topic without metadata');
    const messagesPerPartition = groupMessagesPerPartition({ topic, partitionMetadata, messages, partitioner });
    const open = Object.keys(messagesPerPartition).filter((p) => !answers.has(answerKey(topic, p)));
    if (open.length === 0) continue;
    for (const [nodeId, partitions] of Object.entries(cluster.findLeaderForPartitions(topic, open))) {
      const list = perBroker.get(nodeId) ?? [];
      list.push({ topic, partitions, messagesPerPartition });
      perBroker.set(nodeId, list);
    }
  }
  return perBroker;
}

async function produceOnBroker(
  eosManager: EosManager,
  broker: Broker,
  topicData: TopicData,
  request: SendRequest,
  answers: Map<string, Answer>,
): Promise<void> {
  const { acks, timeout, compression } = request;
  await eosManager.acquireBrokerLock(broker);
  try {
    if (eosManager.isTransactional()) await eosManager.addPartitionsToTransaction(topicData);
    for (const { topic, partitions } of topicData) {
      for (const entry of partitions) {
        entry.firstSequence = eosManager.getSequence(topic, entry.partition);
        eosManager.updateSequence(topic, entry.partition, entry.messages.length);
      }
    }
    let response: unknown;
    try {
      response = await broker.produce({
        transactionalId: eosManager.isTransactional() ? eosManager.getTransactionalId() : undefined,
        producerId: eosManager.getProducerId(),
        producerEpoch: eosManager.getProducerEpoch(),
        acks,
        timeout,
        compression,
        topicData,
      });
    } catch (e) {
      for (const { topic, partitions } of topicData) for (const entry of partitions) eosManager.updateSequence(topic, entry.partition, -entry.messages.length);
      throw e;
    }
    if (acks === 0) {
      for (const { topic, partitions } of topicData)
        for (const entry of partitions) answers.set(answerKey(topic, entry.partition), { topicName: topic, partition: entry.partition });
    } else {
      for (const answer of responseSerializer(response)) answers.set(answerKey(answer.topicName, answer.partition), answer);
    }
  } finally {
    await eosManager.releaseBrokerLock(broker);
  }
}

/** Throws `e` for the retrier to try again (after reconnecting or refreshing metadata); returns when it must bail. */
async function rethrowIfRetriable({ cluster, logger }: SendDependencies, e: KafkaError, retryCount: number, retryTime: number): Promise<void> {
  if (e.name === 'KafkaJSConnectionClosedError' && e.host !== undefined && e.port !== undefined) cluster.removeBroker({ host: e.host, port: e.port });
  if (!cluster.isConnected()) {
    logger.debug(`Cluster has disconnected, reconnecting: ${e.message}`, { retryCount, retryTime });
    await cluster.connect();
    await cluster.refreshMetadata();
    throw e;
  }
  if (
    staleMetadata(e) ||
    e.name === 'KafkaJSMetadataNotLoaded' ||
    e.name === 'KafkaJSConnectionError' ||
    e.name === 'KafkaJSConnectionClosedError' ||
    (e.name === 'KafkaJSProtocolError' && e.retriable === true)
  ) {
    logger.error(`Failed to send messages: ${e.message}`, { retryCount, retryTime });
    await cluster.refreshMetadata();
    throw e;
  }
  logger.error(`${e.message}`, { retryCount, retryTime });
  if (e.retriable === true) throw e;
}
fixedSendMessages.fixed = true;

require(sendMessagesPath);
const cached = require.cache[sendMessagesPath];
if (cached === undefined) throw new Error(`kafkajs's ${sendMessagesPath} did not load`);
cached.exports = fixedSendMessages;
