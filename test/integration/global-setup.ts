// Once per integration run: decide where Kafka and Redis are, make sure both answer, and hand the
// addresses to the tests (`testInfra()` in test/support/infra.ts).
//
// The one switch: with KAFKA_BROKERS (comma-separated host:port) and REDIS_URL both set, the run
// uses them (`external`); with neither, it starts containers through the Docker API (`containers`).
import type { TestProject } from 'vitest/node';
import { startInfraContainers, type StartedInfra } from '../support/containers.js';
import { assertReachable, type TestInfra } from '../support/infra.js';
import { provideLocalEngineIfMissing } from '../support/local-engine.js';

/** KAFKA_BROKERS or REDIS_URL set without the other: the run would silently mix two setups. */
export class InfraConfigError extends Error {
  override readonly name = 'InfraConfigError';
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const external = externalInfra(process.env);
  let started: StartedInfra | undefined;
  let infra: TestInfra;
  if (external) {
    infra = external;
  } else {
    provideLocalEngineIfMissing();
    started = await startInfraContainers();
    infra = {
      mode: 'containers',
      kafkaBrokers: started.kafkaBrokers,
      redisUrl: started.redisUrl,
      containers: started.containers,
    };
  }
  try {
    await assertReachable(infra);
  } catch (error) {
    await started?.stop();
    throw error;
  }
  console.log(summary(infra, started));
  project.provide('infra', infra);
  return async () => {
    await started?.stop();
  };
}

function externalInfra(env: NodeJS.ProcessEnv): TestInfra | undefined {
  const brokers = env.KAFKA_BROKERS?.trim();
  const redisUrl = env.REDIS_URL?.trim();
  if (!brokers && !redisUrl) return undefined;
  if (!brokers || !redisUrl) {
    throw new InfraConfigError(
      `Only ${brokers ? 'KAFKA_BROKERS' : 'REDIS_URL'} is set. Set both KAFKA_BROKERS and REDIS_URL to ` +
        `test against running services, or neither to start containers.`,
    );
  }
  return {
    mode: 'external',
    kafkaBrokers: brokers
      .split(',')
      .map((b) => b.trim())
      .filter((b) => b !== ''),
    redisUrl,
    containers: [],
  };
}

function summary(infra: TestInfra, started: StartedInfra | undefined): string {
  const where = `kafka ${infra.kafkaBrokers.join(',')}, redis ${infra.redisUrl}`;
  if (!started) return `integration infra: external (${where})`;
  const images = infra.containers.map((c) => c.image).join(', ');
  return `integration infra: containers (${where}; ${images}; ready in kafka ${started.startupMs.kafka} ms, ` + `redis ${started.startupMs.redis} ms)`;
}
