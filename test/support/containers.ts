// Throwaway Kafka (one KRaft node) and Redis containers for the integration tests, started through
// testcontainers against any Docker-compatible API. Images come from KAFKA_IMAGE / REDIS_IMAGE or, by
// default, the versions pinned in infra/versions.env. The official apache/kafka image and our local
// build take the same KAFKA_* environment, so this code works unchanged with either.
import { randomBytes, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { GenericContainer, ImageName, Wait, getContainerRuntimeClient, type ContainerRuntimeClient, type StartedTestContainer } from 'testcontainers';

const VERSIONS_FILE = new URL('../../infra/versions.env', import.meta.url);
const KAFKA_PORT = 9092;
const KAFKA_CONTROLLER_PORT = 9093;
const KAFKA_INTERNAL_PORT = 9094;
const REDIS_PORT = 6379;
const STARTUP_TIMEOUT_MS = 120_000;
/** Attempts at binding Kafka's host port: another process may take the chosen free port first. */
const KAFKA_PORT_ATTEMPTS = 3;
const ROLE_LABEL = 'org.ensemble-stream.role';
/** Marks every container of one start, so a failed start removes exactly what it created. */
const RUN_LABEL = 'org.ensemble-stream.run';

export interface StartedContainerInfo {
  id: string;
  image: string;
  labels: Record<string, string>;
  /** Host port that the container's service port is published on. */
  hostPort: number;
}

export interface StartedInfra {
  kafkaBrokers: string[];
  redisUrl: string;
  containers: StartedContainerInfo[];
  /** Milliseconds from asking for each container to it being ready. */
  startupMs: { kafka: number; redis: number };
  stop(): Promise<void>;
}

/** No Docker-compatible API answered: nothing can be started. */
export class ContainerEngineUnavailableError extends Error {
  override readonly name = 'ContainerEngineUnavailableError';
}

/** A container did not start; `image` says which image was asked for. */
export class ContainerStartError extends Error {
  override readonly name = 'ContainerStartError';
  constructor(
    message: string,
    readonly image: string,
    options: { cause: unknown },
  ) {
    super(message, options);
  }
}

/** Parses infra/versions.env (plain KEY=value lines, # comments), the one place versions are pinned. */
export function readPinnedVersions(file: URL = VERSIONS_FILE): Record<string, string> {
  const versions: Record<string, string> = {};
  for (const raw of readFileSync(file, 'utf8').split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const eq = line.indexOf('=');
    if (eq <= 0) throw new Error(`${file.pathname}: not a KEY=value line: ${line}`);
    versions[line.slice(0, eq).trim()] = line.slice(eq + 1).trim();
  }
  return versions;
}

export function resolveImages(env: NodeJS.ProcessEnv = process.env): { kafka: string; redis: string } {
  const pinned = readPinnedVersions();
  const pick = (key: 'KAFKA_IMAGE' | 'REDIS_IMAGE'): string => {
    const image = env[key] || pinned[key];
    if (!image) throw new Error(`${key} is neither set nor pinned in infra/versions.env`);
    return image;
  };
  return { kafka: pick('KAFKA_IMAGE'), redis: pick('REDIS_IMAGE') };
}

/** Starts Kafka and Redis side by side; if either fails, every container of this start is removed. */
export async function startInfraContainers(): Promise<StartedInfra> {
  const client = await runtimeClient();
  const images = resolveImages();
  const run = randomUUID();
  const [kafka, redis] = await Promise.allSettled([timed(() => startKafka(client, images.kafka, run)), timed(() => startRedis(client, images.redis, run))]);
  if (kafka.status === 'rejected' || redis.status === 'rejected') {
    // Without Ryuk nothing else would remove a container whose wait strategy failed.
    await removeContainers(client, [`${RUN_LABEL}=${run}`]);
    throw kafka.status === 'rejected' ? kafka.reason : (redis as PromiseRejectedResult).reason;
  }
  const k = kafka.value.result;
  const r = redis.value.result;
  const host = hostAddress(client);
  return {
    kafkaBrokers: [`${host}:${k.hostPort}`],
    redisUrl: `redis://${host}:${r.hostPort}`,
    containers: [containerInfo(k, images.kafka), containerInfo(r, images.redis)],
    startupMs: { kafka: kafka.value.ms, redis: redis.value.ms },
    async stop() {
      await Promise.all([k.container.stop(), r.container.stop()]);
    },
  };
}

interface Started {
  container: StartedTestContainer;
  hostPort: number;
}

async function runtimeClient(): Promise<ContainerRuntimeClient> {
  try {
    return await getContainerRuntimeClient();
  } catch (cause) {
    const dockerHost = process.env.DOCKER_HOST ?? '(DOCKER_HOST not set)';
    throw new ContainerEngineUnavailableError(
      `No Docker-compatible API is reachable at ${dockerHost}. Either start the local engine with ` +
        `'eval "$(bash infra/containers/engine.sh up)"' (and build the images with ` +
        `'eval "$(bash infra/containers/build-images.sh)"'), or set both KAFKA_BROKERS and REDIS_URL ` +
        `to use a running Kafka and Redis.`,
      { cause },
    );
  }
}

/** Removes the containers that carry all the given `key=value` labels, running or not. */
async function removeContainers(client: ContainerRuntimeClient, labels: string[]): Promise<void> {
  const { dockerode } = client.container;
  const leftovers = await dockerode.listContainers({ all: true, filters: { label: labels } });
  await Promise.all(leftovers.map((c) => dockerode.getContainer(c.Id).remove({ force: true, v: true })));
}

/**
 * Kafka hands clients the advertised address, so it must be the address the host dials. A free host
 * port is chosen first and published for the broker's port, so the advertised address is right from
 * the first start, with no restart and no start script to rewrite.
 */
async function startKafka(client: ContainerRuntimeClient, image: string, run: string): Promise<Started> {
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const container = new GenericContainer(image)
      .withLabels({ [ROLE_LABEL]: 'kafka', [RUN_LABEL]: run })
      .withExposedPorts({ container: KAFKA_PORT, host: port })
      .withEnvironment(kafkaEnvironment(hostAddress(client), port))
      .withWaitStrategy(Wait.forLogMessage(/Kafka Server started/))
      .withStartupTimeout(STARTUP_TIMEOUT_MS);
    try {
      return { container: await container.start(), hostPort: port };
    } catch (cause) {
      if (attempt < KAFKA_PORT_ATTEMPTS && /address already in use|port is already allocated/i.test(String(cause))) {
        await removeContainers(client, [`${RUN_LABEL}=${run}`, `${ROLE_LABEL}=kafka`]);
        continue;
      }
      throw await startError(client, 'Kafka', image, cause);
    }
  }
}

