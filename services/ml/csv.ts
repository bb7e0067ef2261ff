import { DatasetError } from './errors.js';

/**
 * RFC 4180 CSV: comma separated, fields optionally double-quoted, `""` escapes a quote inside a
 * quoted field, quoted fields may hold commas and line breaks. LF and CRLF line ends; blank lines
 * are skipped. Returns the rows as strings; quoting is not reported because no caller needs it.
 */
export function parseCsv(text: string): string[][] {
  return parseCsvRows(text).map((r) => r.fields);
}

/** A parsed row and the line of the file it starts on (1-based), for error messages. */
export interface CsvRow {
  fields: string[];
  line: number;
}

/** `parseCsv` with the starting line of every row. */
export function parseCsvRows(text: string): CsvRow[] {
  const parser = new CsvParser(text);
  for (let i = 0; i < text.length; i++) i = parser.inQuotes ? parser.quoted(i) : parser.unquoted(i);
  if (parser.inQuotes) throw new DatasetError(`CSV line ${parser.line}: unterminated quoted field`);
  parser.endRow();
  return parser.rows;
}

/** The state of one parse; each step reads the character at `i` and returns the index it read up to. */
class CsvParser {
  readonly rows: CsvRow[] = [];
  inQuotes = false;
  line = 1;
  private row: string[] = [];
  private rowLine = 1;
  private field = '';
  private fieldStarted = false;

  constructor(private readonly text: string) {}

  /** A character inside a quoted field. */
  quoted(i: number): number {
    const { text } = this;
    const ch = text[i];
    if (ch === '"') {
      if (text[i + 1] === '"') {
        this.field += '"';
        return i + 1;
      }
      this.inQuotes = false;
      const next = text[i + 1];
      if (next !== undefined && next !== ',' && next !== '\n' && next !== '\r') {
        throw new DatasetError(`CSV line ${this.line}: unexpected character after closing quote`);
      }
    } else {
      if (ch === '\n') this.line++;
      this.field += ch;
    }
    return i;
  }

  /** A character outside quotes. */
  unquoted(i: number): number {
    const ch = this.text[i];
    switch (ch) {
      case '"':
        if (this.field.length > 0) throw new DatasetError(`CSV line ${this.line}: quote inside an unquoted field`);
        this.inQuotes = true;
        this.fieldStarted = true;
        break;
      case ',':
        this.row.push(this.field);
        this.field = '';
        this.fieldStarted = true;
        break;
      case '\r':
        if (this.text[i + 1] !== '\n') this.field += ch;
        break;
      case '\n':
        this.endRow();
        this.line++;
        this.rowLine = this.line;
        break;
      default:
        this.field += ch;
        this.fieldStarted = true;
    }
    return i;
  }

  endRow(): void {
    if (this.fieldStarted || this.row.length > 0) {
      this.row.push(this.field);
      this.rows.push({ fields: this.row, line: this.rowLine });
    }
    this.row = [];
    this.field = '';
    this.fieldStarted = false;
  }
}
