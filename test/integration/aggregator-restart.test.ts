import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
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
  tailFused,
  TestPipeline,
  testKafka,
} from '../support/pipeline.js';

const CLI = join(repoRoot(), 'dist', 'services', 'cli', 'main.js');
const MODELS = ['m1', 'm2', 'm3'];
const FEATURES = [0.2, 0.3, 0.5, 0.6, 0.3, 0.1, 0.1, 0.1, 0.8];

describe('an aggregator killed mid-stream', () => {
  let pipeline: TestPipeline | undefined;
  const children: ChildProcess[] = [];
  afterEach(async () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    await pipeline?.stop();
    pipeline = undefined;
  });

  it('leaves exactly one fused result per request once a new instance takes over', async () => {
    // The aggregator runs as its own process (the built CLI) so it can really be killed.
    expect(existsSync(CLI), `${CLI} is missing: build first (npm test does)`).toBe(true);
    const kafka = testKafka();
    const topics = await createTestTopics(kafka);
    pipeline = new TestPipeline(kafka, topics);
    for (const [i, id] of MODELS.entries()) await pipeline.startWorker(new SliceRunner(id, i, 3));
    const dir = mkdtempSync(join(tmpdir(), 'es-restart-'));
    const configPath = join(dir, 'aggregator.json');
    writeFileSync(configPath, JSON.stringify(classificationConfig(MODELS)));
    const env = pipeline.serviceEnv('agg-group');
    // Each replacement is a new instance: taking over a partition fences the killed process's
    // transactional producer for that partition and aborts its open transaction.
    const startAggregator = () => {
      const child = spawn(process.execPath, [CLI, 'aggregator', '--config', configPath], {
        env: { ...env, ES_INSTANCE_ID: uniqueName('agg') },
        stdio: 'ignore',
      });
      children.push(child);
      return child;
    };
    const fused = await tailFused(kafka, topics);

    const total = 3000;
    let first = startAggregator();
    const producing = (async () => {
      for (let i = 0; i < total; i += 100) {
        await produce(
          kafka,
          topics.features,
          Array.from({ length: 100 }, (_, j) => featureMessage(`req-${i + j}`, FEATURES)),
        );
        await new Promise((r) => setTimeout(r, 40));
      }
    })();
    // Kill twice, each time while results are flowing, without any chance to clean up.
    for (const threshold of [300, 1500]) {
      await eventually(() => fused.received.length >= threshold, `${threshold} results before the kill`, 90_000);
      first.kill('SIGKILL');
      await new Promise((r) => first.once('exit', r));
      first = startAggregator();
    }
    await producing;
    await eventually(() => new Set(fused.received.map((f) => f.key)).size >= total, `${total} distinct results`, 120_000);
    await pipeline.drainedBy(env.ES_AGGREGATOR_GROUP, fused); // any duplicate would be in by now
    await fused.stop();

    const counts = countByKey(fused.received);
    expect(counts.size).toBe(total);
    expect([...counts.entries()].filter(([, n]) => n > 1)).toEqual([]);
    expect(fused.received.every(({ value }) => value.contributors.length === 3)).toBe(true);
  });
});
