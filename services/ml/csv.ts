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
  const rows: CsvRow[] = [];
  let row: string[] = [];
  let rowLine = 1;
  let field = '';
  let inQuotes = false;
  let fieldStarted = false;
  let line = 1;

  const endRow = (): void => {
    if (fieldStarted || row.length > 0) {
      row.push(field);
      rows.push({ fields: row, line: rowLine });
    }
    row = [];
    field = '';
    fieldStarted = false;
  };

  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (inQuotes) {
      if (ch === '"') {
        if (text[i + 1] === '"') {
          field += '"';
          i++;
        } else {
          inQuotes = false;
          const next = text[i + 1];
          if (next !== undefined && next !== ',' && next !== '\n' && next !== '\r') {
            throw new DatasetError(`CSV line ${line}: unexpected character after closing quote`);
          }
        }
      } else {
        if (ch === '\n') line++;
        field += ch;
      }
      continue;
    }
    switch (ch) {
      case '"':
        if (field.length > 0) throw new DatasetError(`CSV line ${line}: quote inside an unquoted field`);
        inQuotes = true;
        fieldStarted = true;
        break;
      case ',':
        row.push(field);
        field = '';
        fieldStarted = true;
        break;
      case '\r':
        if (text[i + 1] !== '\n') field += ch;
        break;
      case '\n':
        endRow();
        line++;
        rowLine = line;
        break;
      default:
        field += ch;
        fieldStarted = true;
    }
  }
  if (inQuotes) throw new DatasetError(`CSV line ${line}: unterminated quoted field`);
  endRow();
  return rows;
}
