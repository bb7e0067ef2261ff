import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigResourceTypes, type Kafka } from 'kafkajs';
import { afterAll, describe, expect, it } from 'vitest';
import { codecs } from '../../services/shared/codec.js';
import { header } from '../../services/shared/kafka.js';
import { repoRoot } from '../../services/shared/repo-root.js';
import { allTopics, GROUPS, topicsToEnv } from '../../services/shared/topics.js';
import { uniqueName } from '../support/ids.js';
import { testInfra } from '../support/infra.js';
import { classificationConfig, createTestTopics, eventually, featureMessage, testKafka } from '../support/pipeline.js';
import { ServiceProcesses } from './service-processes.js';
import { longestGap, readTopic } from './topic-reader.js';

// One broker of three SIGKILLed while requests stream in at ~300/s and brought back later: nothing
// lost, nothing repeated, no service exits. The longest pause in fused results (and in each model's
// predictions) is measured and reported, not asserted (timings belong to the benchmark).
const MODELS = ['f1', 'f2', 'f3'];
const RATE = 300;
/** Requests stream in from the start; the broker dies once results have flowed this long, for DOWN_MS. */
const STEADY_MS = 5_000;
const DOWN_MS = 20_000;
/** The stream goes on this long after the broker answers again. */
const AFTER_RESTART_MS = 8_000;
/** About 2 minutes on a quiet machine; a busy 2-core one took 2 minutes to restart a broker alone. */
const FAILOVER_TIMEOUT_MS = 600_000;

/** kafka-cluster.sh, run without blocking: the test process keeps producing and reading meanwhile. */
async function clusterScript(action: string, ...args: string[]): Promise<void> {
  const ports = testInfra()
    .kafkaBrokers.map((b) => b.split(':')[1])
    .join(',');
  const child = spawn('bash', [join(repoRoot(), 'infra', 'local', 'kafka-cluster.sh'), action, ...args], {
    env: { ...process.env, KAFKA_CLUSTER_PORTS: ports, KAFKA_START_TIMEOUT: '180' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr.on('data', (d: Buffer) => (output += d.toString()));
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  if (code !== 0) throw new Error(`kafka-cluster.sh ${action} ${args.join(' ')} failed: ${output}`);
}

/** Java's String.hashCode, as the broker uses it to place a group or transactional id on a partition. */
function javaHash(text: string): number {
  let h = 0;
  for (let i = 0; i < text.length; i++) h = (Math.imul(h, 31) + text.charCodeAt(i)) | 0;
  return h & 0x7fffffff;
}

/** The broker leading the internal topic's partition that coordinates `id` (50 partitions, the broker default). */
async function coordinatorOf(kafka: Kafka, internalTopic: string, id: string): Promise<number> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const { topics } = await admin.fetchTopicMetadata({ topics: [internalTopic] });
    const partitions = topics[0]?.partitions ?? [];
    const leader = partitions.find((p) => p.partitionId === javaHash(id) % partitions.length)?.leader;
    if (leader === undefined) throw new Error(`no leader for ${id} in ${internalTopic}`);
    return leader;
  } finally {
    await admin.disconnect();
  }
}

/** Replication factor and min.insync.replicas of every topic of the test, as the brokers report them. */
async function replicationOf(kafka: Kafka, names: string[]): Promise<Record<string, { replicationFactor: number; minInsyncReplicas: string }>> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const { topics } = await admin.fetchTopicMetadata({ topics: names });
    const configs = await admin.describeConfigs({
      resources: names.map((name) => ({ type: ConfigResourceTypes.TOPIC, name, configNames: ['min.insync.replicas'] })),
      includeSynonyms: false,
    });
    const minIsr = new Map(configs.resources.map((r) => [r.resourceName, r.configEntries[0]?.configValue ?? '?']));
    return Object.fromEntries(
      topics.map((t) => [t.name, { replicationFactor: Math.min(...t.partitions.map((p) => p.replicas.length)), minInsyncReplicas: minIsr.get(t.name) ?? '?' }]),
    );
  } finally {
    await admin.disconnect();
  }
}

