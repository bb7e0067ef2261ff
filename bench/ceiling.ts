import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import type { Kafka, Message } from 'kafkajs';
import { ensureTopics, IDEMPOTENT_RETRY } from '../services/shared/kafka.js';
import { repoRoot } from '../services/shared/repo-root.js';
import { cpuSeconds } from './process-stats.js';

/**
 * The broker's raw rates on this machine, for messages of the pipeline's sizes: Kafka's own perf
 * tools (the JVM client, the best case) and a minimal kafkajs loop (the client the services use,
 * doing nothing else). Pipeline figures read as a fraction of these.
 */
export interface CeilingResult {
  label: string;
  valueBytes: number;
  records: number;
  /** Kafka's ProducerPerformance, acks=all. */
  javaProduce: number;
  /** Kafka's ConsumerPerformance, fetch rate (group join excluded). */
  javaConsume: number;
  /** kafkajs, batches of 500, acks=-1, one send in flight: how the load generator produces. */
  kafkajsProduce: number;
  /** kafkajs eachBatch doing nothing, first batch to last. */
  kafkajsConsume: number;
  /** CPU per message while kafkajs produced / consumed, µs: the client's, and the broker's. */
  cpuUs: { produceClient: number; produceBroker: number; consumeClient: number; consumeBroker: number };
}

export interface CeilingInput {
  kafka: Kafka;
  brokers: string[];
  partitions: number;
  topicPrefix: string;
  sizes: { label: string; valueBytes: number }[];
  records: number;
  env: NodeJS.ProcessEnv;
  /** The broker's pid, when it runs on this machine, for its CPU time. */
  brokerPid: number | undefined;
  say: (line: string) => void;
}

export async function measureCeiling(input: CeilingInput): Promise<CeilingResult[]> {
  const fetched = spawnSync('bash', [join(repoRoot(), 'infra', 'local', 'kafka.sh'), 'fetch', '--tools'], { env: input.env, encoding: 'utf8' });
  if (fetched.status !== 0) throw new Error(`kafka.sh fetch --tools failed:\n${fetched.stderr}`);
  const toolsLib = join(input.env.ES_LOCAL_DIR ?? join(repoRoot(), '.local'), 'kafka', 'tools-lib');
  const admin = input.kafka.admin();
  await admin.connect();
  const results: CeilingResult[] = [];
  try {
    for (const size of input.sizes) {
      const javaTopic = `${input.topicPrefix}ceiling-java-${size.label}`;
      const jsTopic = `${input.topicPrefix}ceiling-kafkajs-${size.label}`;
      await ensureTopics(admin, [javaTopic, jsTopic], input.partitions);
      input.say(`  ${size.label} (${size.valueBytes} B): Kafka perf tools ...`);
      const javaProduce = producerPerformance(toolsLib, input.brokers, javaTopic, input.records, size.valueBytes);
      const javaConsume = consumerPerformance(toolsLib, input.brokers, javaTopic, input.records);
      input.say(`  ${size.label} (${size.valueBytes} B): kafkajs ...`);
      const produce = await withCpu(input.brokerPid, input.records, () => kafkajsProduceRate(input.kafka, jsTopic, input.records, size.valueBytes));
      const consume = await withCpu(input.brokerPid, input.records, () => kafkajsConsumeRate(input.kafka, jsTopic, input.records));
      results.push({
        label: size.label,
        valueBytes: size.valueBytes,
        records: input.records,
        javaProduce,
        javaConsume,
        kafkajsProduce: produce.result,
        kafkajsConsume: consume.result,
        cpuUs: { produceClient: produce.clientUs, produceBroker: produce.brokerUs, consumeClient: consume.clientUs, consumeBroker: consume.brokerUs },
      });
    }
  } finally {
    await admin.disconnect();
  }
  return results;
}

