import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { repoRoot } from '../../services/shared/repo-root.js';
import { eventually } from '../support/pipeline.js';

// The lost-Redis watchdog of runUntilSignal (every service's main): a Redis that goes away for
// good makes the process exit 1 with the reason once ES_REDIS_LOST_AFTER_MS has passed, so its
// supervisor restarts it. A Redis of its own is started and shut down here.
const DIST = join(repoRoot(), 'dist', 'services', 'shared');

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise((resolve) => server.close(resolve));
  if (address === null || typeof address === 'string') throw new Error('no port');
  return address.port;
}

describe('a Redis lost for good', () => {
  it('makes the service exit 1, naming the connection, after ES_REDIS_LOST_AFTER_MS', async () => {
    const port = await freePort();
    const started = spawnSync('redis-server', [
      '--bind',
      '127.0.0.1',
      '--port',
      String(port),
      '--save',
      '',
      '--appendonly',
      'no',
      '--daemonize',
      'yes',
      '--dir',
      mkdtempSync(join(tmpdir(), 'es-redis-lost-')),
    ]);
    if (started.status !== 0) throw new Error(`redis-server did not start: ${started.stderr.toString()}`);
    const script = `
      const { runUntilSignal } = await import(${JSON.stringify(join(DIST, 'lifecycle.js'))});
      const { createLogger } = await import(${JSON.stringify(join(DIST, 'log.js'))});
      const { readSupervision } = await import(${JSON.stringify(join(DIST, 'runtime-config.js'))});
      const { createRedis } = await import(${JSON.stringify(join(DIST, 'redis.js'))});
      const logger = createLogger('probe', 'info');
      const redis = createRedis('redis://127.0.0.1:${port}', 'probe-redis');
      redis.on('error', () => {});
      await runUntilSignal('probe', logger, async () => { await redis.ping(); logger.info('up'); }, async () => redis.disconnect(), readSupervision());`;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
      env: { ...process.env, ES_REDIS_LOST_AFTER_MS: '1500' },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let log = '';
    child.stderr.on('data', (d: Buffer) => (log += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    try {
      await eventually(() => log.includes('"msg":"up"'), 'the service up', 30_000);
      spawnSync('redis-cli', ['-p', String(port), 'shutdown', 'nosave']);
      expect(await exited).toBe(1);
      expect(log).toMatch(/"msg":"probe: Redis connection lost for more than 1500 ms".*"connections":\["probe-redis"\]/);
    } finally {
      child.kill('SIGKILL');
      spawnSync('redis-cli', ['-p', String(port), 'shutdown', 'nosave']);
    }
  });
});
