import { hostname } from 'node:os';
import { ConfigError } from './errors.js';
import type { LogLevel } from './log.js';
import { readPemFile, readSecret, Secret } from './secret.js';
import { type Topics, topicsFromEnv } from './topics.js';

/**
 * Where the services find Kafka and Redis and what they call things. Read and validated once, at the
 * edge (a service's main), then passed inward as a typed object.
 */
export interface RuntimeConfig {
  kafkaBrokers: string[];
  /** SASL and TLS of the Kafka connection (none: plaintext). */
  kafkaSecurity: KafkaSecurity;
  /** Replication of the topics this project creates (-1: the broker's defaults). */
  replication: TopicReplication;
  /** REDIS_URL as given: its password, if any, is redacted. Connect with `redis`. */
  redisUrl: string;
  redis: RedisConnection;
  topics: Topics;
  /** Partition count used when this project creates its topics. */
  partitions: number;
  /** Prefix of every Redis key this deployment writes (tests give each run its own). */
  redisNamespace: string;
  /** Distinguishes instances in logs, metrics and transactional ids. */
  instanceId: string;
  logLevel: LogLevel;
  /** How the pipeline's consumers (workers, aggregator) fetch. */
  fetch: FetchSettings;
  groups: GroupSettings;
  /** Aggregators: the backstop sweep for expired requests, ms (ES_SWEEP_INTERVAL_MS). */
  sweepIntervalMs: number;
  supervision: SupervisionSettings;
}

/** Consumer groups of the pipeline's services and their sessions. */
export interface GroupSettings {
  /** ES_AGGREGATOR_GROUP; unset: the aggregator's default group. */
  aggregator?: string;
  /** ES_EVALUATOR_GROUP; unset: the evaluator's default group. */
  evaluator?: string;
  /** Session of aggregators and workers: a SIGKILLed instance's partitions move after this (ES_SESSION_TIMEOUT_MS). */
  sessionTimeoutMs: number;
}

/** What a supervisor (systemd, Kubernetes) relies on. */
export interface SupervisionSettings {
  /** Port of /healthz and /readyz; undefined: no health server (several services share a host). */
  healthPort?: number;
  healthHost: string;
  /** SIGTERM: finish the batch in hand, commit, leave the group within this, else exit 1. */
  shutdownTimeoutMs: number;
  /** A Redis connection down this long is lost for good: the process exits 1 for a restart. */
  redisLostAfterMs: number;
}

/** LOG_LEVEL, for a process that needs nothing else of the runtime config (the model server). */
export function readLogLevel(env: NodeJS.ProcessEnv = process.env): LogLevel {
  const logLevel = (env.LOG_LEVEL ?? 'info') as LogLevel;
  if (!['debug', 'info', 'warn', 'error', 'silent'].includes(logLevel)) {
    throw new ConfigError(`LOG_LEVEL: "${logLevel}" is not one of debug, info, warn, error, silent`);
  }
  return logLevel;
}

export function readSupervision(env: NodeJS.ProcessEnv = process.env): SupervisionSettings {
  const port = env.ES_HEALTH_PORT;
  const healthPort = port === undefined || port === '' ? undefined : Number(port);
  if (healthPort !== undefined && !(Number.isInteger(healthPort) && healthPort >= 0 && healthPort < 65536)) {
    throw new ConfigError(`ES_HEALTH_PORT: "${port}" is not a TCP port`);
  }
  return {
    ...(healthPort === undefined ? {} : { healthPort }),
    healthHost: env.ES_HEALTH_HOST ?? '0.0.0.0',
    shutdownTimeoutMs: positiveInt(env.ES_SHUTDOWN_TIMEOUT_MS ?? '20000', 'ES_SHUTDOWN_TIMEOUT_MS'),
    redisLostAfterMs: positiveInt(env.ES_REDIS_LOST_AFTER_MS ?? '60000', 'ES_REDIS_LOST_AFTER_MS'),
  };
}

/**
 * The broker answers a fetch once `minBytes` are ready or `maxWaitMs` passed. Every fetch costs the
 * broker and kafkajs a fixed amount of CPU however few records it returns, so waiting for more per
 * fetch is what keeps a loaded machine from spending itself on round trips; it adds at most
 * `maxWaitMs` per hop when traffic is light.
 */
