import { and, desc, eq, inArray, lt, or, sql, type SQL } from "drizzle-orm";
import { z } from "zod";
import { contacts, events, wecomCallbacks } from "../../db/schema/index";
import { ValidationError, zodIssues } from "../../errors";
import { decodeCursor, encodeCursor, type Page } from "../pagination";
import { dbOf, requirePermission, type Ctx } from "../context";

export const ListWecomCallbacksInput = z.object({
  cursor: z.string().max(200).optional(),
  limit: z.coerce.number().int().min(1).max(100).default(20),
});

export interface WecomCallbackView {
  id: string;
  /** external_contact | external_chat | external_tag | message | other */
  kind: string;
  changeType: string | null;
  /** UpdateDetail of a chat update (add_member, del_member …). */
  detail: string | null;
  /** The staff member's WeCom userid, the customer's external_userid, the chat: what the callback is about. */
  userId: string | null;
  externalUserIds: string[];
  chatId: string | null;
  state: string | null;
  receivedAt: string;
  /** How many times WeCom delivered it (retries of an unanswered callback are counted, stored once). */
  deliveries: number;
  processedAt: string | null;
  attempts: number;
  lastError: string | null;
  /** What it became: the events it raised, each with its contact. */
  events: { id: string; type: string; contactId: string; contactName: string | null }[];
  /** The contacts it is about, as Siyu knows them now (by external_userid). */
  contacts: { id: string; name: string | null; externalUserId: string }[];
}

const str = (v: unknown) => (typeof v === "string" && v ? v : null);

/**
 * The WeCom callback inbox, newest first (cursor paging), with what each callback became: the
 * events raised from it (keyed `wecom-<dedupe key>`, one per customer for a group change, as
 * applyWecomCallback keys them) and the contacts it names. For the sandbox page and for admins checking that WeCom reaches Siyu.
 */
export async function listWecomCallbacks({ ctx, input }: { ctx: Ctx; input?: unknown }): Promise<Page<WecomCallbackView>> {
  requirePermission(ctx, "wecom:manage");
  const p = ListWecomCallbacksInput.safeParse(input ?? {});
  if (!p.success) throw new ValidationError(zodIssues(p.error.issues));
  const after = decodeCursor(p.data.cursor);
  const db = dbOf(ctx);
  const conds: SQL[] = [eq(wecomCallbacks.tenantId, ctx.tenantId)];
  if (after) {
    conds.push(or(lt(wecomCallbacks.receivedAt, sql`${after.at}::timestamptz`), and(eq(wecomCallbacks.receivedAt, sql`${after.at}::timestamptz`), lt(wecomCallbacks.id, after.id)))!);
  }
  const rows = await db
    .select({
      id: wecomCallbacks.id,
      kind: wecomCallbacks.kind,
      changeType: wecomCallbacks.changeType,
      dedupeKey: wecomCallbacks.dedupeKey,
      decoded: wecomCallbacks.decoded,
      receivedAt: wecomCallbacks.receivedAt,
      receivedText: sql<string>`to_char(${wecomCallbacks.receivedAt} at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`,
      deliveries: wecomCallbacks.deliveries,
      processedAt: wecomCallbacks.processedAt,
      attempts: wecomCallbacks.attempts,
      lastError: wecomCallbacks.lastError,
    })
    .from(wecomCallbacks)
    .where(and(...conds))
    .orderBy(desc(wecomCallbacks.receivedAt), desc(wecomCallbacks.id))
    .limit(p.data.limit + 1);
  const page = rows.slice(0, p.data.limit);

  // The events each callback raised, by their exact keys (equality keeps to the unique index):
  // `wecom-<dedupe key>` cut at 200, and for a group change `<that>-<member>` per customer.
  const keyOf = (dedupeKey: string) => `wecom-${dedupeKey}`.slice(0, 200);
  const keysOf = (r: (typeof page)[number]) => {
    const key = keyOf(r.dedupeKey);
    return r.kind === "external_chat" ? [key, ...externalIds(r.decoded).map((ext) => `${key}-${ext}`.slice(0, 200))] : [key];
  };
  const keys = [...new Set(page.flatMap(keysOf))];
  const raised = keys.length
    ? await db
        .select({ id: events.id, type: events.type, key: events.idempotencyKey, contactId: events.contactId, contactName: contacts.name })
        .from(events)
        .innerJoin(contacts, eq(contacts.id, events.contactId))
        .where(and(eq(events.tenantId, ctx.tenantId), inArray(events.idempotencyKey, keys)))
    : [];
  const named = page.flatMap((r) => externalIds(r.decoded));
  const known = named.length
    ? await db
        .select({ id: contacts.id, name: contacts.name, externalUserId: contacts.externalUserId })
        .from(contacts)
        .where(and(eq(contacts.tenantId, ctx.tenantId), inArray(contacts.externalUserId, [...new Set(named)])))
    : [];
  const byExt = new Map(known.map((c) => [c.externalUserId!, { id: c.id, name: c.name, externalUserId: c.externalUserId! }]));

  return {
    items: page.map((r) => {
      const mine = new Set(keysOf(r));
      const d = r.decoded;
      const ext = externalIds(d);
      return {
        id: r.id,
        kind: r.kind,
        changeType: r.changeType,
        detail: str(d.updateDetail),
        // WeCom's events come from "sys"; a message names its sender.
        userId: str(d.userId) ?? (r.kind === "message" ? str(d.fromUserName) : null),
        externalUserIds: ext,
        chatId: str(d.chatId),
        state: str(d.state),
        receivedAt: r.receivedAt.toISOString(),
        deliveries: r.deliveries,
        processedAt: r.processedAt?.toISOString() ?? null,
        attempts: r.attempts,
        lastError: r.lastError,
        events: raised.filter((e) => mine.has(e.key)).map((e) => ({ id: e.id, type: e.type, contactId: e.contactId, contactName: e.contactName })),
        contacts: ext.flatMap((x) => (byExt.has(x) ? [byExt.get(x)!] : [])),
      };
    }),
    nextCursor: rows.length > p.data.limit ? encodeCursor(page.at(-1)!.receivedText, page.at(-1)!.id) : null,
  };
}

/** Customers named by a decoded callback: the contact of a contact change, the customers among a group's changed members. */
function externalIds(d: Record<string, unknown>): string[] {
  if (typeof d.externalUserId === "string" && d.externalUserId) return [d.externalUserId];
  if (Array.isArray(d.memChangeList)) return d.memChangeList.filter((m): m is string => typeof m === "string" && /^w[mo]/.test(m));
  return [];
}