/** Runs `work`, and says how much CPU this process and the broker spent on it per message, µs. */
async function withCpu<T>(brokerPid: number | undefined, messages: number, work: () => Promise<T>): Promise<{ result: T; clientUs: number; brokerUs: number }> {
  const client = process.cpuUsage();
  const broker = brokerPid === undefined ? undefined : cpuSeconds(brokerPid);
  const result = await work();
  const used = process.cpuUsage(client);
  const brokerEnd = brokerPid === undefined ? undefined : cpuSeconds(brokerPid);
  const brokerUs = broker === undefined || brokerEnd === undefined ? Number.NaN : ((brokerEnd - broker) * 1e6) / messages;
  return { result, clientUs: (used.user + used.system) / messages, brokerUs };
}

function java(toolsLib: string, mainClass: string, args: string[]): string {
  const run = spawnSync('java', ['-Xmx512m', '-cp', `${toolsLib}/*`, mainClass, ...args], { encoding: 'utf8', timeout: 300_000 });
  if (run.status !== 0) throw new Error(`${mainClass} failed (${run.status}):\n${run.stderr}`);
  return run.stdout;
}

/** The records/sec of ProducerPerformance's summary line. */
function producerPerformance(toolsLib: string, brokers: string[], topic: string, records: number, valueBytes: number): number {
  const out = java(toolsLib, 'org.apache.kafka.tools.ProducerPerformance', [
    '--topic',
    topic,
    '--num-records',
    String(records),
    '--record-size',
    String(valueBytes),
    '--throughput',
    '-1',
    '--bootstrap-server',
    brokers.join(','),
    '--producer-props',
    'acks=all',
  ]);
  const summary = out.trim().split('\n').at(-1) ?? '';
  const match = /([\d.]+) records\/sec/.exec(summary);
  if (match === null) throw new Error(`ProducerPerformance printed no rate:\n${out}`);
  return Number(match[1]);
}

/** The fetch.nMsg.sec column of ConsumerPerformance: messages per second, group join excluded. */
function consumerPerformance(toolsLib: string, brokers: string[], topic: string, records: number): number {
  const out = java(toolsLib, 'org.apache.kafka.tools.ConsumerPerformance', [
    '--bootstrap-server',
    brokers.join(','),
    '--topic',
    topic,
    '--num-records',
    String(records),
    '--group',
    `ceiling-${randomBytes(4).toString('hex')}`,
    '--timeout',
    '60000',
  ]);
  const lines = out.trim().split('\n');
  const header = (lines.find((l) => l.includes('nMsg.sec')) ?? '').split(',').map((c) => c.trim());
  const values = (lines.at(-1) ?? '').split(',').map((c) => c.trim());
  const rate = Number(values[header.indexOf('fetch.nMsg.sec')]);
  if (!Number.isFinite(rate)) throw new Error(`ConsumerPerformance printed no rate:\n${out}`);
  return rate;
}

async function kafkajsProduceRate(kafka: Kafka, topic: string, records: number, valueBytes: number): Promise<number> {
  const producer = kafka.producer({ idempotent: true, retry: IDEMPOTENT_RETRY });
  await producer.connect();
  const value = randomBytes(valueBytes);
  const started = performance.now();
  for (let i = 0; i < records; i += 500) {
    const messages: Message[] = [];
    for (let j = i; j < Math.min(records, i + 500); j++) messages.push({ key: `ceiling-${j}`, value });
    await producer.send({ topic, messages, acks: -1 });
  }
  const seconds = (performance.now() - started) / 1000;
  await producer.disconnect();
  return records / seconds;
}

async function kafkajsConsumeRate(kafka: Kafka, topic: string, records: number): Promise<number> {
  const consumer = kafka.consumer({ groupId: `ceiling-${randomBytes(4).toString('hex')}`, maxWaitTimeInMs: 20 });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  let seen = 0;
  let first = 0;
  let last = 0;
  let done: () => void = () => undefined;
  const finished = new Promise<void>((resolve) => (done = resolve));
  await consumer.run({
    eachBatch: async ({ batch }) => {
      if (first === 0) first = performance.now();
      seen += batch.messages.length;
      last = performance.now();
      if (seen >= records) done();
    },
  });
  const timeout = setTimeout(done, 120_000);
  await finished;
  clearTimeout(timeout);
  await consumer.disconnect();
  return seen / ((last - first) / 1000);
}
