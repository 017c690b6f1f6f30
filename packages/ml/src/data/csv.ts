/** `csv:PATH`: a CSV file with a real schema (header detection, RFC 4180 quoting, numeric and categorical columns). */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { parse } from 'csv-parse/sync';
import { ValidationError } from '@fedge/proto';
import type { RawColumn } from './table.js';
import { selectColumns, type LoadTableOptions, type LoadedColumns } from './schema.js';

/** A plain decimal number (what Number() accepts minus hex, binary, '' and whitespace, which are not data). */
const NUMBER = /^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/;
/** Text that spells a non-finite value: refused rather than read as missing or as a category. */
const NON_FINITE = /^[-+]?(nan|inf|infinity)$/i;

const numberLike = (cell: string): boolean => NUMBER.test(cell) || NON_FINITE.test(cell);

/**
 * Reads `path` (`shown` is how messages name it). Rules, in order:
 * - Parsing: RFC 4180 (quoted fields may hold commas, quotes as "", newlines), a UTF-8 BOM, CRLF, blank lines skipped,
 *   spaces around unquoted cells trimmed; every row must have as many cells as the first.
 * - Header: the first row is a header when every cell of it is non-empty and none is a number. Otherwise columns are
 *   named c0, c1, ... and, when no --target is given, c0 is the target (the legacy `csv:` layout: label first).
 *   With a header and no --target there is no target: the run's task.target names it.
 * - Types: a column is numeric when every non-empty cell is a number; a column that is mostly numbers with some text
 *   is an error naming the first such cell (fix it, or --categorical); any other column is categorical (strings).
 *   NaN/Inf text in a numeric column is an error. Empty cells are missing values (--missing decides).
 */
export function readCsvColumns(path: string, shown: string, o: LoadTableOptions): LoadedColumns {
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    throw new ValidationError(`${shown}: cannot read the file (${(e as Error).message})`, { cause: e });
  }
  const lines: number[] = [];
  let records: string[][];
  try {
    records = parse(bytes, {
      bom: true,
      skip_empty_lines: true,
      // Files edited on several systems mix line endings; auto-detection would fix the first one it sees.
      record_delimiter: ['\r\n', '\n', '\r'],
      trim: true,
      on_record: (rec: string[], ctx: { lines: number }) => {
        lines.push(ctx.lines);
        return rec;
      },
    }) as string[][];
  } catch (e) {
    throw new ValidationError(`${shown}: not a valid CSV file: ${(e as Error).message}`, { cause: e });
  }
  if (records.length === 0) throw new ValidationError(`${shown}: the file has no rows`);
  const first = records[0]!;
  const header = first.every((c) => c !== '' && !numberLike(c));
  const names = header ? first : first.map((_, i) => `c${i}`);
  const rows = header ? records.slice(1) : records;
  const rowLine = header ? lines.slice(1) : lines;
  if (rows.length === 0) throw new ValidationError(`${shown}: a header line and no data rows`);
  const where = (row: number, col: number): string => `${shown}:${rowLine[row]}:${col + 1} (${names[col]})`;
  const defaultTargets = header ? [] : ['c0'];
  const { targets, features } = selectColumns(names, o, defaultTargets, shown);
  const used = new Set([...targets, ...features]);
  const forced = new Set((o.categorical ?? []).map((r) => (names.includes(r) ? r : /^\d+$/.test(r) ? names[Number(r)] : r)));

  const columns = names.map((name, j): RawColumn => {
    let numbers = 0, text = 0, firstText = -1, firstNonFinite = -1;
    for (let r = 0; r < rows.length; r++) {
      const cell = rows[r]![j]!;
      if (cell === '') continue;
      if (NUMBER.test(cell)) numbers++;
      else if (NON_FINITE.test(cell)) {
        numbers++;
        if (firstNonFinite < 0) firstNonFinite = r;
      } else if (text++ === 0) firstText = r;
    }
    if (forced.has(name) || (text > 0 && (!used.has(j) || text >= numbers)))
      return { name, type: 'categorical', values: rows.map((row) => (row[j] === '' ? null : row[j]!)) };
    if (text > 0)
      throw new ValidationError(
        `${where(firstText, j)}: '${rows[firstText]![j]}' is not a number, but ${numbers} of the column's ${numbers + text} values are; ` +
          `fix the cell (leave it empty for a missing value), or pass --categorical ${name} to treat the column as categories` +
          (firstText === 0 && !header ? ' (if line 1 is a header, give every column a name that is not a number)' : ''),
      );
    if (firstNonFinite >= 0 && used.has(j))
      throw new ValidationError(`${where(firstNonFinite, j)}: '${rows[firstNonFinite]![j]}' is not a finite number; fix it, or leave the cell empty for a missing value (--missing drop|mean)`);
    const values = new Float64Array(rows.length);
    for (let r = 0; r < rows.length; r++) {
      const cell = rows[r]![j]!;
      values[r] = cell === '' || !NUMBER.test(cell) ? NaN : Number(cell);
    }
    return { name, type: 'numeric', values };
  });
  return { columns, defaultTargets, where, lines: rowLine, format: 'csv', source: shown, hash: createHash('sha256').update('csv\0').update(bytes) };
}
