import { afterAll, describe, expect, it } from 'vitest';
import { createKafka } from '../../services/shared/kafka.js';
import { Secret } from '../../services/shared/secret.js';
import { topicsToEnv } from '../../services/shared/topics.js';
import { uniqueName } from '../support/ids.js';
import { classificationConfig, countByKey, createTestTopics, eventually, featureMessage, produce, quietLogger, tailFused } from '../support/pipeline.js';
import { credentialsInfra } from './credentials-infra.js';
import { ServiceProcesses } from './service-processes.js';

// Services given credentials through the environment, as a deployment gives them: a broker with a
// SASL_PLAINTEXT SCRAM-SHA-256 listener and a Redis whose only user is an ACL user (run.sh).
const MODELS = ['c1', 'c2'];
const FEATURES = [0.1, 0.2, 0.3];
const WRONG_KAFKA_PASSWORD = `wrong-kafka-${uniqueName('pw')}`;
const WRONG_REDIS_PASSWORD = `wrong-redis-${uniqueName('pw')}`;

describe('credentials for Kafka (SASL SCRAM) and Redis (ACL user)', () => {
  const infra = credentialsInfra();
  const processes = new ServiceProcesses();
  const kafka = createKafka({
    brokers: infra.scramBrokers,
    clientId: 'credentials-test',
    logger: quietLogger,
    security: { sasl: { mechanism: 'scram-sha-256', username: infra.scramUser, password: new Secret(infra.scramPassword) } },
  });
  const passwordFile = processes.writeFile('kafka-password', `${infra.scramPassword}\n`);
  const serviceEnv = async () => {
    const topics = await createTestTopics(kafka);
    const env: NodeJS.ProcessEnv = {
      PATH: process.env.PATH,
      ...topicsToEnv(topics),
      KAFKA_BROKERS: infra.scramBrokers.join(','),
      KAFKA_SASL_MECHANISM: 'scram-sha-256',
      KAFKA_SASL_USERNAME: infra.scramUser,
      KAFKA_SASL_PASSWORD_FILE: passwordFile,
      REDIS_URL: infra.aclRedisUrl,
      REDIS_USERNAME: infra.aclUser,
      REDIS_PASSWORD: infra.aclPassword,
      ES_REDIS_NAMESPACE: uniqueName('cred'),
      ES_AGGREGATOR_GROUP: uniqueName('cred-agg'),
      LOG_LEVEL: 'info',
      ES_METRICS_PORT: '0',
    };
    return { topics, env };
  };
  const startWorker = (id: string, env: NodeJS.ProcessEnv) =>
    processes.start(`worker-${id}`, ['worker', '--synthetic', '3', '--model-id', id], { ...env, ES_INSTANCE_ID: uniqueName(id) });

  afterAll(async () => {
    await processes.stopAll();
  });

  it('runs the pipeline with the right credentials, and SIGTERM drains every service to exit 0', async () => {
    const { topics, env } = await serviceEnv();
    for (const id of MODELS) startWorker(id, env);
    const config = processes.writeConfig(classificationConfig(MODELS));
    processes.start('aggregator', ['aggregator', '--config', config], { ...env, ES_INSTANCE_ID: uniqueName('agg') });
    const fused = await tailFused(kafka, topics);
    const total = 200;
    await produce(
      kafka,
      topics.features,
      Array.from({ length: total }, (_, i) => featureMessage(`cred-${i}`, FEATURES)),
    );
    await eventually(() => new Set(fused.received.map((f) => f.key)).size >= total, `${total} fused results`, 90_000);
    await fused.stop();
    expect(countByKey(fused.received).size).toBe(total);
    expect(fused.received.every((f) => f.value.status === 'COMPLETE')).toBe(true);
    expect(await processes.terminate()).toEqual([0, 0, 0]);
  });

  it('a wrong Kafka password stops the service at start-up, with a message that names the problem', async () => {
    const { env } = await serviceEnv();
    const worker = startWorker('c1', { ...env, KAFKA_SASL_PASSWORD_FILE: processes.writeFile('wrong-password', WRONG_KAFKA_PASSWORD) });
    expect(await worker.exited).toBe(1);
    const lines = processes.logLines().filter((l) => l.includes('failed to start'));
    expect(lines.join('\n')).toMatch(/SASL SCRAM SHA256 authentication failed: .*invalid credentials/);
  });

  it('a missing or unreadable secret is a configuration error before anything connects', async () => {
    const { env } = await serviceEnv();
    const { KAFKA_SASL_PASSWORD_FILE: _, ...withoutPassword } = env;
    const missing = startWorker('c1', withoutPassword);
    const unreadable = startWorker('c2', { ...env, KAFKA_SASL_PASSWORD_FILE: `${processes.dir}/no-such-file` });
    expect(await missing.exited).toBe(2);
    expect(await unreadable.exited).toBe(2);
    const text = processes.logLines().join('\n');
    expect(text).toContain('KAFKA_SASL_MECHANISM is scram-sha-256 but neither KAFKA_SASL_PASSWORD nor KAFKA_SASL_PASSWORD_FILE is set');
    expect(text).toMatch(/KAFKA_SASL_PASSWORD_FILE: cannot read ".*no-such-file" \(ENOENT\)/);
  });

  it('a wrong Redis password stops the aggregator at start-up, with a message that names the problem', async () => {
    const { env } = await serviceEnv();
    const config = processes.writeConfig(classificationConfig(MODELS));
    const aggregator = processes.start('aggregator', ['aggregator', '--config', config], {
      ...env,
      REDIS_PASSWORD: WRONG_REDIS_PASSWORD,
      ES_INSTANCE_ID: uniqueName('agg'),
    });
    expect(await aggregator.exited).toBe(1);
    expect(processes.logLines().join('\n')).toMatch(/Redis at redis:\/\/es-acl-user@127\.0\.0\.1:\d+ refused the credentials: WRONGPASS/);
  });

  it('no log line of any of these services holds a password, right or wrong', () => {
    const lines = processes.logLines();
    expect(lines.length).toBeGreaterThan(10);
    for (const secret of [infra.scramPassword, infra.aclPassword, WRONG_KAFKA_PASSWORD, WRONG_REDIS_PASSWORD]) {
      expect(lines.filter((l) => l.includes(secret))).toEqual([]);
    }
  });
});
