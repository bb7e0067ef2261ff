import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { linkSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import type { KafkaMessage, Message } from 'kafkajs';
import { ConfigError, InvalidMessageError } from './errors.js';
import { refusePoison } from './poison-guard.js';
import { repoRoot } from './repo-root.js';
import { CONTROL_DEADLINE, HEADERS } from './topics.js';

/**
 * Control records on the predictions topic (today: deadline records) come only from aggregators. Anyone
 * who may write predictions could otherwise expire any request at will, so each record carries an
 * HMAC-SHA256, with a secret only the aggregators share, over its kind, its request id (the key), the
 * partition it is meant for and the time it was signed. A record that fails the check is a dead
 * letter (FORGED_CONTROL) and never touches the join.
 */

/** Shortest secret accepted (bytes of its text). */
const MIN_SECRET_LENGTH = 16;

/** The deadline record the sweeper appends to `partition` for `requestId`. */
export function deadlineRecord(requestId: string, partition: number, secret: Buffer, nowMs = Date.now()): Message & { partition: number } {
  const at = String(nowMs);
  return {
    key: requestId,
    value: null,
    partition,
    headers: {
      [HEADERS.control]: CONTROL_DEADLINE,
      [HEADERS.controlAt]: at,
      [HEADERS.controlSignature]: sign(secret, CONTROL_DEADLINE, Buffer.from(requestId), partition, at),
    },
  };
}

/**
 * The request id a verified deadline record expires; undefined for a message that is no control
 * record. Throws InvalidMessageError FORGED_CONTROL for a control record without a valid signature.
 */
export function deadlineRequestId(message: KafkaMessage, partition: number, secret: Buffer): string | undefined {
  const kind = text(message.headers?.[HEADERS.control]);
  if (kind === undefined) return undefined;
  refusePoison(message);
  const at = text(message.headers?.[HEADERS.controlAt]);
  const signature = text(message.headers?.[HEADERS.controlSignature]);
  if (kind !== CONTROL_DEADLINE) throw forged(`unknown control record kind "${kind.slice(0, 40)}"`);
  if (message.key === null || message.key.length === 0) throw forged('deadline record without a request id');
  if (at === undefined || signature === undefined) throw forged('deadline record is not signed');
  const expected = Buffer.from(sign(secret, kind, message.key, partition, at), 'hex');
  const given = Buffer.from(signature, 'hex');
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) throw forged('deadline record signature does not verify');
  return message.key.toString('utf8');
}

function sign(secret: Buffer, kind: string, key: Buffer, partition: number, at: string): string {
  return createHmac('sha256', secret).update(`${kind}\n${partition}\n${at}\n`).update(key).digest('hex');
}

function forged(why: string): InvalidMessageError {
  return new InvalidMessageError('FORGED_CONTROL', `${why}; control records come only from aggregators`);
}

function text(raw: unknown): string | undefined {
  const first = Array.isArray(raw) ? (raw[0] as unknown) : raw;
  if (first === undefined || first === null) return undefined;
  return Buffer.isBuffer(first) ? first.toString('utf8') : String(first);
}

/** Where the aggregator's secret came from, for its start-up log. */
export interface ControlSecret {
  secret: Buffer;
  source: 'ES_CONTROL_SECRET' | 'ES_CONTROL_SECRET_FILE' | 'generated';
  file?: string;
}

/**
 * The aggregators' shared secret: ES_CONTROL_SECRET, or the contents of ES_CONTROL_SECRET_FILE. With
 * neither, a local default for development: a random secret generated once into
 * `<ES_LOCAL_DIR or repo/.local>/control-secret`, which every aggregator on this machine reads.
 * Aggregators on several machines must be given the same secret.
 */
export function readControlSecret(env: NodeJS.ProcessEnv = process.env): ControlSecret {
  if (env.ES_CONTROL_SECRET !== undefined && env.ES_CONTROL_SECRET_FILE !== undefined)
    throw new ConfigError('set ES_CONTROL_SECRET or ES_CONTROL_SECRET_FILE, not both');
  if (env.ES_CONTROL_SECRET !== undefined) return { secret: checked(env.ES_CONTROL_SECRET, 'ES_CONTROL_SECRET'), source: 'ES_CONTROL_SECRET' };
  if (env.ES_CONTROL_SECRET_FILE !== undefined) {
    const file = resolve(env.ES_CONTROL_SECRET_FILE);
    let content: string;
    try {
      content = readFileSync(file, 'utf8');
    } catch (cause) {
      throw new ConfigError(`ES_CONTROL_SECRET_FILE: cannot read ${file}: ${(cause as Error).message}`, cause);
    }
    return { secret: checked(content.trim(), `ES_CONTROL_SECRET_FILE (${file})`), source: 'ES_CONTROL_SECRET_FILE', file };
  }
  const file = join(resolve(env.ES_LOCAL_DIR ?? join(repoRoot(), '.local')), 'control-secret');
  mkdirSync(dirname(file), { recursive: true });
  const draft = `${file}.${process.pid}.tmp`;
  try {
    // Written aside, then linked in: whoever links first wins, and nobody reads a half-written file.
    writeFileSync(draft, randomBytes(32).toString('hex'), { mode: 0o600 });
    linkSync(draft, file);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST')
      throw new ConfigError(`cannot create the local control secret ${file}: ${(error as Error).message}`, error);
  } finally {
    rmSync(draft, { force: true });
  }
  return { secret: checked(readFileSync(file, 'utf8').trim(), file), source: 'generated', file };
}

function checked(secret: string, what: string): Buffer {
  if (Buffer.byteLength(secret) < MIN_SECRET_LENGTH) throw new ConfigError(`${what}: the control secret must be at least ${MIN_SECRET_LENGTH} bytes`);
  return Buffer.from(secret, 'utf8');
}
