import type avro from 'avsc';

/**
 * A pre-scan of Avro binary against its schema that allocates nothing. avsc trusts every length it
 * reads: an array block that declares four billion items makes it push items (read past the end of
 * the buffer) until the heap runs out. This walk reads every length and count first and refuses the
 * message unless each fits in the bytes that remain and under a ceiling, so that avsc only ever
 * decodes a message whose allocations are bounded by its size.
 */
export interface DecodeLimits {
  /** Most items in one array or map (summed over its blocks). */
  maxCollectionItems: number;
  /** Most bytes in one string or bytes value. */
  maxValueBytes: number;
}

/** Far above anything a feature vector or a class list needs; messages are size-checked first too. */
export const DECODE_LIMITS: DecodeLimits = { maxCollectionItems: 100_000, maxValueBytes: 1_048_576 };

/** Why a scan refused a message; the codec turns it into an UNDECODABLE dead letter. */
export class AvroBoundsError extends Error {
  override readonly name = 'AvroBoundsError';
}

/** Positions of every length or count field met during a scan (for tests that forge them). */
export type LengthFieldVisitor = (start: number, end: number) => void;

/** Throws AvroBoundsError unless `buf` holds exactly one `type` value within `limits`. */
export function scanAvro(type: avro.Type, buf: Buffer, limits: DecodeLimits = DECODE_LIMITS, onLength?: LengthFieldVisitor): void {
  const scan = new Scan(buf, limits, onLength);
  scan.value(type);
  if (scan.pos !== buf.length) throw new AvroBoundsError(`${buf.length - scan.pos} bytes left over after the record`);
}

class Scan {
  pos = 0;
  constructor(
    private readonly buf: Buffer,
    private readonly limits: DecodeLimits,
    private readonly onLength: LengthFieldVisitor | undefined,
  ) {}

  value(type: avro.Type): void {
    const t = type as avro.Type & Record<string, unknown>;
    const name = String(t.typeName);
    if (name.startsWith('logical:')) return this.value(t.underlyingType as avro.Type);
    switch (name) {
      case 'null':
        return;
      case 'boolean':
        return this.skip(1, 'boolean');
      case 'int':
      case 'long':
        this.long();
        return;
      case 'float':
        return this.skip(4, 'float');
      case 'double':
        return this.skip(8, 'double');
      case 'string':
      case 'bytes':
        return this.skip(this.length(this.limits.maxValueBytes, name), name);
      case 'fixed':
        return this.skip(t.size as number, 'fixed');
      case 'enum': {
        const i = this.long();
        const symbols = t.symbols as string[];
        if (i < 0 || i >= symbols.length) throw new AvroBoundsError(`enum index ${i} out of range (${symbols.length} symbols)`);
        return;
      }
      case 'record':
        for (const field of t.fields as { type: avro.Type }[]) this.value(field.type);
        return;
      case 'array':
        return this.blocks(t.itemsType as avro.Type, false);
      case 'map':
        return this.blocks(t.valuesType as avro.Type, true);
      default:
        if (name.startsWith('union')) {
          const branches = t.types as avro.Type[];
          const i = this.long();
          if (i < 0 || i >= branches.length) throw new AvroBoundsError(`union branch ${i} out of range (${branches.length} branches)`);
          return this.value(branches[i] as avro.Type);
        }
        throw new AvroBoundsError(`cannot scan Avro type ${name}`);
    }
  }

  /** Array or map blocks: a count (negative: followed by the block's byte size), items, 0 to end. */
  private blocks(items: avro.Type, map: boolean): void {
    const itemBytes = minBytes(items) + (map ? 1 : 0);
    let total = 0;
    for (;;) {
      const start = this.pos;
      let n = this.long();
      this.onLength?.(start, this.pos);
      if (n === 0) return;
      if (n < 0) {
        n = -n;
        const sizeStart = this.pos;
        this.long();
        this.onLength?.(sizeStart, this.pos);
      }
      total += n;
      if (total > this.limits.maxCollectionItems)
        throw new AvroBoundsError(`collection of ${total} items exceeds the limit of ${this.limits.maxCollectionItems}`);
      if (n * itemBytes > this.buf.length - this.pos)
        throw new AvroBoundsError(`block of ${n} items cannot fit in the ${this.buf.length - this.pos} bytes left`);
      for (let i = 0; i < n; i++) {
        if (map) this.skip(this.length(this.limits.maxValueBytes, 'map key'), 'map key');
        this.value(items);
      }
    }
  }

  private length(max: number, what: string): number {
    const start = this.pos;
    const n = this.long();
    this.onLength?.(start, this.pos);
    if (n < 0) throw new AvroBoundsError(`${what} has negative length ${n}`);
    if (n > max) throw new AvroBoundsError(`${what} of ${n} bytes exceeds the limit of ${max}`);
    return n;
  }

  private skip(n: number, what: string): void {
    if (n > this.buf.length - this.pos) throw new AvroBoundsError(`${what} of ${n} bytes runs past the end (${this.buf.length - this.pos} left)`);
    this.pos += n;
  }

  /** A zig-zag varint as a number; magnitudes past 2^53 lose precision, which no bound check minds. */
  private long(): number {
    let n = 0;
    let scale = 1;
    for (let i = 0; ; i++) {
      if (i >= 10) throw new AvroBoundsError('varint longer than 10 bytes');
      if (this.pos >= this.buf.length) throw new AvroBoundsError('varint runs past the end');
      const b = this.buf[this.pos++] as number;
      n += (b & 0x7f) * scale;
      scale *= 128;
      if ((b & 0x80) === 0) break;
    }
    return n % 2 === 0 ? n / 2 : -(n + 1) / 2;
  }
}

/** The fewest bytes a value of `type` can take, so a count can be checked against what is left. */
function minBytes(type: avro.Type): number {
  const t = type as avro.Type & Record<string, unknown>;
  const name = String(t.typeName);
  if (name.startsWith('logical:')) return minBytes(t.underlyingType as avro.Type);
  switch (name) {
    case 'null':
      return 0;
    case 'float':
      return 4;
    case 'double':
      return 8;
    case 'fixed':
      return t.size as number;
    case 'record':
      return (t.fields as { type: avro.Type }[]).reduce((sum, f) => sum + minBytes(f.type), 0);
    default:
      // boolean, int, long, enum, string, bytes, array, map, union: at least one byte each.
      return 1;
  }
}
