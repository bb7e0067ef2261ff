import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { codecs } from '../../services/shared/codec.js';
import type { Cluster } from 'ioredis';
import { header } from '../../services/shared/kafka.js';
import { createRedis } from '../../services/shared/redis.js';
import { repoRoot } from '../../services/shared/repo-root.js';
import { topicsToEnv } from '../../services/shared/topics.js';
import { uniqueName } from '../support/ids.js';
import { testInfra } from '../support/infra.js';
import { classificationConfig, createTestTopics, eventually, featureMessage, testKafka } from '../support/pipeline.js';
import { ServiceProcesses } from './service-processes.js';
import { longestGap, readTopic } from './topic-reader.js';

// The Redis Cluster master holding the join state of predictions partition 0 SIGKILLed while
// requests stream in at ~300/s (its replica takes over), brought back later as a replica: nothing
// lost, nothing repeated, no service exits. The longest pause in fused results is reported.
const MODELS = ['f1', 'f2', 'f3'];
const RATE = 300;
/** Requests stream in from the start; the master dies once results have flowed this long, for DOWN_MS. */
const STEADY_MS = 5_000;
const DOWN_MS = 12_000;
/** The stream goes on this long after the old master is back (as a replica). */
const AFTER_RESTART_MS = 8_000;

/** redis-cluster.sh, run without blocking: the test process keeps producing and reading meanwhile. */
async function clusterScript(action: string, ...args: string[]): Promise<void> {
  const child = spawn('bash', [join(repoRoot(), 'infra', 'local', 'redis-cluster.sh'), action, ...args], {
    env: process.env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr.on('data', (d: Buffer) => (output += d.toString()));
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  if (code !== 0) throw new Error(`redis-cluster.sh ${action} ${args.join(' ')} failed: ${output}`);
}

describe('a Redis Cluster master killed mid-stream', () => {
  const processes = new ServiceProcesses();
  afterAll(async () => {
    await processes.stopAll();
  });

  it('loses and repeats nothing, and no service exits; the failover gap is measured', async () => {
    const kafka = testKafka('broker-failover-test');
    const topics = await createTestTopics(kafka);
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      ...topicsToEnv(topics),
      KAFKA_BROKERS: testInfra().kafkaBrokers.join(','),
      REDIS_URL: testInfra().redisUrl,
      ES_REDIS_NAMESPACE: uniqueName('redis-failover'),
      ES_AGGREGATOR_GROUP: uniqueName('failover-agg'),
      // Heartbeats must survive this machine's load: a lapsed session is another test's subject.
      ES_SESSION_TIMEOUT_MS: '10000',
      LOG_LEVEL: 'warn',
      ES_METRICS_PORT: '0', // several services on one host: each its own free port
    };
    for (const id of MODELS) processes.start(`worker-${id}`, ['worker', '--synthetic', '3', '--model-id', id], { ...env, ES_INSTANCE_ID: uniqueName(id) });
    const config = processes.writeConfig(classificationConfig(MODELS, { deadlineMs: 5000 }));
    processes.start('aggregator', ['aggregator', '--config', config], { ...env, ES_INSTANCE_ID: uniqueName('agg') });
    const services = [...processes.all];

    const fused = await readTopic(kafka, topics.fused, (m) => codecs.fusedPrediction.decode(m.value, m.headers as never));
    const predictions = await readTopic(kafka, topics.predictions, (m) =>
      header(m.headers, 'es.control') === undefined ? codecs.prediction.decode(m.value, m.headers as never).modelId : undefined,
    );

    // The victim: the master of the slot of partition 0's join keys (hash tag p0).
    const redis = createRedis(testInfra().redisUrl, 'redis-failover-test') as Cluster;
    const slot = Number(await redis.cluster('KEYSLOT', 'p0'));
    const slots = await redis.cluster('SLOTS');
    redis.disconnect();
    const victim = slots.find(([start, end]) => slot >= start && slot <= end)?.[2]?.[1] ?? 0;

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
      requests: total,
      ratePerSecond: RATE,
      victimRedisPort: victim,
      masterDownMs: restartAt - killedAt,
      restartMs: restartedAt - restartAt,
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
    const reportFile = join(processes.dir, 'redis-failover.json');
    writeFileSync(reportFile, JSON.stringify(report, null, 2));
    console.log(`redis failover: ${JSON.stringify(report)} (${reportFile})`);

    expect(exitedEarly).toEqual([]);
    expect(lost).toBe(0);
    expect(duplicated).toBe(0);
    expect(exitCodes).toEqual(services.map(() => 0));
  }, 600_000); // about 2 minutes on a quiet machine
});
