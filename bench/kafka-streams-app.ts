import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, openSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { logsDir } from '../services/cli/processes.js';
import { repoRoot } from '../services/shared/repo-root.js';

/**
 * The Kafka Streams application of bench/kafka-streams (the backlog comparison's other joiner): built
 * with Maven when its jar is missing or older than its sources, started as its own JVM.
 */
const APP_DIR = join(repoRoot(), 'bench', 'kafka-streams');
const JAR = join(APP_DIR, 'target', 'kafka-streams-join.jar');
/** What the jar in target/ was built from: a hash of the pom, the sources and the Kafka version. */
const STAMP = join(APP_DIR, 'target', 'build.stamp');

/** The broker's version (infra/versions.env), which the app's Kafka Streams client is built with. */
export function brokerKafkaVersion(): string {
  const text = readFileSync(join(repoRoot(), 'infra', 'versions.env'), 'utf8');
  const version = /^KAFKA_VERSION=(\S+)$/m.exec(text)?.[1];
  if (version === undefined) throw new Error('infra/versions.env sets no KAFKA_VERSION');
  return version;
}

function sourceHash(kafkaVersion: string): string {
  const hash = createHash('sha256').update(`kafka ${kafkaVersion}\n`);
  const files = ['pom.xml', ...readdirSync(join(APP_DIR, 'src'), { recursive: true, encoding: 'utf8' }).map((f) => join('src', f))].sort();
  for (const file of files) {
    const path = join(APP_DIR, file);
    if (!statSync(path).isFile()) continue;
    hash.update(`${file}\n`).update(readFileSync(path));
  }
  return hash.digest('hex');
}

/** The app's jar, built first (mvn package, Java 17) unless target/ holds a build of the current sources. */
export function kafkaStreamsJar(say: (line: string) => void): string {
  const kafkaVersion = brokerKafkaVersion();
  const stamp = sourceHash(kafkaVersion);
  if (existsSync(JAR) && existsSync(STAMP) && readFileSync(STAMP, 'utf8') === stamp) return JAR;
  say(`building the Kafka Streams app (Kafka Streams ${kafkaVersion}, mvn package) ...`);
  const built = spawnSync('mvn', ['-q', '-B', '-Dstyle.color=never', '-f', join(APP_DIR, 'pom.xml'), `-Dkafka.version=${kafkaVersion}`, 'package'], {
    encoding: 'utf8',
  });
  if (built.error !== undefined) throw new Error(`cannot run mvn to build bench/kafka-streams: ${built.error.message}`);
  if (built.status !== 0) {
    const output = `${built.stdout}${built.stderr}`.trim().split('\n').slice(-30).join('\n');
    throw new Error(`building bench/kafka-streams failed (mvn exit ${built.status}):\n${output}`);
  }
  writeFileSync(STAMP, stamp);
  return JAR;
}

export interface KafkaStreamsArgs {
  bootstrap: string;
  applicationId: string;
  input: string;
  output: string;
  models: readonly { id: string; weight: number }[];
  classes: readonly string[];
  stateDir: string;
}

/** Starts the app (`java -jar`, JVM defaults); its output goes to .local/logs/<name>.log. */
export function startKafkaStreams(jar: string, name: string, a: KafkaStreamsArgs): { child: ChildProcess; logFile: string } {
  const logFile = join(logsDir(), `${name}.log`);
  const log = openSync(logFile, 'w');
  const java = process.env.JAVA_HOME === undefined ? 'java' : join(process.env.JAVA_HOME, 'bin', 'java');
  const args = [
    ...['--bootstrap', a.bootstrap, '--application-id', a.applicationId, '--input', a.input, '--output', a.output],
    ...['--models', a.models.map((m) => m.id).join(','), '--weights', a.models.map((m) => String(m.weight)).join(',')],
    ...['--classes', a.classes.join(','), '--schemas', join(repoRoot(), 'schemas'), '--state-dir', a.stateDir],
  ];
  const child = spawn(java, ['-jar', jar, ...args], { stdio: ['ignore', log, log] });
  return { child, logFile };
}
