import { and, desc, eq, getTableColumns, sql, type SQL } from "drizzle-orm";
import { z } from "zod";
import { events } from "../../db/schema/index";
import { EVENT_TYPES } from "../../domain/events/types";
import { ValidationError, zodIssues } from "../../errors";
import { dbOf, requirePermission, type Ctx } from "../context";
import { loadVisibleContact } from "../contacts/internal";
import { cursorText, decodeCursor, encodeCursor, type Page } from "../pagination";

export const ListEventsInput = z.object({
  contactId: z.uuid(),
  type: z.enum(EVENT_TYPES as [string, ...string[]]).optional(),
  cursor: z.string().max(500).optional(),
  limit: z.coerce.number().int().min(1).max(200).default(50),
});

export interface EventView {
  id: string;
  contactId: string;
  type: string;
  occurredAt: string;
  receivedAt: string;
  source: string;
  idempotencyKey: string;
  data: Record<string, unknown>;
  processedAt: string | null;
}

/** A contact's timeline, newest first. Message text is shown only to roles that may see the contact. */
export async function listEvents({ ctx, input }: { ctx: Ctx; input: unknown }): Promise<Page<EventView>> {
  requirePermission(ctx, "events:read");
  const parsed = ListEventsInput.safeParse(input);
  if (!parsed.success) throw new ValidationError(zodIssues(parsed.error.issues));
  const v = parsed.data;
  const db = dbOf(ctx);
  await loadVisibleContact(db, ctx, v.contactId);
  const conds: SQL[] = [eq(events.tenantId, ctx.tenantId), eq(events.contactId, v.contactId)];
  if (v.type) conds.push(eq(events.type, v.type));
  const cursor = decodeCursor(v.cursor);
  if (cursor) conds.push(sql`(${events.occurredAt}, ${events.id}) < (${cursor.at}::timestamptz, ${cursor.id}::uuid)`);
  const rows = await db
    .select({ ...getTableColumns(events), cursorAt: cursorText(events.occurredAt) })
    .from(events)
    .where(and(...conds))
    .orderBy(desc(events.occurredAt), desc(events.id))
    .limit(v.limit + 1);
  const more = rows.length > v.limit;
  const page = more ? rows.slice(0, v.limit) : rows;
  const last = page.at(-1);
  return {
    items: page.map((r) => ({
      id: r.id,
      contactId: r.contactId,
      type: r.type,
      occurredAt: r.occurredAt.toISOString(),
      receivedAt: r.receivedAt.toISOString(),
      source: r.source,
      idempotencyKey: r.idempotencyKey,
      data: r.payload,
      processedAt: r.processedAt?.toISOString() ?? null,
    })),
    nextCursor: more && last ? encodeCursor(last.cursorAt, last.id) : null,
  };
}
