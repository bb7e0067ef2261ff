import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { describe, expect, it } from 'vitest';
import { topicConfig } from '../../services/shared/kafka.js';
import { readKafkaSecurity, readRedisConnection, readRuntimeConfig, readSupervision, readTopicReplication } from '../../services/shared/runtime-config.js';

const dir = mkdtempSync(join(tmpdir(), 'es-runtime-config-'));
function file(name: string, content: string): string {
  const path = join(dir, name);
  writeFileSync(path, content);
  return path;
}

describe('topic replication', () => {
  it("defaults to the broker's own (-1), never a hard-coded 1", () => {
    expect(readTopicReplication({})).toEqual({ replicationFactor: -1, minInsyncReplicas: -1 });
    expect(topicConfig('t', 3)).toEqual({ topic: 't', numPartitions: 3, replicationFactor: -1 });
  });

  it('takes RF and min ISR from the environment and puts min ISR in the topic config', () => {
    const replication = readTopicReplication({ ES_REPLICATION_FACTOR: '3', ES_MIN_INSYNC_REPLICAS: '2' });
    expect(topicConfig('t', 6, replication)).toEqual({
      topic: 't',
      numPartitions: 6,
      replicationFactor: 3,
      configEntries: [{ name: 'min.insync.replicas', value: '2' }],
    });
  });

  it('refuses a min ISR above the replication factor, and nonsense', () => {
    expect(() => readTopicReplication({ ES_REPLICATION_FACTOR: '2', ES_MIN_INSYNC_REPLICAS: '3' })).toThrow(
      /ES_MIN_INSYNC_REPLICAS \(3\) exceeds ES_REPLICATION_FACTOR \(2\)/,
    );
    expect(() => readTopicReplication({ ES_REPLICATION_FACTOR: '0' })).toThrow(/ES_REPLICATION_FACTOR/);
  });
});

describe('Kafka credentials', () => {
  it('is plaintext without settings', () => {
    expect(readKafkaSecurity({})).toEqual({});
  });

  it('reads SASL SCRAM with the password from a file, and never shows it', () => {
    const security = readKafkaSecurity({
      KAFKA_SASL_MECHANISM: 'SCRAM-SHA-512',
      KAFKA_SASL_USERNAME: 'svc',
      KAFKA_SASL_PASSWORD_FILE: file('kafka-password', 'hunter2-secret\n'),
    });
    expect(security.sasl?.mechanism).toBe('scram-sha-512');
    expect(security.sasl?.password.reveal()).toBe('hunter2-secret');
    for (const shown of [JSON.stringify(security), inspect(security, { depth: 5 }), String(security.sasl?.password)]) expect(shown).not.toContain('hunter2');
  });

  it('names what is missing or wrong', () => {
    expect(() => readKafkaSecurity({ KAFKA_SASL_MECHANISM: 'gssapi', KAFKA_SASL_USERNAME: 'u', KAFKA_SASL_PASSWORD: 'p' })).toThrow(
      /KAFKA_SASL_MECHANISM: "gssapi" is not one of plain, scram-sha-256, scram-sha-512/,
    );
    expect(() => readKafkaSecurity({ KAFKA_SASL_MECHANISM: 'plain', KAFKA_SASL_USERNAME: 'u' })).toThrow(
      /neither KAFKA_SASL_PASSWORD nor KAFKA_SASL_PASSWORD_FILE/,
    );
    expect(() => readKafkaSecurity({ KAFKA_SASL_USERNAME: 'u', KAFKA_SASL_PASSWORD: 'p' })).toThrow(/without KAFKA_SASL_MECHANISM/);
    expect(() =>
      readKafkaSecurity({ KAFKA_SASL_MECHANISM: 'plain', KAFKA_SASL_USERNAME: 'u', KAFKA_SASL_PASSWORD: 'p', KAFKA_SASL_PASSWORD_FILE: '/x' }),
    ).toThrow(/both set/);
    expect(() => readKafkaSecurity({ KAFKA_SASL_MECHANISM: 'plain', KAFKA_SASL_USERNAME: 'u', KAFKA_SASL_PASSWORD_FILE: join(dir, 'absent') })).toThrow(
      /KAFKA_SASL_PASSWORD_FILE: cannot read ".*absent" \(ENOENT\)/,
    );
  });

  it('reads TLS files; a client certificate needs its key', () => {
    const ca = file('ca.pem', 'CA PEM');
    expect(readKafkaSecurity({ KAFKA_TLS_CA_FILE: ca }).tls).toEqual({ ca: 'CA PEM', rejectUnauthorized: true });
    expect(readKafkaSecurity({ KAFKA_TLS: 'true', KAFKA_TLS_REJECT_UNAUTHORIZED: 'false' }).tls).toEqual({ rejectUnauthorized: false });
    expect(() => readKafkaSecurity({ KAFKA_TLS_CERT_FILE: ca })).toThrow(/KAFKA_TLS_CERT_FILE and KAFKA_TLS_KEY_FILE go together/);
    expect(() => readKafkaSecurity({ KAFKA_TLS: 'yes' })).toThrow(/KAFKA_TLS: "yes" is not true or false/);
  });
});

