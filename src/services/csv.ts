import { parse } from "csv-parse/sync";
import { ValidationError } from "../errors";

/** A CSV row with the file line it ended on (csv-parse's `info.lines`). */
export interface CsvRecord {
  record: Record<string, string>;
  info: { lines: number };
}

/**
 * An uploaded CSV's rows under the names `columns` gives its header (BOM, blank lines and cell
 * padding dropped, short rows allowed). A file that cannot be parsed is refused at `csv` with its
 * line in the whole file (`rowOffset`: lines of earlier chunks).
 */
export function parseCsvRecords(csv: string, columns: (header: string[]) => string[], rowOffset: number): CsvRecord[] {
  try {
    return parse(csv, { columns, bom: true, skip_empty_lines: true, trim: true, relax_column_count: true, info: true }) as CsvRecord[];
  } catch (err) {
    const e = err as { message?: string; lines?: number };
    throw new ValidationError([{ field: "csv", message: `line ${(e.lines ?? 0) + rowOffset}: ${e.message ?? "cannot be parsed"}` }]);
  }
}