type Victim = 'features-leader' | 'aggregator-coordinator';

describe('a broker of three killed mid-stream', () => {
  const processes = new ServiceProcesses();
  afterAll(async () => {
    await processes.stopAll();
  });

  it(
    'the leader of a partition every worker reads: loses and repeats nothing, and no service exits; the failover gap is measured',
    async () => {
      await failover(processes, 'features-leader');
    },
    FAILOVER_TIMEOUT_MS,
  );

  it(
    "the aggregators' group coordinator: loses and repeats nothing, and no service exits; the failover gap is measured",
    async () => {
      await failover(processes, 'aggregator-coordinator');
    },
    FAILOVER_TIMEOUT_MS,
  );
});

async function failover(processes: ServiceProcesses, victimKind: Victim): Promise<void> {
  const kafka = testKafka('broker-failover-test');
  const topics = await createTestTopics(kafka);
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    ...topicsToEnv(topics),
    KAFKA_BROKERS: testInfra().kafkaBrokers.join(','),
    REDIS_URL: testInfra().redisUrl,
    ES_REDIS_NAMESPACE: uniqueName('failover'),
    ES_AGGREGATOR_GROUP: uniqueName('failover-agg'),
    // Heartbeats of the services (and the brokers' view of them) must survive this machine's load:
    // a member whose session lapses is taken over, which is another test's subject, not this one's.
    ES_SESSION_TIMEOUT_MS: '10000',
    LOG_LEVEL: 'warn',
    ES_METRICS_PORT: '0', // several services on one host: each its own free port
  };
  for (const id of MODELS) processes.start(`worker-${id}`, ['worker', '--synthetic', '3', '--model-id', id], { ...env, ES_INSTANCE_ID: uniqueName(id) });
  const config = processes.writeConfig(classificationConfig(MODELS, { deadlineMs: 5000 }));
  processes.start('aggregator', ['aggregator', '--config', config], { ...env, ES_INSTANCE_ID: uniqueName('agg') });
  const services = processes.running();

  const fused = await readTopic(kafka, topics.fused, (m) => codecs.fusedPrediction.decode(m.value, m.headers as never));
  const predictions = await readTopic(kafka, topics.predictions, (m) =>
    header(m.headers, 'es.control') === undefined ? codecs.prediction.decode(m.value, m.headers as never).modelId : undefined,
  );

  // The victim: the leader of the features topic's first partition (every worker reads it), or the
  // coordinator of the aggregators' group. Where the aggregators' transactions are coordinated is reported.
  const group = env.ES_AGGREGATOR_GROUP as string;
  const victim = victimKind === 'aggregator-coordinator' ? await coordinatorOf(kafka, '__consumer_offsets', group) : await leaderOf(kafka, topics.features, 0);
  const groupCoordinator = await coordinatorOf(kafka, '__consumer_offsets', group);
  const transactionCoordinators: Record<string, number> = {};
  for (let p = 0; p < 3; p++) {
    const id = `${group}.${topics.predictions}.${p}`;
    transactionCoordinators[`partition ${p}`] = await coordinatorOf(kafka, '__transaction_state', id);
  }
  const workerCoordinators = Object.fromEntries(
    await Promise.all(MODELS.map(async (id) => [id, await coordinatorOf(kafka, '__consumer_offsets', GROUPS.worker(id))] as const)),
  );
  const replication = await replicationOf(kafka, allTopics(topics));

  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  const perTick = RATE / 10;
  let total = 0;
  let producingDone = false;
  const startedAt = Date.now();
  let sendRetries = 0;
  const producing = (async () => {
    for (let tick = 0; !producingDone; tick++) {
      const messages = Array.from({ length: perTick }, (_, j) => featureMessage(`req-${tick * perTick + j}`, [0.1 * (j % 7), 0.2, 0.3]));
      for (;;) {
        try {
          await producer.send({ topic: topics.features, messages, acks: -1 });
          break;
        } catch {
          sendRetries++; // a repeated feature event is joined once: safe to send again
        }
      }
      total += perTick;
      const next = startedAt + (tick + 1) * 100;
      await new Promise((r) => setTimeout(r, Math.max(0, next - Date.now())));
    }
  })();

  // The pipeline must be flowing before the kill: on a loaded machine the services take a while to join.
  await eventually(() => fused.records.length >= RATE, 'fused results flowing', 120_000);
  const flowingAt = Date.now();
  await new Promise((r) => setTimeout(r, STEADY_MS));
  const killedAt = Date.now();
  await clusterScript('kill', String(victim));
  await new Promise((r) => setTimeout(r, DOWN_MS));
  const restartAt = Date.now();
  await clusterScript('start');
  const restartedAt = Date.now();
  await new Promise((r) => setTimeout(r, AFTER_RESTART_MS));
  producingDone = true;
  await producing;
  const producedAt = Date.now();
  await producer.disconnect();

  await eventually(() => new Set(fused.records.map((r) => r.key)).size >= total, `${total} distinct fused results`, 120_000);
  const exitedEarly = services.filter((s) => s.child.exitCode !== null || s.child.signalCode !== null).map((s) => s.name);
  // SIGTERM drains: every service commits and leaves, exit 0. Then nothing more can be written.
  const exitCodes = await processes.terminate(services);
  for (const reader of [fused, predictions]) {
    for (let i = 0; !(await reader.atEnd()); i++) {
      if (i > 600) throw new Error('a reader did not reach the end offsets');
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  await Promise.all([fused.stop(), predictions.stop()]);

  const counts = new Map<string, number>();
  for (const r of fused.records) counts.set(r.key, (counts.get(r.key) ?? 0) + 1);
  const lost = total - counts.size;
  const duplicated = [...counts.values()].filter((n) => n > 1).length;
  const partial = fused.records.filter((r) => r.value.status !== 'COMPLETE').length;
  // From the time results were seen flowing, until the last request was produced.
  const from = flowingAt;
  const fusedTimes = fused.records.map((r) => r.timestampMs);
  const fusedGap = longestGap(fusedTimes, from, producedAt);
  // Apart: while the broker is down, and from its restart on.
  const whileDown = longestGap(fusedTimes, killedAt, restartAt);
  const afterRestart = longestGap(fusedTimes, restartAt, producedAt);
  const workerGaps = Object.fromEntries(
    MODELS.map((id) => {
      const gap = longestGap(
        predictions.records.filter((r) => r.value === id).map((r) => r.timestampMs),
        from,
        producedAt,
      );
      return [id, { gapMs: gap.gapMs, startsAfterKillMs: gap.atMs - killedAt }];
    }),
  );
  const report = {
    victimKind,
    requests: total,
    ratePerSecond: RATE,
    victimBroker: victim,
    aggregatorGroupCoordinatorBefore: groupCoordinator,
    transactionCoordinatorsBefore: transactionCoordinators,
    workerGroupCoordinatorsBefore: workerCoordinators,
    replication,
    brokerDownMs: restartAt - killedAt,
    brokerRestartMs: restartedAt - restartAt,
    lost,
    duplicated,
    partial,
    sendRetries,
    longestFusedGapMs: fusedGap.gapMs,
    fusedGapStartsAfterKillMs: fusedGap.atMs - killedAt,
    longestFusedGapWhileDownMs: whileDown.gapMs,
    longestFusedGapFromRestartMs: afterRestart.gapMs,
    longestPredictionGapMsByModel: workerGaps,
    exitCodes,
  };
  const reportFile = join(processes.dir, `broker-failover-${victimKind}.json`);
  writeFileSync(reportFile, JSON.stringify(report, null, 2));
  console.log(`broker failover: ${JSON.stringify(report)} (${reportFile})`);

  expect(exitedEarly).toEqual([]);
  expect(lost).toBe(0);
  expect(duplicated).toBe(0);
  expect(exitCodes).toEqual(services.map(() => 0));
}

async function leaderOf(kafka: Kafka, topic: string, partition: number): Promise<number> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const metadata = await admin.fetchTopicMetadata({ topics: [topic] });
    return metadata.topics[0]?.partitions.find((p) => p.partitionId === partition)?.leader ?? 1;
  } finally {
    await admin.disconnect();
  }
}