describe('Redis connection', () => {
  it('is one server by default', () => {
    expect(readRedisConnection({})).toEqual({ nodes: [{ host: '127.0.0.1', port: 6379 }], cluster: false, db: 0 });
  });

  it('is a cluster when REDIS_URL names several nodes or REDIS_CLUSTER=true', () => {
    const c = readRedisConnection({ REDIS_URL: 'redis://10.0.0.1:7001,10.0.0.2:7002,redis://10.0.0.3' });
    expect(c.cluster).toBe(true);
    expect(c.nodes).toEqual([
      { host: '10.0.0.1', port: 7001 },
      { host: '10.0.0.2', port: 7002 },
      { host: '10.0.0.3', port: 6379 },
    ]);
    expect(readRedisConnection({ REDIS_URL: 'redis://seed:7001', REDIS_CLUSTER: 'true' }).cluster).toBe(true);
    expect(() => readRedisConnection({ REDIS_URL: 'redis://a:1,b:2', REDIS_CLUSTER: 'false' })).toThrow(/REDIS_CLUSTER is false/);
    expect(() => readRedisConnection({ REDIS_URL: 'redis://a:1,b:2/3' })).toThrow(/only database 0/);
  });

  it('takes an ACL user and password from the URL or the environment, TLS from rediss://', () => {
    const fromUrl = readRedisConnection({ REDIS_URL: 'rediss://app:s3cr%40t@cache:6380/2' });
    expect(fromUrl).toMatchObject({ username: 'app', db: 2, tls: { rejectUnauthorized: true }, nodes: [{ host: 'cache', port: 6380 }] });
    expect(fromUrl.password?.reveal()).toBe('s3cr@t');
    const fromEnv = readRedisConnection({
      REDIS_URL: 'redis://cache:6379',
      REDIS_USERNAME: 'app',
      REDIS_PASSWORD_FILE: file('redis-password', 'pw-from-file'),
    });
    expect(fromEnv.password?.reveal()).toBe('pw-from-file');
    expect(() => readRedisConnection({ REDIS_USERNAME: 'app' })).toThrow(/REDIS_USERNAME is "app" but no password/);
  });

  it('never repeats a password from REDIS_URL in an error or in the config', () => {
    expect(() => readRedisConnection({ REDIS_URL: 'redis://app:topsecret@cache:99999' })).toThrow(/port 99999/);
    try {
      readRedisConnection({ REDIS_URL: 'redis://app:topsecret@cache:99999' });
    } catch (error) {
      expect(String(error)).not.toContain('topsecret');
    }
    const runtime = readRuntimeConfig({ REDIS_URL: 'redis://app:topsecret@cache:6379' });
    expect(runtime.redisUrl).toBe('redis://app:[redacted]@cache:6379');
    expect(JSON.stringify(runtime)).not.toContain('topsecret');
  });
});

describe('supervision', () => {
  it('serves no health endpoints unless a port is given; the drain has a bound', () => {
    expect(readSupervision({})).toEqual({ healthHost: '0.0.0.0', shutdownTimeoutMs: 20_000, redisLostAfterMs: 60_000 });
    expect(readSupervision({ ES_HEALTH_PORT: '8081', ES_SHUTDOWN_TIMEOUT_MS: '5000' })).toMatchObject({ healthPort: 8081, shutdownTimeoutMs: 5000 });
    expect(() => readSupervision({ ES_HEALTH_PORT: 'http' })).toThrow(/ES_HEALTH_PORT/);
  });
});
