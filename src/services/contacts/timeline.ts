import { and, desc, eq, sql, type SQL } from "drizzle-orm";
import { z } from "zod";
import { events, tagGroups, tagHistory, tags } from "../../db/schema/index";
import { ValidationError, zodIssues } from "../../errors";
import { dbOf, requirePermission, type Ctx } from "../context";
import { loadVisibleContact } from "./internal";

export const TimelineInput = z.object({
  /** ISO time: entries strictly before it (the `nextBefore` of the previous page). */
  before: z.iso.datetime({ offset: true }).optional(),
  limit: z.coerce.number().int().min(1).max(200).default(50),
});

export type TimelineEntry =
  | { kind: "event"; at: string; id: string; type: string; source: string; data: Record<string, unknown> }
  | { kind: "tag"; at: string; action: "add" | "remove"; group: string; tag: string; source: string; ruleId: string | null; ruleVersion: number | null; eventId: string | null };

/** Events and tag changes of one contact, newest first: what happened and how the tags moved because of it. */
export async function contactTimeline({ ctx, contactId, input }: { ctx: Ctx; contactId: string; input: unknown }): Promise<{ items: TimelineEntry[]; nextBefore: string | null }> {
  requirePermission(ctx, "events:read");
  const p = TimelineInput.safeParse(input);
  if (!p.success) throw new ValidationError(zodIssues(p.error.issues));
  const { before, limit } = p.data;
  const db = dbOf(ctx);
  await loadVisibleContact(db, ctx, contactId);
  const until = before ? new Date(before) : new Date("9999-01-01T00:00:00Z");
  // Times compare at millisecond precision (what an ISO cursor carries); PostgreSQL keeps microseconds.
  const ms = (col: typeof events.occurredAt | typeof tagHistory.at) => sql`date_trunc('milliseconds', ${col})`;
  const evsQ = (cond: SQL, n?: number) => {
    const q = db.select().from(events).where(and(eq(events.tenantId, ctx.tenantId), eq(events.contactId, contactId), cond)).orderBy(desc(events.occurredAt));
    return n ? q.limit(n) : q;
  };
  const histQ = (cond: SQL, n?: number) => {
    const q = db
      .select({ id: tagHistory.id, at: tagHistory.at, action: tagHistory.action, group: tagGroups.key, tag: tags.name, source: tagHistory.source, ruleId: tagHistory.ruleId, ruleVersion: tagHistory.ruleVersion, eventId: tagHistory.eventId })
      .from(tagHistory)
      .innerJoin(tags, eq(tags.id, tagHistory.tagId))
      .innerJoin(tagGroups, eq(tagGroups.id, tags.groupId))
      .where(and(eq(tagHistory.tenantId, ctx.tenantId), eq(tagHistory.contactId, contactId), cond))
      .orderBy(desc(tagHistory.at), desc(tagHistory.id));
    return n ? q.limit(n) : q;
  };
  const toEntries = (evs: (typeof events.$inferSelect)[], hist: Awaited<ReturnType<typeof histQ>>): TimelineEntry[] => [
    ...evs.map((e) => ({ kind: "event" as const, at: e.occurredAt.toISOString(), id: e.id, type: e.type, source: e.source, data: e.payload })),
    ...hist.map((h) => ({ kind: "tag" as const, at: h.at.toISOString(), action: h.action, group: h.group, tag: h.tag, source: h.source, ruleId: h.ruleId, ruleVersion: h.ruleVersion, eventId: h.eventId })),
  ];
  const order = (a: TimelineEntry, b: TimelineEntry) => (a.at < b.at ? 1 : a.at > b.at ? -1 : a.kind === b.kind ? 0 : a.kind === "tag" ? -1 : 1);
  const iso = until.toISOString();
  const merged = toEntries(await evsQ(sql`${ms(events.occurredAt)} < ${iso}::timestamptz`, limit + 1), await histQ(sql`${ms(tagHistory.at)} < ${iso}::timestamptz`, limit + 1)).sort(order);
  if (merged.length <= limit) return { items: merged, nextBefore: null };
  // Cut at an instant and keep every entry of that instant (the tag changes of one event share
  // their transaction's time), so paging with `before` never skips or repeats an entry.
  const cut = merged[limit - 1]!.at;
  const page = merged.filter((e) => e.at > cut);
  page.push(...toEntries(await evsQ(sql`${ms(events.occurredAt)} = ${cut}::timestamptz`), await histQ(sql`${ms(tagHistory.at)} = ${cut}::timestamptz`)).sort(order));
  return { items: page, nextBefore: cut };
}
