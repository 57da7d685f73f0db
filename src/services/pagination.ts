import { sql, type AnyColumn, type SQL } from "drizzle-orm";
import { ValidationError } from "../errors";

/** A timestamptz column as ISO text with microseconds, for cursors (a JS Date keeps only milliseconds). */
export function cursorText(column: AnyColumn): SQL<string> {
  return sql<string>`to_char(${column} at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`;
}

/** Opaque keyset cursor over (timestamp, id). */
export interface CursorKey {
  at: string;
  id: string;
}

/** `at` as a string keeps PostgreSQL's microseconds (a Date would truncate them to milliseconds and skip rows). */
export function encodeCursor(at: Date | string, id: string): string {
  return Buffer.from(JSON.stringify({ at: typeof at === "string" ? at : at.toISOString(), id })).toString("base64url");
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z$/;

export function decodeCursor(cursor: string | undefined): CursorKey | undefined {
  if (!cursor) return undefined;
  try {
    const v = JSON.parse(Buffer.from(cursor, "base64url").toString("utf8")) as Partial<CursorKey>;
    if (typeof v.at === "string" && typeof v.id === "string" && UUID.test(v.id) && ISO.test(v.at) && !Number.isNaN(Date.parse(v.at))) {
      return { at: v.at, id: v.id };
    }
  } catch {
    // fall through
  }
  throw new ValidationError([{ field: "cursor", message: "is not a cursor this API returned" }]);
}

export interface Page<T> {
  items: T[];
  nextCursor: string | null;
}