function kafkaEnvironment(host: string, hostPort: number): Record<string, string> {
  return {
    CLUSTER_ID: randomBytes(16).toString('base64url'),
    KAFKA_NODE_ID: '1',
    KAFKA_PROCESS_ROLES: 'broker,controller',
    // HOST serves the test process through the published port and advertises that port; the broker
    // reaches itself (transaction markers, for one) on INTERNAL, whose address is valid inside.
    KAFKA_LISTENERS: `HOST://0.0.0.0:${KAFKA_PORT},INTERNAL://localhost:${KAFKA_INTERNAL_PORT},` + `CONTROLLER://localhost:${KAFKA_CONTROLLER_PORT}`,
    KAFKA_ADVERTISED_LISTENERS: `HOST://${host}:${hostPort},INTERNAL://localhost:${KAFKA_INTERNAL_PORT}`,
    KAFKA_LISTENER_SECURITY_PROTOCOL_MAP: 'HOST:PLAINTEXT,INTERNAL:PLAINTEXT,CONTROLLER:PLAINTEXT',
    KAFKA_INTER_BROKER_LISTENER_NAME: 'INTERNAL',
    KAFKA_CONTROLLER_LISTENER_NAMES: 'CONTROLLER',
    // Static voters: the image formats its storage without --standalone, like apache/kafka does.
    KAFKA_CONTROLLER_QUORUM_VOTERS: `1@localhost:${KAFKA_CONTROLLER_PORT}`,
    KAFKA_LOG_DIRS: '/tmp/kraft-combined-logs',
    // Topics are created explicitly; a typo in a topic name must fail.
    KAFKA_AUTO_CREATE_TOPICS_ENABLE: 'false',
    // One broker: every internal topic (offsets, transactions, share groups) has one replica.
    KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR: '1',
    KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR: '1',
    KAFKA_TRANSACTION_STATE_LOG_MIN_ISR: '1',
    KAFKA_SHARE_COORDINATOR_STATE_TOPIC_REPLICATION_FACTOR: '1',
    KAFKA_SHARE_COORDINATOR_STATE_TOPIC_MIN_ISR: '1',
    KAFKA_DEFAULT_REPLICATION_FACTOR: '1',
    KAFKA_MIN_INSYNC_REPLICAS: '1',
    // 50 partitions each by default: creating and loading them slows the first group and transaction.
    KAFKA_OFFSETS_TOPIC_NUM_PARTITIONS: '5',
    KAFKA_TRANSACTION_STATE_LOG_NUM_PARTITIONS: '5',
    // The default 3 s delay would stall the first rebalance of every consumer group in every test.
    KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS: '0',
    // The services' 4 s session timeouts (a dead instance's partitions move within seconds); Kafka's
    // default floor is 6 s.
    KAFKA_GROUP_MIN_SESSION_TIMEOUT_MS: '1000',
    KAFKA_HEAP_OPTS: '-Xms256m -Xmx512m',
  };
}

