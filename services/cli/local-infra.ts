import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { createKafka, ensureTopics } from '../shared/kafka.js';
import type { Logger } from '../shared/log.js';
import { repoRoot } from '../shared/repo-root.js';
import type { RuntimeConfig } from '../shared/runtime-config.js';
import { allTopics } from '../shared/topics.js';
import { EnsembleError } from '../shared/errors.js';

/**
 * The local Kafka and Redis processes the demo and the benchmark run on (infra/local/*.sh), plus
 * the project's topics. `up` says what it started, so `down` stops only that.
 */
export interface StartedInfra {
  kafka: boolean;
  redis: boolean;
}

function script(name: 'kafka' | 'redis', action: string, env: NodeJS.ProcessEnv): { status: number; output: string } {
  const result = spawnSync('bash', [join(repoRoot(), 'infra', 'local', `${name}.sh`), action], { env, encoding: 'utf8' });
  return { status: result.status ?? 1, output: `${result.stdout ?? ''}${result.stderr ?? ''}`.trim() };
}

function running(name: 'kafka' | 'redis', env: NodeJS.ProcessEnv): boolean {
  return script(name, 'status', env).status === 0;
}

export async function infraUp(runtime: RuntimeConfig, logger: Logger, env: NodeJS.ProcessEnv = process.env): Promise<StartedInfra> {
  const started: StartedInfra = { kafka: false, redis: false };
  for (const name of ['redis', 'kafka'] as const) {
    if (running(name, env)) continue;
    logger.info(`starting local ${name}`);
    const r = script(name, 'start', env);
    if (r.status !== 0) throw new EnsembleError(`could not start local ${name}:\n${r.output}`, { code: 'INFRA_START' });
    started[name] = true;
  }
  const kafka = createKafka({ brokers: runtime.kafkaBrokers, clientId: 'ensemble-stream-infra', logger });
  const admin = kafka.admin();
  await admin.connect();
  try {
    const created = await ensureTopics(admin, allTopics(runtime.topics), runtime.partitions);
    if (created.length > 0) logger.info('created topics', { topics: created, partitions: runtime.partitions });
  } finally {
    await admin.disconnect();
  }
  return started;
}

export function infraDown(started: StartedInfra = { kafka: true, redis: true }, env: NodeJS.ProcessEnv = process.env): void {
  if (started.kafka) script('kafka', 'stop', env);
  if (started.redis) script('redis', 'stop', env);
}
