import { describeError } from './errors.js';
import { startHealthServer } from './health-server.js';
import type { Logger } from './log.js';
import { readiness } from './readiness.js';
import type { SupervisionSettings } from './runtime-config.js';

const SUPERVISION_DEFAULTS: SupervisionSettings = { healthHost: '0.0.0.0', shutdownTimeoutMs: 20_000, redisLostAfterMs: 60_000 };

/**
 * Runs a service until SIGINT or SIGTERM, then stops it cleanly: the service finishes the batch in
 * hand, commits and leaves its group within `shutdownTimeoutMs`, then the process exits 0 (1 when it
 * did not). A crash, an unhandled rejection or a Redis connection lost for good is logged and exits
 * non-zero, so a supervisor restarts the process; whatever was not committed is processed again by
 * the next owner of its partitions. With `healthPort`, serves /healthz and /readyz.
 */
export async function runUntilSignal(
  name: string,
  logger: Logger,
  start: () => Promise<void>,
  stop: () => Promise<void>,
  supervision: SupervisionSettings = SUPERVISION_DEFAULTS,
): Promise<void> {
  let stopping = false;
  const fail = (message: string, fields: Record<string, unknown>) => {
    logger.error(message, fields);
    process.exit(1);
  };
  process.on('unhandledRejection', (reason) => fail(`${name}: unhandled promise rejection`, { error: describeError(reason) }));
  process.on('uncaughtException', (error) => fail(`${name}: uncaught exception`, { error: describeError(error) }));
  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    readiness.setPhase('draining');
    logger.info(`${name} stopping`, { signal, withinMs: supervision.shutdownTimeoutMs });
    setTimeout(() => fail(`${name} did not stop within ${supervision.shutdownTimeoutMs} ms`, { signal }), supervision.shutdownTimeoutMs).unref();
    stop().then(
      () => process.exit(0),
      (error: unknown) => fail(`${name} did not stop cleanly`, { error: describeError(error) }),
    );
  };
  process.once('SIGINT', () => shutdown('SIGINT'));
  process.once('SIGTERM', () => shutdown('SIGTERM'));
  // ioredis reconnects forever; past this a connection counts as lost and a restart is the remedy.
  setInterval(() => {
    const lost = readiness.redisDownLongerThan(supervision.redisLostAfterMs);
    if (lost.length > 0 && !stopping) fail(`${name}: Redis connection lost for more than ${supervision.redisLostAfterMs} ms`, { connections: lost });
  }, 1000).unref();
  try {
    if (supervision.healthPort !== undefined) await startHealthServer(supervision.healthPort, supervision.healthHost, logger);
    await start();
    readiness.setPhase('running');
  } catch (error) {
    logger.error(`${name} failed to start`, { error: describeError(error) });
    process.exit(1);
  }
}

/** A service's FatalHandler: a consumer that is gone for good ends the process, non-zero, with the reason. */
export function exitProcess(name: string, logger: Logger): (reason: string) => void {
  return (reason) => {
    logger.error(`${name} exiting: its consumer stopped for good`, { reason });
    process.exit(70);
  };
}
