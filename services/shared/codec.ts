import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import avro from 'avsc';
import { DECODE_LIMITS, type DecodeLimits, scanAvro } from './bounded-avro.js';
import { InvalidMessageError } from './errors.js';
import type { DeadLetter, EnsembleMetrics, FeatureEvent, FusedPrediction, Label, Prediction } from './records.js';
import { repoRoot } from './repo-root.js';
import { HEADERS } from './topics.js';

/**
 * Avro binary codecs for every record, loaded once from schemas/. A message names its writer schema
 * in headers (HEADERS.schema / HEADERS.schemaVersion); decoding checks that name first so a message
 * written with another schema is reported as a schema mismatch, not as garbage. Every length and
 * count is checked against the bytes left and a ceiling before avsc reads (bounded-avro.ts).
 */
export const SCHEMA_VERSION = '1';

export interface Codec<T> {
  readonly schemaName: string;
  /** The avsc type, for scans and tests. */
  readonly type: avro.Type;
  readonly headers: Readonly<Record<string, string>>;
  encode(record: T): Buffer;
  /** Throws InvalidMessageError (SCHEMA_MISMATCH or UNDECODABLE); lengths are bounded before anything is allocated. */
  decode(value: Buffer | null, headers?: MessageHeaders, limits?: DecodeLimits): T;
}

export type MessageHeaders = Record<string, Buffer | string | (Buffer | string)[] | undefined>;

function headerText(headers: MessageHeaders | undefined, name: string): string | undefined {
  const raw = headers?.[name];
  const first = Array.isArray(raw) ? raw[0] : raw;
  return first === undefined ? undefined : first.toString();
}

function loadCodec<T>(file: string): Codec<T> {
  const schema = JSON.parse(readFileSync(join(repoRoot(), 'schemas', file), 'utf8')) as avro.Schema;
  const type = avro.Type.forSchema(schema);
  const schemaName = type.name ?? file;
  const headers = { [HEADERS.schema]: schemaName, [HEADERS.schemaVersion]: SCHEMA_VERSION };
  return {
    schemaName,
    type,
    headers,
    encode: (record: T) => type.toBuffer(record),
    decode(value, messageHeaders, limits = DECODE_LIMITS) {
      const writer = headerText(messageHeaders, HEADERS.schema);
      const version = headerText(messageHeaders, HEADERS.schemaVersion);
      if (messageHeaders !== undefined && (writer !== schemaName || version !== SCHEMA_VERSION)) {
        throw new InvalidMessageError(
          'SCHEMA_MISMATCH',
          `expected schema ${schemaName} v${SCHEMA_VERSION}, message says ${writer ?? '(no schema header)'} v${version ?? '?'}`,
        );
      }
      if (value === null || value.length === 0) throw new InvalidMessageError('UNDECODABLE', 'empty message value');
      try {
        scanAvro(type, value, limits);
        return type.fromBuffer(value) as T;
      } catch (cause) {
        throw new InvalidMessageError('UNDECODABLE', `not a valid ${schemaName}: ${(cause as Error).message}`, cause);
      }
    },
  };
}

export const codecs = {
  featureEvent: loadCodec<FeatureEvent>('feature-event.avsc'),
  prediction: loadCodec<Prediction>('prediction.avsc'),
  fusedPrediction: loadCodec<FusedPrediction>('fused-prediction.avsc'),
  label: loadCodec<Label>('label.avsc'),
  deadLetter: loadCodec<DeadLetter>('dead-letter.avsc'),
  ensembleMetrics: loadCodec<EnsembleMetrics>('ensemble-metrics.avsc'),
};