async function startRedis(client: ContainerRuntimeClient, image: string, run: string): Promise<Started> {
  const container = new GenericContainer(image)
    .withLabels({ [ROLE_LABEL]: 'redis', [RUN_LABEL]: run })
    .withExposedPorts(REDIS_PORT)
    .withWaitStrategy(Wait.forLogMessage(/Ready to accept connections/))
    .withStartupTimeout(STARTUP_TIMEOUT_MS);
  try {
    const started = await container.start();
    return { container: started, hostPort: started.getMappedPort(REDIS_PORT) };
  } catch (cause) {
    throw await startError(client, 'Redis', image, cause);
  }
}

/** Explains the usual cause here: no registry, so an image that was not built locally cannot be had. */
async function startError(client: ContainerRuntimeClient, service: string, image: string, cause: unknown): Promise<ContainerStartError> {
  const present = await client.image.exists(ImageName.fromString(image)).catch(() => false);
  const hint = present
    ? ''
    : `\nThe image is not on the container host and could not be pulled: build the local images with ` +
      `'eval "$(bash infra/containers/build-images.sh)"', which also sets KAFKA_IMAGE and REDIS_IMAGE.`;
  const message = `${service} container (${image}) did not start: ${String(cause).trim()}${hint}`;
  return new ContainerStartError(message, image, { cause });
}

function containerInfo(started: Started, image: string): StartedContainerInfo {
  return {
    id: started.container.getId(),
    image,
    labels: started.container.getLabels(),
    hostPort: started.hostPort,
  };
}

/**
 * The host that publishes container ports, as clients should dial it: `localhost` becomes 127.0.0.1
 * because Node may try ::1 first, which published ports are not served on.
 */
function hostAddress(client: ContainerRuntimeClient): string {
  const { host } = client.info.containerRuntime;
  return host === 'localhost' ? '127.0.0.1' : host;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port assigned'))));
    });
  });
}

async function timed<T>(start: () => Promise<T>): Promise<{ result: T; ms: number }> {
  const begin = performance.now();
  const result = await start();
  return { result, ms: Math.round(performance.now() - begin) };
}
