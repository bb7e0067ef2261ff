import { type ChildProcess, spawn } from 'node:child_process';
import { createWriteStream, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Kafka } from 'kafkajs';
import { repoRoot } from '../shared/repo-root.js';

/** A service the demo or benchmark started as its own Node process, logging to a file. */
export interface ServiceProcess {
  readonly name: string;
  readonly child: ChildProcess;
  readonly logFile: string;
  stop(): Promise<void>;
}

export function logsDir(): string {
  const dir = join(repoRoot(), '.local', 'logs');
  mkdirSync(dir, { recursive: true });
  return dir;
}

/** Runs `ensemble-stream <args>` (the built CLI) as a child process. */
export function spawnService(name: string, args: string[], env: NodeJS.ProcessEnv): ServiceProcess {
  const logFile = join(logsDir(), `${name}.log`);
  const log = createWriteStream(logFile, { flags: 'w' });
  const child = spawn(process.execPath, [join(repoRoot(), 'dist', 'services', 'cli', 'main.js'), ...args], {
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout?.pipe(log);
  child.stderr?.pipe(log);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return {
    name,
    child,
    logFile,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** Waits until every consumer group is stable with (at least) its number of members; fails if a service died. */
export async function waitForGroups(kafka: Kafka, members: ReadonlyMap<string, number>, services: ServiceProcess[]): Promise<void> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const deadline = Date.now() + 60_000;
    for (;;) {
      const dead = services.find((s) => s.child.exitCode !== null);
      if (dead !== undefined) throw new Error(`${dead.name} exited (code ${dead.child.exitCode}); see ${dead.logFile}`);
      const { groups: described } = await admin.describeGroups([...members.keys()]);
      if (described.every((g) => g.state === 'Stable' && g.members.length >= (members.get(g.groupId) ?? 1))) return;
      if (Date.now() > deadline) throw new Error(`consumer groups not ready after 60 s: ${described.map((g) => `${g.groupId}=${g.state}`).join(', ')}`);
      await new Promise((r) => setTimeout(r, 250));
    }
  } finally {
    await admin.disconnect();
  }
}
