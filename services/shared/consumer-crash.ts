import type { Consumer } from 'kafkajs';
import { describeError } from './errors.js';
import type { Logger } from './log.js';

/** Called once a consumer is gone for good; a service's main exits (lifecycle.ts `exitProcess`). */
export type FatalHandler = (reason: string) => void;

/**
 * kafkajs restarts a crashed consumer only after retriable errors; after any other (a fenced
 * producer rethrown from a batch, say) it emits a crash with `restart: false` and the consumer
 * stays stopped while the process lives on, idle. This hands such a crash to `onFatal`, so a
 * supervisor can restart the process and another instance can take the partitions meanwhile.
 * Each rebalance is logged, once per member.
 */
export function watchConsumer(consumer: Consumer, name: string, logger: Logger, onFatal: FatalHandler): void {
  consumer.on(consumer.events.CRASH, ({ payload }) => {
    const reason = `${name}: consumer of group ${payload.groupId} crashed: ${describeError(payload.error)}`;
    if (payload.restart) logger.warn('consumer crashed; kafkajs restarts it', { consumer: name, error: describeError(payload.error) });
    else onFatal(`${reason} (kafkajs does not restart it)`);
  });
  // One line per rebalance: which partitions this member holds now.
  consumer.on(consumer.events.GROUP_JOIN, ({ payload }) => {
    logger.info('consumer group joined (rebalance)', {
      consumer: name,
      group: payload.groupId,
      member: payload.memberId,
      leader: payload.isLeader,
      assignment: payload.memberAssignment,
    });
  });
}

/** The default outside a service's main: say so loudly (tests and embedders decide what to do). */
export function logFatal(logger: Logger): FatalHandler {
  return (reason) => logger.error('consumer stopped for good', { reason });
}