export interface FetchSettings {
  maxWaitMs: number;
  minBytes: number;
  /**
   * Once a fetch came back empty, the next waits this long for its first record (adaptive-fetch.ts);
   * 0: never; undefined: the consumer's heartbeat interval (idleWaitFor).
   */
  idleWaitMs?: number;
}

/**
 * Measured with the bench on 2 cores (synthetic models, 10,000 requests): against 20 ms / 1 byte,
 * 10 ms / 32 KiB gave p50 41 vs 113 ms at 200 requests/s, p99 344-460 vs 689-1046 ms at 2,000/s.
 * A fetch returning as soon as one record is there makes every loop spin on a loaded machine.
 */
export const FETCH_DEFAULTS: FetchSettings = { maxWaitMs: 10, minBytes: 32 * 1024 };

export type SaslMechanism = 'plain' | 'scram-sha-256' | 'scram-sha-512';

export interface TlsSettings {
  /** PEM of the certificate authorities to trust (default: the system's). */
  ca?: string;
  /** PEM client certificate and key (mutual TLS). */
  cert?: string;
  key?: Secret;
  rejectUnauthorized: boolean;
}

export interface KafkaSecurity {
  sasl?: { mechanism: SaslMechanism; username: string; password: Secret };
  tls?: TlsSettings;
}

export interface TopicReplication {
  /** -1: the broker's `default.replication.factor`. */
  replicationFactor: number;
  /** -1: the broker's `min.insync.replicas`. */
  minInsyncReplicas: number;
}

export interface RedisConnection {
  nodes: { host: string; port: number }[];
  /** ioredis Cluster client (several nodes in REDIS_URL, or REDIS_CLUSTER=true). */
  cluster: boolean;
  username?: string;
  password?: Secret;
  tls?: TlsSettings;
  db: number;
}

export const DEFAULT_KAFKA_BROKERS = '127.0.0.1:9092';
export const DEFAULT_REDIS_URL = 'redis://127.0.0.1:6379';

export function readRuntimeConfig(env: NodeJS.ProcessEnv = process.env): RuntimeConfig {
  const brokers = (env.KAFKA_BROKERS ?? DEFAULT_KAFKA_BROKERS)
    .split(',')
    .map((b) => b.trim())
    .filter((b) => b !== '');
  if (brokers.length === 0) throw new ConfigError('KAFKA_BROKERS is empty');
  for (const b of brokers) {
    if (!/^[^:\s]+:\d{1,5}$/.test(b)) throw new ConfigError(`KAFKA_BROKERS: "${b}" is not host:port`);
  }
  const redis = readRedisConnection(env);
  const partitions = positiveInt(env.ES_PARTITIONS ?? '3', 'ES_PARTITIONS');
  const logLevel = readLogLevel(env);
  const redisNamespace = env.ES_REDIS_NAMESPACE ?? 'es';
  if (!/^[A-Za-z0-9_.-]+$/.test(redisNamespace)) {
    throw new ConfigError(`ES_REDIS_NAMESPACE: "${redisNamespace}" may hold only letters, digits, _ . -`);
  }
  return {
    kafkaBrokers: brokers,
    kafkaSecurity: readKafkaSecurity(env),
    replication: readTopicReplication(env),
    redisUrl: redactUrl(env.REDIS_URL ?? DEFAULT_REDIS_URL),
    redis,
    topics: topicsFromEnv(env),
    partitions,
    redisNamespace,
    instanceId: env.ES_INSTANCE_ID ?? `${hostname()}-${process.pid}`,
    logLevel,
    fetch: {
      maxWaitMs: positiveInt(env.ES_FETCH_MAX_WAIT_MS ?? String(FETCH_DEFAULTS.maxWaitMs), 'ES_FETCH_MAX_WAIT_MS'),
      minBytes: positiveInt(env.ES_FETCH_MIN_BYTES ?? String(FETCH_DEFAULTS.minBytes), 'ES_FETCH_MIN_BYTES'),
      ...(env.ES_FETCH_IDLE_WAIT_MS === undefined
        ? {}
        : { idleWaitMs: env.ES_FETCH_IDLE_WAIT_MS === '0' ? 0 : positiveInt(env.ES_FETCH_IDLE_WAIT_MS, 'ES_FETCH_IDLE_WAIT_MS') }),
    },
    groups: {
      ...(env.ES_AGGREGATOR_GROUP === undefined ? {} : { aggregator: env.ES_AGGREGATOR_GROUP }),
      ...(env.ES_EVALUATOR_GROUP === undefined ? {} : { evaluator: env.ES_EVALUATOR_GROUP }),
      sessionTimeoutMs: positiveInt(env.ES_SESSION_TIMEOUT_MS ?? '4000', 'ES_SESSION_TIMEOUT_MS'),
    },
    sweepIntervalMs: positiveInt(env.ES_SWEEP_INTERVAL_MS ?? '1000', 'ES_SWEEP_INTERVAL_MS'),
    supervision: readSupervision(env),
  };
}

