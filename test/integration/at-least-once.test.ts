import { type ChildProcess, spawn } from 'node:child_process';
import type { Kafka } from 'kafkajs';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { repoRoot } from '../../services/shared/repo-root.js';
import { lagging, untilConsumed } from '../support/consumed.js';
import { uniqueName } from '../support/ids.js';
import {
  classificationConfig,
  countByKey,
  createTestTopics,
  eventually,
  featureMessage,
  produce,
  SliceRunner,
  tail,
  tailFused,
  TestPipeline,
  testKafka,
} from '../support/pipeline.js';

const CLI = join(repoRoot(), 'dist', 'services', 'cli', 'main.js');
const MODELS = ['m1', 'm2', 'm3'];
const FEATURES = [0.2, 0.3, 0.5, 0.6, 0.3, 0.1, 0.1, 0.1, 0.8];
/** Kills until a crash left a duplicate behind, at most this many. */
const MAX_KILLS = 40;

describe('at-least-once delivery', () => {
  let pipeline: TestPipeline | undefined;
  const children: ChildProcess[] = [];
  afterEach(async () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    await pipeline?.stop();
    pipeline = undefined;
  });

  /** Three in-process workers and a way to start at-least-once aggregators as processes of the CLI. */
  async function cliPipeline(groupPrefix: string) {
    expect(existsSync(CLI), `${CLI} is missing: build first (npm test does)`).toBe(true);
    const kafka = testKafka();
    const topics = await createTestTopics(kafka);
    pipeline = new TestPipeline(kafka, topics);
    for (const [i, id] of MODELS.entries()) await pipeline.startWorker(new SliceRunner(id, i, 3));
    const dir = mkdtempSync(join(tmpdir(), 'es-alo-'));
    const configPath = join(dir, 'aggregator.json');
    writeFileSync(configPath, JSON.stringify(classificationConfig(MODELS, { delivery: 'at-least-once' })));
    const env = pipeline.serviceEnv(groupPrefix);
    const startAggregator = () => {
      const child = spawn(process.execPath, [CLI, 'aggregator', '--config', configPath], {
        env: { ...env, ES_INSTANCE_ID: uniqueName('agg') },
        stdio: 'ignore',
      });
      children.push(child);
      return child;
    };
    const running = pipeline;
    /** Stops the traffic, waits for a result of every request sent, and counts them by key. */
    const everyResult = async (
      traffic: { stop: () => Promise<number> },
      fused: { received: readonly { key: string }[]; caughtUp: (timeoutMs?: number) => Promise<void>; stop: () => Promise<void> },
    ) => {
      const total = await traffic.stop();
      await eventually(() => countByKey(fused.received).size >= total, `${total} distinct results`, 120_000);
      await running.drainedBy(env.ES_AGGREGATOR_GROUP, fused);
      await fused.stop();
      const counts = countByKey(fused.received);
      expect(counts.size).toBe(total);
      return counts;
    };
    return { kafka, topics, startAggregator, everyResult };
  }

  /** 100 requests every 40 ms until `stop`; resolves with how many were sent. */
  function steadyTraffic(kafka: Kafka, topic: string) {
    let sent = 0;
    let stopping = false;
    const running = (async () => {
      while (!stopping) {
        await produce(
          kafka,
          topic,
          Array.from({ length: 100 }, (_, j) => featureMessage(`req-${sent + j}`, FEATURES)),
        );
        sent += 100;
        await new Promise((r) => setTimeout(r, 40));
      }
    })();
    return {
      stop: async () => {
        stopping = true;
        await running;
        return sent;
      },
    };
  }

  it('commits the acknowledged offsets before a rebalance and when it stops, not only once per interval', async () => {
    const kafka = testKafka();
    const topics = await createTestTopics(kafka);
    pipeline = new TestPipeline(kafka, topics);
    for (const [i, id] of MODELS.entries()) await pipeline.startWorker(new SliceRunner(id, i, 3));
    const config = classificationConfig(MODELS, { delivery: 'at-least-once' });
    // An interval no test outlives: any offset committed here was committed by a rebalance or a stop.
    const options = { commitIntervalMs: 3_600_000 };
    const fused = await tailFused(kafka, topics);
    const sendAndFuse = async (from: number, n: number) => {
      await produce(
        kafka,
        topics.features,
        Array.from({ length: n }, (_, j) => featureMessage(`req-${from + j}`, FEATURES)),
      );
      await eventually(() => countByKey(fused.received).size >= from + n, `${from + n} results`);
    };
    const group = pipeline.aggregatorGroup;
    const behind = () => lagging(kafka, [{ groupId: group, topic: topics.predictions }]);
    const committedAll = (what: string) =>
      untilConsumed(kafka, [{ groupId: group, topic: topics.predictions }], 10_000).catch((e) => {
        throw new Error(`${what}: ${(e as Error).message}`);
      });

    const first = await pipeline.startAggregatorWith(config, options);
    await sendAndFuse(0, 300);
    expect(await behind(), 'nothing committed within the interval').toHaveLength(3);
    // A second instance joins: the first commits what it acknowledged before it rejoins.
    const second = await pipeline.startAggregatorWith(config, options);
    await committedAll('committed before the rebalance');

    await sendAndFuse(300, 300);
    expect((await behind()).length).toBeGreaterThan(0);
    // The first commits its partitions as it stops, the second its own before it takes them over.
    await first.stop();
    await committedAll('committed when the first stopped');
    await sendAndFuse(600, 300);
    await second.stop();
    await committedAll('committed when the second stopped');
    await fused.caughtUp();
    await fused.stop();
    expect(countByKey(fused.received).size).toBe(900);
    expect([...countByKey(fused.received).values()].filter((n) => n !== 1)).toEqual([]);
  });

  it('writes nothing twice when aggregators stop gracefully (SIGTERM) or rebalance under traffic', async () => {
    const { kafka, topics, startAggregator, everyResult } = await cliPipeline('alo-term-group');
    const fused = await tail(kafka, topics.fused, () => null);
    const traffic = steadyTraffic(kafka, topics.features);
    const resultsFlowing = async (what: string) => {
      const seen = fused.received.length;
      await eventually(() => fused.received.length >= seen + 300, what, 90_000);
    };

    // Each round: a second instance joins (a rebalance while commits are in flight), then the
    // older one is stopped with SIGTERM while results flow, and the newer one takes its partitions.
    let current = startAggregator();
    await resultsFlowing('results from the first aggregator');
    const rounds = 4;
    for (let round = 0; round < rounds; round++) {
      const next = startAggregator();
      await resultsFlowing(`results after instance ${round + 2} joined`);
      current.kill('SIGTERM');
      const code = await new Promise((r) => current.once('exit', (c) => r(c)));
      expect(code, 'a SIGTERMed aggregator exits cleanly').toBe(0);
      current = next;
      await resultsFlowing(`results after instance ${round + 1} stopped`);
    }
    const counts = await everyResult(traffic, fused);
    expect([...counts.entries()].filter(([, n]) => n !== 1)).toEqual([]);
  });

  it('loses nothing when the aggregator is SIGKILLed, and a result written again is the same bytes as the first', async () => {
    const { kafka, topics, startAggregator, everyResult } = await cliPipeline('alo-group');
    // Raw bytes: a duplicate must be the first copy's value and headers exactly.
    const fused = await tail(kafka, topics.fused, (value, headers) => ({
      value: Buffer.from(value ?? Buffer.alloc(0)),
      headers: JSON.stringify(headers ?? {}),
    }));

    // Traffic flows until a kill has left a duplicate (or the kills run out), then stops.
    let aggregator = startAggregator();
    const traffic = steadyTraffic(kafka, topics.features);
    // A kill right as results arrive lands, now and then, after a batch's results were acknowledged
    // and before its join state was freed: the batch is read again (its offsets were not committed
    // yet) and its results written twice.
    const duplicated = () => [...countByKey(fused.received).values()].some((n) => n > 1);
    let kills = 0;
    while (kills < MAX_KILLS && !duplicated()) {
      const seen = fused.received.length;
      await eventually(() => fused.received.length >= seen + 150, 'results flowing before the kill', 90_000);
      aggregator.kill('SIGKILL');
      await new Promise((r) => aggregator.once('exit', r));
      kills++;
      aggregator = startAggregator();
    }
    await everyResult(traffic, fused);
    const first = new Map<string, { value: Buffer; headers: string }>();
    let copies = 0;
    for (const { key, value } of fused.received) {
      const earlier = first.get(key);
      if (earlier === undefined) {
        first.set(key, value);
        continue;
      }
      copies++;
      expect(value.value.equals(earlier.value), `copy of ${key} differs from the first`).toBe(true);
      expect(value.headers).toBe(earlier.headers);
    }
    // Duplicates come only from the crashes: the kill loop stopped at the first one it left.
    expect(copies, `no duplicate after ${kills} kills`).toBeGreaterThan(0);
  });
});
