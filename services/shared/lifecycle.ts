import { describeError } from './errors.js';
import type { Logger } from './log.js';

/**
 * Runs a service until SIGINT or SIGTERM, then stops it cleanly. A crash is logged and exits
 * non-zero; whatever was not committed is processed again by the next owner of its partitions.
 */
export async function runUntilSignal(name: string, logger: Logger, start: () => Promise<void>, stop: () => Promise<void>): Promise<void> {
  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info(`${name} stopping`, { signal });
    stop().then(
      () => process.exit(0),
      (error: unknown) => {
        logger.error(`${name} did not stop cleanly`, { error: describeError(error) });
        process.exit(1);
      },
    );
  };
  process.once('SIGINT', () => shutdown('SIGINT'));
  process.once('SIGTERM', () => shutdown('SIGTERM'));
  try {
    await start();
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