export function positiveInt(text: string, name: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n <= 0) throw new ConfigError(`${name}: "${text}" is not a positive integer`);
  return n;
}

/** -1 or a positive integer. */
function brokerDefaultOrPositive(text: string, name: string): number {
  if (text.trim() === '-1') return -1;
  return positiveInt(text, `${name} (-1: the broker's default)`);
}

export function readTopicReplication(env: NodeJS.ProcessEnv = process.env): TopicReplication {
  const replicationFactor = brokerDefaultOrPositive(env.ES_REPLICATION_FACTOR ?? '-1', 'ES_REPLICATION_FACTOR');
  const minInsyncReplicas = brokerDefaultOrPositive(env.ES_MIN_INSYNC_REPLICAS ?? '-1', 'ES_MIN_INSYNC_REPLICAS');
  if (replicationFactor !== -1 && minInsyncReplicas > replicationFactor) {
    throw new ConfigError(`ES_MIN_INSYNC_REPLICAS (${minInsyncReplicas}) exceeds ES_REPLICATION_FACTOR (${replicationFactor}): no write could succeed`);
  }
  return { replicationFactor, minInsyncReplicas };
}

function flag(env: NodeJS.ProcessEnv, name: string, fallback: boolean): boolean {
  const text = env[name];
  if (text === undefined || text === '') return fallback;
  if (text === 'true' || text === '1') return true;
  if (text === 'false' || text === '0') return false;
  throw new ConfigError(`${name}: "${text}" is not true or false`);
}

/** TLS from `<PREFIX>_TLS` (or `forced`), `<PREFIX>_TLS_CA_FILE`, `_CERT_FILE`, `_KEY_FILE`, `_REJECT_UNAUTHORIZED`. */
function readTls(env: NodeJS.ProcessEnv, prefix: string, forced = false): TlsSettings | undefined {
  const files = ['CA_FILE', 'CERT_FILE', 'KEY_FILE'].filter((f) => (env[`${prefix}_TLS_${f}`] ?? '') !== '');
  const enabled = flag(env, `${prefix}_TLS`, forced || files.length > 0);
  if (!enabled) {
    if (files.length > 0) throw new ConfigError(`${prefix}_TLS is false but ${files.map((f) => `${prefix}_TLS_${f}`).join(', ')} is set`);
    return undefined;
  }
  const ca = readPemFile(env, `${prefix}_TLS_CA_FILE`);
  const cert = readPemFile(env, `${prefix}_TLS_CERT_FILE`);
  const keyText = readPemFile(env, `${prefix}_TLS_KEY_FILE`);
  if ((cert === undefined) !== (keyText === undefined)) throw new ConfigError(`${prefix}_TLS_CERT_FILE and ${prefix}_TLS_KEY_FILE go together`);
  return {
    ...(ca === undefined ? {} : { ca }),
    ...(cert === undefined ? {} : { cert }),
    ...(keyText === undefined ? {} : { key: new Secret(keyText) }),
    rejectUnauthorized: flag(env, `${prefix}_TLS_REJECT_UNAUTHORIZED`, true),
  };
}

const SASL_MECHANISMS: readonly SaslMechanism[] = ['plain', 'scram-sha-256', 'scram-sha-512'];

