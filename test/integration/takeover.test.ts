import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { Aggregator } from '../../services/aggregator/aggregator.js';
import { codecs } from '../../services/shared/codec.js';
import type { Prediction } from '../../services/shared/records.js';
import { repoRoot } from '../../services/shared/repo-root.js';
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
const FEATURES = [0.2, 0.3, 0.5, 0.6, 0.3, 0.1, 0.1, 0.1, 0.8];

/** Longest pause between two consecutive results of one partition, within [fromMs, toMs]. */
function longestGap(received: readonly { partition: number; receivedAtMs: number }[], fromMs: number, toMs: number): number {
  const byPartition = new Map<number, number[]>();
  for (const r of received) {
    const list = byPartition.get(r.partition) ?? [];
    list.push(r.receivedAtMs);
    byPartition.set(r.partition, list);
  }
  let gap = 0;
  for (const times of byPartition.values()) {
    const inWindow = [fromMs, ...times.filter((t) => t >= fromMs && t <= toMs).sort((a, b) => a - b)];
    for (let i = 1; i < inWindow.length; i++) gap = Math.max(gap, (inWindow[i] as number) - (inWindow[i - 1] as number));
  }
  return gap;
}

describe('takeover', () => {
  let pipeline: TestPipeline | undefined;
  const children: ChildProcess[] = [];
  afterEach(async () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    await pipeline?.stop();
    pipeline = undefined;
  });

  it("moves a SIGKILLed aggregator's or worker's partitions within seconds, a SIGTERMed one's at once, fusing every request once", async () => {
    expect(existsSync(CLI), `${CLI} is missing: build first (npm test does)`).toBe(true);
    const kafka = testKafka();
    const topics = await createTestTopics(kafka);
    pipeline = new TestPipeline(kafka, topics);
    const models = [uniqueName('syn-a'), uniqueName('syn-b')];
    const dir = mkdtempSync(join(tmpdir(), 'es-takeover-'));
    const configPath = join(dir, 'aggregator.json');
    writeFileSync(configPath, JSON.stringify(classificationConfig(models, { deadlineMs: 20_000 })));
    const env = pipeline.serviceEnv('agg-group');
    const start = (args: string[]) => {
      const child = spawn(process.execPath, [CLI, ...args], { env: { ...env, ES_INSTANCE_ID: uniqueName('p') }, stdio: 'ignore' });
      children.push(child);
      return child;
    };
    const aggregator = () => start(['aggregator', '--config', configPath]);
    const worker = (modelId: string) => start(['worker', '--synthetic', '3', '--model-id', modelId]);
    const kill = async (child: ChildProcess, signal: NodeJS.Signals) => {
      child.kill(signal);
      await new Promise((r) => child.once('exit', r));
    };

    const fused = await tailFused(kafka, topics);
    const predictions = await tail<Prediction>(kafka, topics.predictions, (v, h) =>
      v === null ? (null as unknown as Prediction) : codecs.prediction.decode(v, h as never),
    );
    const a = aggregator();
    let b = aggregator();
    const workers = models.map(worker);
    let sent = 0;
    let producing = true;
    const producer = (async () => {
      while (producing) {
        await produce(
          kafka,
          topics.features,
          Array.from({ length: 10 }, (_, i) => featureMessage(`req-${sent + i}`, FEATURES)),
        );
        sent += 10;
        await new Promise((r) => setTimeout(r, 100));
      }
    })();
    const resultsAfter = (n: number, what: string) => eventually(() => fused.received.length >= n, what, 60_000);

    await resultsAfter(300, 'results from two aggregators');
    const killedAt = Date.now();
    await kill(a, 'SIGKILL');
    await resultsAfter(fused.received.length + 600, 'results after the SIGKILL');
    const afterKill = longestGap(fused.received, killedAt, Date.now());

    const c = aggregator(); // back to two instances
    await resultsAfter(fused.received.length + 600, 'results with the third instance');
    const termAt = Date.now();
    await kill(b, 'SIGTERM');
    b = c;
    await resultsAfter(fused.received.length + 300, 'results after the SIGTERM');
    const afterTerm = longestGap(fused.received, termAt, Date.now());

    // A worker killed and started again at once: its successor waits for the dead member's session.
    const model = models[0] as string;
    await kill(workers[0] as ChildProcess, 'SIGKILL');
    const restartedAt = Date.now();
    worker(model);
    await eventually(
      () => predictions.received.some((p) => p.value?.modelId === model && p.value.receivedAtMs > restartedAt),
      'the restarted worker answering',
      60_000,
    );
    const workerBack =
      (predictions.received.find((p) => p.value?.modelId === model && p.value.receivedAtMs > restartedAt)?.receivedAtMs ?? Infinity) - restartedAt;

    producing = false;
    await producer;
    await eventually(() => countByKey(fused.received).size >= sent, `${sent} distinct results`, 90_000);
    await pipeline.drainedBy(env.ES_AGGREGATOR_GROUP, fused);
    await Promise.all([fused.stop(), predictions.stop()]);

    console.log(`takeover: SIGKILLed aggregator ${afterKill} ms, SIGTERMed aggregator ${afterTerm} ms, restarted worker answering after ${workerBack} ms`);
    expect(countByKey(fused.received).size).toBe(sent);
    expect([...countByKey(fused.received).values()].filter((n) => n !== 1)).toEqual([]);
    expect(fused.received.every(({ value }) => value.status === 'COMPLETE')).toBe(true);
    // The promised bounds: a 4 s session timeout, then a rebalance (SIGKILL); a LeaveGroup at once (SIGTERM).
    expect(afterKill).toBeLessThan(6000);
    expect(afterTerm).toBeLessThan(1000);
    expect(workerBack).toBeLessThan(6000);
    expect(b.exitCode).toBeNull();
  });

  it('three aggregators under churn (instances leaving and joining, producers fenced) keep consuming, and fuse every request once', async () => {
    const kafka = testKafka();
    const topics = await createTestTopics(kafka, 6);
    pipeline = new TestPipeline(kafka, topics);
    const models = ['m1', 'm2', 'm3'];
    for (const [i, id] of models.entries()) await pipeline.startWorker(new SliceRunner(id, i, 3));
    const config = classificationConfig(models);
    const fatal: string[] = [];
    const startOne = () => pipeline!.startAggregatorWith(config, { onFatal: (reason) => fatal.push(reason) });
    const running: Aggregator[] = [await startOne(), await startOne(), await startOne()];
    const fused = await tailFused(kafka, topics);
    const total = 2000;
    const producing = (async () => {
      for (let i = 0; i < total; i += 50) {
        await produce(
          kafka,
          topics.features,
          Array.from({ length: 50 }, (_, j) => featureMessage(`req-${i + j}`, FEATURES)),
        );
        await new Promise((r) => setTimeout(r, 50));
      }
    })();
    // Five rounds: the oldest instance leaves mid-stream and a new one joins; each move fences the
    // partition's previous producer.
    for (let round = 0; round < 5; round++) {
      await eventually(() => fused.received.length >= (round + 1) * 250, `results before round ${round}`, 60_000);
      await running.shift()?.stop();
      running.push(await startOne());
    }
    await producing;
    await eventually(() => countByKey(fused.received).size >= total, `${total} results`, 90_000);
    await pipeline.drained(fused);
    await fused.stop();

    expect(fatal).toEqual([]);
    expect(countByKey(fused.received).size).toBe(total);
    expect([...countByKey(fused.received).values()].filter((n) => n !== 1)).toEqual([]);
  });
});
