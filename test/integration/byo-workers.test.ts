import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { createWriteStream, existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Message } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { validateAggregatorConfig } from '../../services/core/ensemble-config.js';
import { onnxPathFor } from '../../services/cli/onnx-models.js';
import { type Manifest, readManifest } from '../../services/cli/training.js';
import { loadArtifact } from '../../services/ml/artifact.js';
import { loadDataset } from '../../services/ml/dataset.js';
import { codecs } from '../../services/shared/codec.js';
import type { DeadLetter, FusedPrediction } from '../../services/shared/records.js';
import { repoRoot } from '../../services/shared/repo-root.js';
import { GROUPS, topicsToEnv, withPrefix } from '../../services/shared/topics.js';
import { ensureTopics } from '../../services/shared/kafka.js';
import { ModelWorker } from '../../services/worker/worker.js';
import { BuiltinRunner } from '../../services/worker/builtin-runner.js';
import { uniqueName } from '../support/ids.js';
import { testInfra } from '../support/infra.js';
import { createTestTopics, eventually, featureMessage, produce, quietLogger, TestPipeline, testKafka } from '../support/pipeline.js';
import { endOffsets, groupReached, readToEnd } from '../support/topic-end.js';

// A pipeline of models the project did not run itself: an ONNX export (written by `train --onnx`,
// served by `worker --onnx` as its own process), a Python worker (examples/python), and a built-in
// TypeScript worker. Feature events are written to partitions no key hash would choose, so the join is
// exact only because every worker answers on its feature event's partition.
const PYTHON = '/usr/bin/python3';
const CLI = join(repoRoot(), 'dist', 'services', 'cli', 'main.js');
const REQUESTS = 300;

interface Child {
  name: string;
  child: ChildProcess;
  exited: Promise<number | null>;
  log: string;
}

