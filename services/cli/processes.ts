import { type ChildProcess, spawn } from 'node:child_process';
import { createWriteStream, mkdirSync } from 'node:fs';
import { join } from 'node:path';
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
