import { type ChildProcess, spawn } from 'node:child_process';
import { createWriteStream, existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AggregatorConfig } from '../../services/core/ensemble-config.js';
import { repoRoot } from '../../services/shared/repo-root.js';

const CLI = join(repoRoot(), 'dist', 'services', 'cli', 'main.js');

/** A service run as its own process (the built CLI), its stderr (JSON log lines) kept in a file. */
export interface ServiceProcess {
  name: string;
  child: ChildProcess;
  logFile: string;
  /** Resolves with the exit code (or the signal) once the process ended. */
  exited: Promise<number | string>;
}

/** Processes of one test, with their logs in one folder; `stopAll` kills what still runs. */
export class ServiceProcesses {
  readonly dir = mkdtempSync(join(tmpdir(), 'es-cluster-'));
  readonly all: ServiceProcess[] = [];

  constructor() {
    if (!existsSync(CLI)) throw new Error(`${CLI} is missing: build first (run.sh does)`);
  }

  writeConfig(config: AggregatorConfig): string {
    const path = join(this.dir, `aggregator-${this.all.length}.json`);
    writeFileSync(path, JSON.stringify(config));
    return path;
  }

  writeFile(name: string, content: string): string {
    const path = join(this.dir, name);
    writeFileSync(path, content, { mode: 0o600 });
    return path;
  }

  start(name: string, args: string[], env: NodeJS.ProcessEnv): ServiceProcess {
    const logFile = join(this.dir, `${name}-${this.all.length}.log`);
    const log = createWriteStream(logFile);
    const child = spawn(process.execPath, [CLI, ...args], { env: { ES_METRICS_PORT: '0', ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
    child.stderr?.pipe(log);
    const exited = new Promise<number | string>((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal ?? 'unknown')));
    const service = { name, child, logFile, exited };
    this.all.push(service);
    return service;
  }

  running(): ServiceProcess[] {
    return this.all.filter((s) => s.child.exitCode === null && s.child.signalCode === null);
  }

  /** Every line every process logged so far. */
  logLines(): string[] {
    return this.all.flatMap((s) =>
      existsSync(s.logFile)
        ? readFileSync(s.logFile, 'utf8')
            .split('\n')
            .filter((l) => l !== '')
        : [],
    );
  }

  /** SIGTERM, then the exit codes (a drain that overruns ES_SHUTDOWN_TIMEOUT_MS exits 1). */
  async terminate(services = this.running()): Promise<(number | string)[]> {
    for (const s of services) s.child.kill('SIGTERM');
    return Promise.all(services.map((s) => s.exited));
  }

  async stopAll(): Promise<void> {
    const left = this.running();
    for (const s of left) s.child.kill('SIGKILL');
    await Promise.all(left.map((s) => s.exited));
  }
}
