import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { repoRoot } from '../../services/shared/repo-root.js';
import { eventually } from '../support/pipeline.js';

// runUntilSignal, as every service's main uses it, in a process of its own (the built module).
const LIFECYCLE = join(repoRoot(), 'dist', 'services', 'shared', 'lifecycle.js');

function service(body: string, env: NodeJS.ProcessEnv = {}) {
  const script = `
    const { runUntilSignal } = await import(${JSON.stringify(LIFECYCLE)});
    const { createLogger } = await import(${JSON.stringify(join(repoRoot(), 'dist', 'services', 'shared', 'log.js'))});
    const { readSupervision } = await import(${JSON.stringify(join(repoRoot(), 'dist', 'services', 'shared', 'runtime-config.js'))});
    const logger = createLogger('probe', 'info');
    setInterval(() => {}, 1000);
    ${body}`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  child.stderr.on('data', (d: Buffer) => (log += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, exited, log: () => log };
}

describe('supervision of a service process', () => {
  it('exits non-zero, with the reason, on an unhandled rejection', async () => {
    const s = service(
      `await runUntilSignal('probe', logger, async () => { setTimeout(() => Promise.reject(new Error('lost the plot')), 50); }, async () => {}, readSupervision());`,
    );
    expect(await s.exited).toBe(1);
    expect(s.log()).toMatch(/"msg":"probe: unhandled promise rejection".*"error":"lost the plot"/);
  });

  it('drains on SIGTERM and exits 0; a drain that overruns its bound exits 1', async () => {
    const quick = service(
      `await runUntilSignal('probe', logger, async () => { logger.info('up'); }, async () => { await new Promise((r) => setTimeout(r, 200)); logger.info('drained'); }, readSupervision());`,
    );
    await eventually(() => quick.log().includes('"msg":"up"'), 'start', 10_000);
    quick.child.kill('SIGTERM');
    expect(await quick.exited).toBe(0);
    expect(quick.log()).toContain('"msg":"drained"');
    const stuck = service(`await runUntilSignal('probe', logger, async () => { logger.info('up'); }, () => new Promise(() => {}), readSupervision());`, {
      ES_SHUTDOWN_TIMEOUT_MS: '300',
    });
    await eventually(() => stuck.log().includes('"msg":"up"'), 'start', 10_000);
    stuck.child.kill('SIGTERM');
    expect(await stuck.exited).toBe(1);
    expect(stuck.log()).toContain('probe did not stop within 300 ms');
  });

  it('answers /healthz, and /readyz only once started', async () => {
    const s = service(`await runUntilSignal('probe', logger, () => new Promise((r) => process.once('SIGUSR2', r)), async () => {}, readSupervision());`, {
      ES_HEALTH_PORT: '0',
      ES_HEALTH_HOST: '127.0.0.1',
    });
    try {
      await eventually(() => /health endpoints.*"url":"http:\/\/127\.0\.0\.1:\d+"/.test(s.log()), 'the health server', 10_000);
      const url = /"url":"(http:\/\/127\.0\.0\.1:\d+)"/.exec(s.log())?.[1] as string;
      expect((await fetch(`${url}/healthz`)).status).toBe(200);
      const starting = await fetch(`${url}/readyz`);
      expect(starting.status).toBe(503);
      expect(await starting.json()).toMatchObject({ ready: false, phase: 'starting' });
      s.child.kill('SIGUSR2');
      let ready: Response | undefined;
      for (let i = 0; i < 100 && ready?.status !== 200; i++) {
        ready = await fetch(`${url}/readyz`);
        if (ready.status !== 200) await new Promise((r) => setTimeout(r, 50));
      }
      expect(ready?.status).toBe(200);
      expect(await ready?.json()).toMatchObject({ ready: true, phase: 'running', consumers: [], redis: [] });
    } finally {
      s.child.kill('SIGKILL');
    }
  });
});