function start(name: string, command: string, args: string[], env: NodeJS.ProcessEnv): Child {
  mkdirSync(join(repoRoot(), '.local', 'logs'), { recursive: true });
  const log = join(repoRoot(), '.local', 'logs', `${name}.log`);
  const out = createWriteStream(log);
  const child = spawn(command, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout?.pipe(out);
  child.stderr?.pipe(out);
  return { name, child, log, exited: new Promise((resolve) => child.once('exit', (code) => resolve(code))) };
}

async function stop(c: Child): Promise<number | null> {
  if (c.child.exitCode === null && c.child.signalCode === null) c.child.kill('SIGTERM');
  return c.exited;
}

async function groupsStable(groupIds: string[], children: Child[]): Promise<void> {
  const admin = testKafka().admin();
  await admin.connect();
  try {
    const deadline = Date.now() + 60_000;
    for (;;) {
      const dead = children.find((c) => c.child.exitCode !== null);
      if (dead !== undefined) throw new Error(`${dead.name} exited with ${dead.child.exitCode}; see ${dead.log}`);
      const { groups } = await admin.describeGroups(groupIds);
      if (groups.every((g) => g.state === 'Stable' && g.members.length >= 1)) return;
      if (Date.now() > deadline) throw new Error(`groups not stable: ${groups.map((g) => `${g.groupId}=${g.state}`).join(', ')}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  } finally {
    await admin.disconnect();
  }
}

describe('workers from outside: an ONNX export and a Python worker next to a TypeScript one', () => {
  let manifest: Manifest;
  beforeAll(() => {
    if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run npm run build first (npm test does)`);
    if (!existsSync(PYTHON)) throw new Error(`${PYTHON} is missing: apt-get install python3-confluent-kafka python3-avro`);
    const trained = spawnSync(process.execPath, [CLI, 'train', '--onnx'], { encoding: 'utf8', env: { ...process.env, LOG_LEVEL: 'error' } });
    if (trained.status !== 0) throw new Error(`train --onnx failed:\n${trained.stdout}\n${trained.stderr}`);
  }, 180_000);

  const children: Child[] = [];
  let pipeline: TestPipeline | undefined;
  afterAll(async () => {
    await pipeline?.stop();
    await Promise.all(children.map(stop));
  });

  it('fuses every request exactly once with all three among the contributors, whatever partition a request was written to', async () => {
    const loaded = await readManifest('letter');
    if (loaded === undefined) throw new Error('train --onnx left no manifest');
    manifest = loaded;
    const artifactOf = (family: string) => manifest.models.find((m) => m.family === family)!.artifactPath;
    const forest = onnxPathFor(artifactOf('random-forest'));
    expect(existsSync(forest)).toBe(true);

    const kafka = testKafka();
    const topics = await createTestTopics(kafka, 3);
    pipeline = new TestPipeline(kafka, topics);
    const run = uniqueName('byo');
    const ids = { onnx: `onnx-forest-${run}`, python: `python-lr-${run}`, builtin: `ts-tree-${run}` };
    const env = {
      ...process.env,
      ...topicsToEnv(topics),
      KAFKA_BROKERS: testInfra().kafkaBrokers.join(','),
      REDIS_URL: testInfra().redisUrl,
      LOG_LEVEL: 'warn',
      ES_METRICS_PORT: '0',
    };
    children.push(start(ids.onnx, process.execPath, [CLI, 'worker', '--onnx', forest, '--model-id', ids.onnx], env));
    children.push(
      start(
        ids.python,
        PYTHON,
        [join(repoRoot(), 'examples', 'python', 'worker.py'), '--artifact', artifactOf('logistic-regression'), '--model-id', ids.python],
        env,
      ),
    );
    await pipeline.startWorker(await BuiltinRunner.load(artifactOf('decision-tree'), ids.builtin), { groupId: GROUPS.worker(ids.builtin) });
    const models = [ids.onnx, ids.python, ids.builtin];
    const config = validateAggregatorConfig({
      task: 'classification',
      classes: manifest.classes,
      strategy: 'soft-voting',
      models: models.map((id) => ({ id })),
      deadlineMs: 60_000,
    });
    await pipeline.startAggregator(config);
    await groupsStable(
      models.map((m) => GROUPS.worker(m)),
      children,
    );

    // Test rows of letter, each written to partition r % 3 (not where the key hashes to), and one
    // feature event with the wrong schema header, which every worker dead-letters.
    const data = await loadDataset('letter');
    const rows = manifest.split.test.slice(0, REQUESTS);
    const requestId = (r: number) => `${run}-${r}`;
    const messages: Message[] = rows.map((row, r) => ({ ...featureMessage(requestId(r), Array.from(data.X[row]!)), partition: r % 3 }));
    const poison = { ...featureMessage(`${run}-poison`, Array.from(data.X[rows[0]!]!)), headers: codecs.prediction.headers, partition: 0 };
    await produce(kafka, topics.features, [...messages.slice(0, 150), poison, ...messages.slice(150)]);

    // Every prediction (3 per request) consumed and committed by the aggregator, then the fused topic read to its end.
    await eventually(() => pipeline!.aggregators[0]!.stats.fused >= REQUESTS, `${REQUESTS} fused results`, 120_000);
    await groupReached(kafka, `${topics.predictions}-aggregator`, topics.predictions, await endOffsets(kafka, topics.predictions));
    const fused = await readToEnd<FusedPrediction>(kafka, topics.fused, (v, h) => codecs.fusedPrediction.decode(v, h as never));

    const byKey = new Map<string, FusedPrediction[]>();
    for (const f of fused) byKey.set(f.key, [...(byKey.get(f.key) ?? []), f.value]);
    expect(byKey.size).toBe(REQUESTS);
    expect([...byKey.values()].every((copies) => copies.length === 1)).toBe(true);
    expect(byKey.has(`${run}-poison`)).toBe(false);

    // The fused probabilities are the soft vote of the three models as the project computes them.
    const reference = await Promise.all(
      [artifactOf('random-forest'), artifactOf('logistic-regression'), artifactOf('decision-tree')].map((p) => loadArtifact(p)),
    );
    let maxDifference = 0;
    rows.forEach((row, r) => {
      const result = byKey.get(requestId(r))![0]!;
      expect(result.status).toBe('COMPLETE');
      expect(result.contributors.map((c) => c.modelId).sort()).toEqual([...models].sort());
      expect(result.classes).toEqual(manifest.classes);
      const x = data.X[row]!;
      const expected = manifest.classes.map((_, c) => reference.reduce((s, { model }) => s + model.predictProba(x)[c]!, 0) / 3);
      result.probabilities!.forEach((p, c) => {
        maxDifference = Math.max(maxDifference, Math.abs(p - expected[c]!));
      });
    });
    expect(maxDifference).toBeLessThan(1e-6);

    // The poison pill: a dead letter from each worker, with its reason and the original bytes.
    const dead = await readToEnd<DeadLetter>(kafka, topics.deadLetters, (v, h) => codecs.deadLetter.decode(v, h as never));
    const services = dead
      .filter((d) => d.key === `${run}-poison`)
      .map((d) => d.value.service)
      .sort();
    expect(services).toEqual(models.map((m) => `worker:${m}`).sort());
    for (const d of dead) {
      expect(d.value.reasonCode).toBe('SCHEMA_MISMATCH');
      expect(d.value.value?.equals(poison.value as Buffer)).toBe(true);
    }

    // Both processes stop cleanly on SIGTERM.
    expect(await Promise.all(children.splice(0).map(stop))).toEqual([0, 0]);
  });

  it('a worker refuses to start when the predictions topic has fewer partitions than the features topic', async () => {
    const kafka = testKafka();
    const topics = withPrefix(`${uniqueName('t')}-`);
    const admin = kafka.admin();
    await admin.connect();
    try {
      await ensureTopics(admin, [topics.features], 3);
      await ensureTopics(admin, [topics.predictions, topics.deadLetters], 1);
    } finally {
      await admin.disconnect();
    }
    const artifact = manifest.models.find((m) => m.family === 'logistic-regression')!.artifactPath;
    const worker = new ModelWorker({ kafka, topics, runner: await BuiltinRunner.load(artifact), logger: quietLogger });
    await expect(worker.start()).rejects.toThrow(/has 1 partitions, fewer than .* \(3\)/);
    await worker.stop();

    const env = { ...process.env, ...topicsToEnv(topics), KAFKA_BROKERS: testInfra().kafkaBrokers.join(',') };
    const python = spawnSync(PYTHON, [join(repoRoot(), 'examples', 'python', 'worker.py'), '--artifact', artifact], { env, encoding: 'utf8', timeout: 60_000 });
    expect(python.status).not.toBe(0);
    expect(python.stderr).toMatch(/has 1 partitions, fewer than .* \(3\)/);
  });
});
