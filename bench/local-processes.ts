import type { ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ServiceProcess } from '../services/cli/processes.js';
import { repoRoot } from '../services/shared/repo-root.js';
import type { WatchedProcess } from './process-stats.js';

/**
 * The processes whose CPU and memory are reported: the pipeline, the client side, Kafka and Redis.
 * The services and the load generator count their Kafka requests into `requestsFile(name)`.
 */
export function watchedProcesses(
  pipeline: { services: readonly ServiceProcess[]; names: readonly string[] },
  loadGenerator: ChildProcess,
  env: NodeJS.ProcessEnv,
  redisUrl: string,
  requestsFile: (name: string) => string,
): WatchedProcess[] {
  const counted = (name: string, pid: number): WatchedProcess => ({ name, pid, requestsFile: requestsFile(name) });
  const list: WatchedProcess[] = pipeline.services.map((s, i) => counted(pipeline.names[i] ?? s.name, s.child.pid ?? 0));
  list.push(counted('load-generator', loadGenerator.pid ?? 0), { name: 'collector (bench)', pid: process.pid });
  const kafkaPid = brokerPid(env);
  if (kafkaPid !== undefined) list.push({ name: 'kafka', pid: kafkaPid });
  const redisPid = localRedisPid(redisUrl);
  if (redisPid !== undefined) list.push({ name: 'redis', pid: redisPid });
  return list.filter((p) => p.pid > 0);
}

/** The pid of the broker infra/local/kafka.sh started, if it did. */
export function brokerPid(env: NodeJS.ProcessEnv): number | undefined {
  const file = join(env.ES_LOCAL_DIR ?? join(repoRoot(), '.local'), 'kafka', 'kafka.pid');
  return existsSync(file) ? Number(readFileSync(file, 'utf8').trim()) : undefined;
}

/** The pid of the redis-server serving the URL's port on this machine, if there is one. */
export function localRedisPid(url: string): number | undefined {
  const { hostname, port } = new URL(url);
  if (hostname !== '127.0.0.1' && hostname !== 'localhost') return undefined;
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8').replace(/\0/g, ' ');
      if (cmdline.startsWith('redis-server') && cmdline.includes(`:${port || '6379'}`)) return Number(entry);
    } catch {
      // The process ended while we looked.
    }
  }
  return undefined;
}
