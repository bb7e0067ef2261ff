import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { KafkaMessage } from 'kafkajs';
import { describe, expect, it } from 'vitest';
import { deadlineRecord, deadlineRequestId, readControlSecret } from '../../services/shared/control-records.js';
import { ConfigError, InvalidMessageError } from '../../services/shared/errors.js';
import { HEADERS } from '../../services/shared/topics.js';

const SECRET = Buffer.from('a secret the aggregators share');

/** A produced record as a consumer sees it: Buffers for key and headers. */
function received(
  record: { key?: unknown; headers?: Record<string, unknown> },
  overrides: Record<string, string | undefined> = {},
  key?: string | null,
): KafkaMessage {
  const headers: Record<string, Buffer> = {};
  for (const [name, value] of Object.entries({ ...record.headers, ...overrides })) if (value !== undefined) headers[name] = Buffer.from(String(value));
  const k = key === undefined ? String(record.key) : key;
  return { key: k === null ? null : Buffer.from(k), value: null, headers, offset: '7', timestamp: '0', attributes: 0 } as KafkaMessage;
}

function forgedReason(m: KafkaMessage, partition = 2, secret = SECRET): string {
  try {
    deadlineRequestId(m, partition, secret);
  } catch (error) {
    if (error instanceof InvalidMessageError && error.code === 'FORGED_CONTROL') return error.message;
    throw error;
  }
  throw new Error('expected FORGED_CONTROL');
}

describe('signed deadline records', () => {
  const record = deadlineRecord('req-1', 2, SECRET, 1_790_000_000_000);

  it('verify for the partition they were signed for, and name their request', () => {
    expect(record.partition).toBe(2);
    expect(deadlineRequestId(received(record), 2, SECRET)).toBe('req-1');
  });

  it('leave messages without a control header to the prediction ingress', () => {
    expect(deadlineRequestId(received({ key: 'req-1', headers: { 'es.schema': 'x' } }), 2, SECRET)).toBeUndefined();
  });

  it('are refused when unsigned, re-keyed, moved, re-timed, of another kind or signed with another secret', () => {
    expect(forgedReason(received({ key: 'req-1', headers: { [HEADERS.control]: 'deadline' } }))).toMatch(/not signed/);
    expect(forgedReason(received(record, {}, 'req-2'))).toMatch(/does not verify/);
    expect(forgedReason(received(record), 1)).toMatch(/does not verify/);
    expect(forgedReason(received(record, { [HEADERS.controlAt]: '1790000000001' }))).toMatch(/does not verify/);
    expect(forgedReason(received(record, { [HEADERS.controlSignature]: 'zz' }))).toMatch(/does not verify/);
    expect(forgedReason(received(record, { [HEADERS.control]: 'purge' }))).toMatch(/unknown control record kind/);
    expect(forgedReason(received(record, {}, null))).toMatch(/without a request id/);
    expect(forgedReason(received(record), 2, Buffer.from('another secret of enough length'))).toMatch(/does not verify/);
  });
});

describe('the control secret', () => {
  it('comes from ES_CONTROL_SECRET or ES_CONTROL_SECRET_FILE, at least 16 bytes, not both', () => {
    const dir = mkdtempSync(join(tmpdir(), 'es-secret-'));
    const file = join(dir, 'secret');
    writeFileSync(file, 'from a file, long enough\n');
    expect(readControlSecret({ ES_CONTROL_SECRET: 'sixteen bytes ok' }).secret.toString()).toBe('sixteen bytes ok');
    expect(readControlSecret({ ES_CONTROL_SECRET_FILE: file }).secret.toString()).toBe('from a file, long enough');
    expect(() => readControlSecret({ ES_CONTROL_SECRET: 'short' })).toThrow(ConfigError);
    expect(() => readControlSecret({ ES_CONTROL_SECRET: 'sixteen bytes ok', ES_CONTROL_SECRET_FILE: file })).toThrow(/not both/);
    expect(() => readControlSecret({ ES_CONTROL_SECRET_FILE: join(dir, 'missing') })).toThrow(/cannot read/);
  });

  it('is generated once per local folder when none is given, and shared by whoever reads it next', () => {
    const dir = mkdtempSync(join(tmpdir(), 'es-local-'));
    const first = readControlSecret({ ES_LOCAL_DIR: dir });
    const second = readControlSecret({ ES_LOCAL_DIR: dir });
    expect(first.source).toBe('generated');
    expect(first.secret.length).toBe(64);
    expect(second.secret).toEqual(first.secret);
    expect(readFileSync(join(dir, 'control-secret'), 'utf8')).toBe(first.secret.toString());
  });
});
