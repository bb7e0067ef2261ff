import { type ChildProcess, fork } from 'node:child_process';
import { join } from 'node:path';
import { repoRoot } from '../services/shared/repo-root.js';

// The bench's side of the load generator (load-generator.ts): start it, run one phase's load.

/** One phase's load, sent to the load generator over IPC. */
export interface RunLoad {
  kind: 'run';
  topic: string;
  prefix: string;
  count: number;
  /** Requests per second; 0 is as fast as the producer goes. */
  rate: number;
}

/** The load generator's answer once every request of the phase was acknowledged. */
export interface LoadSent {
  kind: 'sent';
  count: number;
  firstSendMs: number;
  lastSendMs: number;
}

/** Forks the load generator and waits until its producer is connected. */
export function startLoadGenerator(env: NodeJS.ProcessEnv): Promise<ChildProcess> {
  const child = fork(join(repoRoot(), 'dist', 'bench', 'load-generator.js'), [], { env, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  return new Promise((resolve, reject) => {
    child.once('message', () => resolve(child));
    child.once('exit', (code) => reject(new Error(`the load generator exited during start-up (code ${code})`)));
  });
}

/** Runs one phase's load; resolves when the last request was acknowledged by Kafka. */
export function sendLoad(child: ChildProcess, run: RunLoad): Promise<LoadSent> {
  return new Promise((resolve, reject) => {
    const onMessage = (message: LoadSent) => {
      if (message.kind !== 'sent') return;
      child.off('exit', onExit);
      child.off('message', onMessage);
      resolve(message);
    };
    const onExit = (code: number | null) => reject(new Error(`the load generator exited (code ${code})`));
    child.on('message', onMessage);
    child.once('exit', onExit);
    child.send(run);
  });
}
