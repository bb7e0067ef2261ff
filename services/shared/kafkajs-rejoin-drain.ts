import { createRequire } from 'node:module';

/**
 * kafkajs (eager rebalancing) gives a member's partitions up when it joins the group again or
 * leaves it, and waits for the running eachBatch calls only. A consumer that commits after
 * eachBatch returned (the aggregator's transaction of batch n runs while batch n+1 is joined)
 * must finish that commit first: the partition's next owner reads the group's committed offset
 * once it is assigned, and a commit landing after that would be read again and emitted twice.
 * So a group's consumers can register a drain here; joining and leaving wait for every drain of
 * the group first. kafkajs has no hook for this, so its consumer group class is wrapped, once per
 * process.
 */

type Drain = () => Promise<void>;

interface ConsumerGroupInternals {
  groupId: string;
  joinAndSync(): Promise<void>;
  leave(): Promise<void>;
}

const drains = new Map<string, Set<Drain>>();
let installed = false;

/** Registers `drain` for `groupId`; returns the function that removes it. */
export function drainBeforeRejoin(groupId: string, drain: Drain): () => void {
  install();
  let group = drains.get(groupId);
  if (group === undefined) {
    group = new Set();
    drains.set(groupId, group);
  }
  group.add(drain);
  return () => {
    group.delete(drain);
    if (group.size === 0) drains.delete(groupId);
  };
}

async function drainGroup(groupId: string): Promise<void> {
  const group = drains.get(groupId);
  if (group !== undefined) await Promise.allSettled([...group].map((drain) => drain()));
}

function install(): void {
  if (installed) return;
  installed = true;
  const ConsumerGroup = createRequire(import.meta.url)('kafkajs/src/consumer/consumerGroup.js') as { prototype: ConsumerGroupInternals };
  const { joinAndSync, leave } = ConsumerGroup.prototype;
  ConsumerGroup.prototype.joinAndSync = async function joinAfterDrain(this: ConsumerGroupInternals) {
    await drainGroup(this.groupId);
    return joinAndSync.call(this);
  };
  ConsumerGroup.prototype.leave = async function leaveAfterDrain(this: ConsumerGroupInternals) {
    await drainGroup(this.groupId);
    return leave.call(this);
  };
}
