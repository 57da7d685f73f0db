import { ValidationError } from "../errors";

/** Opaque keyset cursor over (timestamp, id). */
export interface CursorKey {
  at: string;
  id: string;
}

export function encodeCursor(at: Date, id: string): string {
  return Buffer.from(JSON.stringify({ at: at.toISOString(), id })).toString("base64url");
}

export function decodeCursor(cursor: string | undefined): CursorKey | undefined {
  if (!cursor) return undefined;
  try {
    const v = JSON.parse(Buffer.from(cursor, "base64url").toString("utf8")) as Partial<CursorKey>;
    if (typeof v.at === "string" && typeof v.id === "string" && !Number.isNaN(Date.parse(v.at))) {
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