/** KAFKA_SASL_MECHANISM, KAFKA_SASL_USERNAME, KAFKA_SASL_PASSWORD (or _FILE), KAFKA_TLS*. */
export function readKafkaSecurity(env: NodeJS.ProcessEnv = process.env): KafkaSecurity {
  const mechanismText = env.KAFKA_SASL_MECHANISM;
  const username = env.KAFKA_SASL_USERNAME;
  const password = readSecret(env, 'KAFKA_SASL_PASSWORD');
  const security: KafkaSecurity = {};
  if (mechanismText === undefined || mechanismText === '') {
    if (username !== undefined || password !== undefined)
      throw new ConfigError('KAFKA_SASL_USERNAME or KAFKA_SASL_PASSWORD is set without KAFKA_SASL_MECHANISM (plain, scram-sha-256, scram-sha-512)');
  } else {
    const mechanism = mechanismText.toLowerCase() as SaslMechanism;
    if (!SASL_MECHANISMS.includes(mechanism)) throw new ConfigError(`KAFKA_SASL_MECHANISM: "${mechanismText}" is not one of ${SASL_MECHANISMS.join(', ')}`);
    if (username === undefined || username === '') throw new ConfigError(`KAFKA_SASL_MECHANISM is ${mechanism} but KAFKA_SASL_USERNAME is not set`);
    if (password === undefined)
      throw new ConfigError(`KAFKA_SASL_MECHANISM is ${mechanism} but neither KAFKA_SASL_PASSWORD nor KAFKA_SASL_PASSWORD_FILE is set`);
    security.sasl = { mechanism, username, password };
  }
  const tls = readTls(env, 'KAFKA');
  if (tls !== undefined) security.tls = tls;
  return security;
}

/** REDIS_URL without its password, for messages. */
export function redactUrl(url: string): string {
  return url.replace(/^(rediss?:\/\/[^:@/]*:)[^@/]*@/, '$1[redacted]@');
}

/**
 * REDIS_URL: `redis[s]://[user[:password]@]host:port[,host:port...][/db]`; several nodes (or
 * REDIS_CLUSTER=true) mean a Redis Cluster. REDIS_USERNAME and REDIS_PASSWORD (or _FILE) override
 * the URL's; `rediss://` or REDIS_TLS=true turn on TLS (REDIS_TLS_CA_FILE, ...).
 */
export function readRedisConnection(env: NodeJS.ProcessEnv = process.env): RedisConnection {
  const url = env.REDIS_URL ?? DEFAULT_REDIS_URL;
  const shown = redactUrl(url);
  // Later nodes may repeat the scheme (redis://a:1,redis://b:2).
  const match = /^(rediss?):\/\/(?:([^:@/]*)(?::([^@/]*))?@)?([^/@]+?)(?:\/(\d*))?$/.exec(url.replace(/,\s*rediss?:\/\//g, ','));
  if (match === null) throw new ConfigError(`REDIS_URL: "${shown}" is not redis[s]://[user[:password]@]host:port[,host:port...][/db]`);
  const [, scheme, urlUser, urlPassword, hostList, dbText] = match as unknown as [
    string,
    string,
    string | undefined,
    string | undefined,
    string,
    string | undefined,
  ];
  const nodes = hostList.split(',').map((entry) => {
    const node = /^([^:\s,]+)(?::(\d{1,5}))?$/.exec(entry.trim());
    if (node === null) throw new ConfigError(`REDIS_URL: "${entry.trim()}" in "${shown}" is not host[:port]`);
    const port = Number(node[2] ?? '6379');
    if (port < 1 || port > 65535) throw new ConfigError(`REDIS_URL: port ${port} in "${shown}" is out of range`);
    return { host: node[1] as string, port };
  });
  const cluster = flag(env, 'REDIS_CLUSTER', nodes.length > 1);
  if (!cluster && nodes.length > 1) throw new ConfigError(`REDIS_URL names ${nodes.length} nodes but REDIS_CLUSTER is false`);
  const db = dbText === undefined || dbText === '' ? 0 : Number(dbText);
  if (cluster && db !== 0) throw new ConfigError(`REDIS_URL: a Redis Cluster has only database 0, "${shown}" asks for ${db}`);
  const password =
    readSecret(env, 'REDIS_PASSWORD') ?? (urlPassword === undefined || urlPassword === '' ? undefined : new Secret(decodeURIComponent(urlPassword)));
  const username = env.REDIS_USERNAME ?? (urlUser === undefined || urlUser === '' ? undefined : decodeURIComponent(urlUser));
  if (username !== undefined && password === undefined)
    throw new ConfigError(`REDIS_USERNAME is "${username}" but no password is given (REDIS_PASSWORD, REDIS_PASSWORD_FILE or REDIS_URL)`);
  const tls = readTls(env, 'REDIS', scheme === 'rediss');
  return {
    nodes,
    cluster,
    ...(username === undefined ? {} : { username }),
    ...(password === undefined ? {} : { password }),
    ...(tls === undefined ? {} : { tls }),
    db,
  };
}
