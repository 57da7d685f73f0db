import { and, eq, isNull, sql } from "drizzle-orm";
import { z } from "zod";
import { rowsOf } from "../../db/client";
import { alertEpisodes } from "../../db/schema/index";
import { ValidationError, NotFoundError, zodIssues } from "../../errors";
import { audit, dbOf, requirePermission, withTransaction, type Ctx } from "../context";

export const ListAlertsInput = z.object({
  /** open (default first anyway), closed, or all. */
  status: z.enum(["open", "closed", "all"]).default("all"),
  ruleId: z.uuid().optional(),
  limit: z.coerce.number().int().min(1).max(200).default(50),
  cursor: z.string().max(500).optional(),
});

export interface AlertEpisodeView {
  id: string;
  ruleId: string;
  ruleName: string;
  metric: string;
  status: "open" | "closed";
  /** "all", or the clinic's id. */
  scopeKey: string;
  clinicId: string | null;
  clinicName: string | null;
  openedAt: string;
  lastSeenAt: string;
  closedAt: string | null;
  /** The latest value judged and what it was judged against (the mean, or the threshold). */
  value: number | null;
  baseline: number | null;
  detail: Record<string, unknown>;
  notifiedAt: string | null;
  acknowledgedAt: string | null;
  acknowledgedByStaffId: string | null;
}

interface Row {
  id: string;
  rule_id: string;
  rule_name: string;
  metric: string;
  scope_key: string;
  clinic_id: string | null;
  clinic_name: string | null;
  opened_at: string | Date;
  opened_text: string;
  last_seen_at: string | Date;
  closed_at: string | Date | null;
  value: number | null;
  baseline: number | null;
  detail: Record<string, unknown>;
  notified_at: string | Date | null;
  acked_at: string | Date | null;
  acked_by_staff_id: string | null;
}

const iso = (v: string | Date | null) => (v === null ? null : new Date(v).toISOString());

function view(r: Row): AlertEpisodeView {
  return {
    id: r.id,
    ruleId: r.rule_id,
    ruleName: r.rule_name,
    metric: r.metric,
    status: r.closed_at === null ? "open" : "closed",
    scopeKey: r.scope_key,
    clinicId: r.clinic_id,
    clinicName: r.clinic_name,
    openedAt: iso(r.opened_at)!,
    lastSeenAt: iso(r.last_seen_at)!,
    closedAt: iso(r.closed_at),
    value: r.value === null ? null : Number(r.value),
    baseline: r.baseline === null ? null : Number(r.baseline),
    detail: r.detail ?? {},
    notifiedAt: iso(r.notified_at),
    acknowledgedAt: iso(r.acked_at),
    acknowledgedByStaffId: r.acked_by_staff_id,
  };
}

interface Cursor {
  open: 0 | 1;
  at: string;
  id: string;
}

function decode(cursor: string | undefined): Cursor | undefined {
  if (!cursor) return undefined;
  try {
    const v = JSON.parse(Buffer.from(cursor, "base64url").toString("utf8")) as Partial<Cursor>;
    if ((v.open === 0 || v.open === 1) && typeof v.at === "string" && !Number.isNaN(Date.parse(v.at)) && z.uuid().safeParse(v.id).success) return v as Cursor;
  } catch {
    // fall through
  }
  throw new ValidationError([{ field: "cursor", message: "is not a cursor this API returned" }]);
}

function episodeQuery(ctx: Ctx, where: ReturnType<typeof sql>) {
  return sql`
    select e.id, e.rule_id, r.name as rule_name, r.metric, e.scope_key, c.id as clinic_id, c.name as clinic_name,
      e.opened_at, to_char(e.opened_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') as opened_text,
      e.last_seen_at, e.closed_at, e.value, e.baseline, e.detail, e.notified_at, e.acked_at, e.acked_by_staff_id
    from alert_episodes e
    join alert_rules r on r.tenant_id = ${ctx.tenantId}::uuid and r.id = e.rule_id
    left join clinics c on c.tenant_id = ${ctx.tenantId}::uuid and c.id::text = e.scope_key
    where e.tenant_id = ${ctx.tenantId}::uuid and ${where}`;
}

/**
 * Alert episodes for the dashboard: open ones first (newest first), then closed ones, cursor-paged,
 * with the number open now.
 */
export async function listAlerts({ ctx, input }: { ctx: Ctx; input: unknown }): Promise<{ items: AlertEpisodeView[]; nextCursor: string | null; openCount: number }> {
  requirePermission(ctx, "metrics:read");
  const p = ListAlertsInput.safeParse(input ?? {});
  if (!p.success) throw new ValidationError(zodIssues(p.error.issues));
  const { status, ruleId, limit } = p.data;
  const cur = decode(p.data.cursor);
  const conds = [sql`true`];
  if (status === "open") conds.push(sql`e.closed_at is null`);
  if (status === "closed") conds.push(sql`e.closed_at is not null`);
  if (ruleId) conds.push(sql`e.rule_id = ${ruleId}::uuid`);
  if (cur) conds.push(sql`((e.closed_at is null)::int, e.opened_at, e.id) < (${cur.open}::int, ${cur.at}::timestamptz, ${cur.id}::uuid)`);
  const db = dbOf(ctx);
  const rows = rowsOf<Row>(await db.execute(sql`${episodeQuery(ctx, sql.join(conds, sql` and `))} order by (e.closed_at is null) desc, e.opened_at desc, e.id desc limit ${limit + 1}`));
  const page = rows.slice(0, limit);
  const last = page[page.length - 1];
  const nextCursor = rows.length > limit && last ? Buffer.from(JSON.stringify({ open: last.closed_at === null ? 1 : 0, at: last.opened_text, id: last.id })).toString("base64url") : null;
  const [open] = await db.select({ n: sql<number>`count(*)::int` }).from(alertEpisodes).where(and(eq(alertEpisodes.tenantId, ctx.tenantId), isNull(alertEpisodes.closedAt)));
  return { items: page.map(view), nextCursor, openCount: Number(open?.n ?? 0) };
}

/** A manager acknowledges an episode (seen, being handled): recorded once, audited; it still closes when the metric recovers. */
export async function acknowledgeAlert({ ctx, id }: { ctx: Ctx; id: string }): Promise<AlertEpisodeView> {
  requirePermission(ctx, "analytics:manage");
  if (!z.uuid().safeParse(id).success) throw new NotFoundError("alert");
  return withTransaction(ctx, async (tx, ctx) => {
    const [row] = rowsOf<Row>(await tx.execute(sql`${episodeQuery(ctx, sql`e.id = ${id}::uuid`)} for update of e`));
    if (!row) throw new NotFoundError("alert");
    if (row.acked_at) return view(row);
    const at = ctx.deps.now();
    const by = ctx.actor.kind === "staff" ? ctx.actor.staffId : null;
    await tx
      .update(alertEpisodes)
      .set({ ackedAt: at, ackedByStaffId: by })
      .where(and(eq(alertEpisodes.tenantId, ctx.tenantId), eq(alertEpisodes.id, row.id)));
    await audit(tx, ctx, { action: "alert.ack", entityType: "alert_episode", entityId: row.id, after: { ruleId: row.rule_id, scopeKey: row.scope_key } });
    return view({ ...row, acked_at: at, acked_by_staff_id: by });
  });
}
