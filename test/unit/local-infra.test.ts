import { describe, expect, it } from 'vitest';
import { clusterEnv, managesKafka } from '../../services/cli/local-infra.js';
import { readRuntimeConfig } from '../../services/shared/runtime-config.js';

const ONE = { brokers: 1, redisCluster: false };
const THREE = { brokers: 3, redisCluster: false };

function plan(env: NodeJS.ProcessEnv, shape = ONE) {
  const runtime = readRuntimeConfig(env);
  return { manages: managesKafka(runtime, shape, env), env: clusterEnv(runtime, shape, env) };
}

describe('local infra: which Kafka the local scripts look after', () => {
  it('without KAFKA_BROKERS: the local broker on its default port', () => {
    const p = plan({});
    expect(p.manages).toBe(true);
    expect(p.env.KAFKA_PORT).toBeUndefined();
  });

  it('one local address: that port, so a broker answering there (compose, a container) is used instead of starting one on 9092', () => {
    for (const host of ['127.0.0.1', 'localhost']) {
      const p = plan({ KAFKA_BROKERS: `${host}:39092` });
      expect(p.manages).toBe(true);
      expect(p.env.KAFKA_PORT).toBe('39092');
    }
  });

  it('brokers elsewhere, or several for one local node: left alone, they must answer as they are', () => {
    for (const brokers of ['kafka.internal:9092', '127.0.0.1:9092,127.0.0.1:9093']) {
      const p = plan({ KAFKA_BROKERS: brokers, KAFKA_PORT: '9092' });
      expect(p.manages).toBe(false);
      expect(p.env.KAFKA_PORT).toBe('9092');
    }
  });

  it('a local cluster: the ports of KAFKA_BROKERS, one per broker', () => {
    const p = plan({ KAFKA_BROKERS: '127.0.0.1:19092,127.0.0.1:19093,127.0.0.1:19094' }, THREE);
    expect(p.manages).toBe(true);
    expect(p.env.KAFKA_CLUSTER_PORTS).toBe('19092,19093,19094');
    expect(p.env.KAFKA_PORT).toBeUndefined();
  });
});
