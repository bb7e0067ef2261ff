import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { validateAggregatorConfig } from '../../services/core/ensemble-config.js';
import { readManifest } from '../../services/cli/training.js';
import { repoRoot } from '../../services/shared/repo-root.js';
import { topicsToEnv } from '../../services/shared/topics.js';
import { BuiltinRunner } from '../../services/worker/builtin-runner.js';
import { testInfra } from '../support/infra.js';
import { createTestTopics, TestPipeline, testKafka } from '../support/pipeline.js';

// The README's "From another language" snippets, extracted and run as printed against the real
// broker and a pipeline of the project's letter models.
const PYTHON = '/usr/bin/python3';
const CLI = join(repoRoot(), 'dist', 'services', 'cli', 'main.js');

/** The README's python blocks, by the file name on their first line (`# producer.py: ...`). */
function readmeSnippets(): Map<string, string> {
  const readme = readFileSync(join(repoRoot(), 'README.md'), 'utf8');
  const snippets = new Map<string, string>();
  for (const match of readme.matchAll(/```python\n(# (\S+\.py)[^\n]*\n[\s\S]*?)```/g)) snippets.set(match[2]!, match[1]!);
  return snippets;
}

describe("the README's Python clients", () => {
  let pipeline: TestPipeline | undefined;
  beforeAll(() => {
    if (!existsSync(PYTHON)) throw new Error(`${PYTHON} is missing: apt-get install python3-confluent-kafka python3-avro`);
    if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run npm run build first (npm test does)`);
    const trained = spawnSync(process.execPath, [CLI, 'train'], { encoding: 'utf8', env: { ...process.env, LOG_LEVEL: 'error' } });
    if (trained.status !== 0) throw new Error(`train failed:\n${trained.stdout}\n${trained.stderr}`);
  }, 180_000);
  afterAll(async () => {
    await pipeline?.stop();
  });

  it('the producer sends a feature event and the consumer prints its fused result, class labels from the record', async () => {
    const snippets = readmeSnippets();
    expect([...snippets.keys()].sort()).toEqual(['consumer.py', 'producer.py']);
    const dir = mkdtempSync(join(tmpdir(), 'readme-clients-'));
    for (const [name, code] of snippets) writeFileSync(join(dir, name), code);

    const manifest = await readManifest('letter');
    if (manifest === undefined) throw new Error('train left no manifest');
    const kafka = testKafka();
    const topics = await createTestTopics(kafka, 3);
    pipeline = new TestPipeline(kafka, topics);
    const models = manifest.models.filter((m) => m.family === 'logistic-regression' || m.family === 'random-forest');
    for (const m of models) await pipeline.startWorker(await BuiltinRunner.load(m.artifactPath));
    await pipeline.startAggregator(
      validateAggregatorConfig({
        task: 'classification',
        classes: manifest.classes,
        strategy: 'soft-voting',
        models: models.map((m) => ({ id: m.modelId })),
        deadlineMs: 60_000,
      }),
    );

    const env = { ...process.env, ...topicsToEnv(topics), KAFKA_BROKERS: testInfra().kafkaBrokers.join(',') };
    // Asynchronously: the workers and the aggregator of this test run in this process.
    const run = (name: string, args: string[] = []) =>
      new Promise<string>((resolve, reject) => {
        const child = spawn(PYTHON, [join(dir, name), ...args], { cwd: repoRoot(), env, stdio: ['ignore', 'pipe', 'pipe'] });
        let out = '';
        let err = '';
        child.stdout.on('data', (d: Buffer) => (out += d.toString()));
        child.stderr.on('data', (d: Buffer) => (err += d.toString()));
        const timer = setTimeout(() => child.kill('SIGTERM'), 90_000);
        child.once('exit', (code, signal) => {
          clearTimeout(timer);
          if (code === 0) resolve(out.trim());
          else reject(new Error(`${name} failed (${code ?? signal}):\n${out}\n${err}`));
        });
      });
    const requestId = await run('producer.py');
    expect(requestId).toMatch(/^[0-9a-f-]{36}$/);
    const printed = await run('consumer.py', [requestId]);
    // e.g. COMPLETE T ['letter-logistic-regression', 'letter-random-forest'] [('T', 0.93), ...]
    expect(printed).toMatch(/^COMPLETE T \[/);
    for (const m of models) expect(printed).toContain(`'${m.modelId}'`);
    expect(printed).toMatch(/\[\('T', 0\.\d+\)/);
  });
});
