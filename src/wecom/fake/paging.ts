import { fail } from "./errors";

// Cursors are opaque to callers (as WeCom's are) but encode an offset into a stable ordering plus
// the list they belong to, so a cursor from one API is rejected (40058) by another.

export function encodeCursor(list: string, offset: number): string {
  return Buffer.from(`${list}:${offset}`, "utf8").toString("base64url");
}

export function decodeCursor(list: string, cursor: string | undefined): number {
  if (cursor === undefined || cursor === "") return 0;
  const text = Buffer.from(cursor, "base64url").toString("utf8");
  const m = /^(.+):(\d+)$/.exec(text);
  if (!m || m[1] !== list) return fail(40058, "invalid cursor");
  return Number(m[2]);
}

/** One page of `items` from `cursor`; next_cursor is "" on the last page. */
export function page<T>(list: string, items: readonly T[], cursor: string | undefined, limit: number): { items: T[]; nextCursor: string } {
  const offset = decodeCursor(list, cursor);
  const slice = items.slice(offset, offset + limit);
  const end = offset + slice.length;
  return { items: slice, nextCursor: end < items.length ? encodeCursor(list, end) : "" };
}
