import { KafkaJSConnectionError, KafkaJSProtocolError } from 'kafkajs';
import { describe, expect, it } from 'vitest';
import { isLostBroker } from '../../services/shared/kafkajs-coordinator-failover.js';

describe('a coordinator that stopped answering', () => {
  it('is told from one that answered with an error', () => {
    expect(isLostBroker(new KafkaJSConnectionError('Connection error: connect ECONNREFUSED 127.0.0.1:19094'))).toBe(true);
    expect(isLostBroker(Object.assign(new Error('Closed connection'), { name: 'KafkaJSConnectionClosedError' }))).toBe(true);
    expect(isLostBroker(new KafkaJSProtocolError('The coordinator is not aware of this member'))).toBe(false);
    expect(isLostBroker('ECONNREFUSED')).toBe(false);
  });
});
