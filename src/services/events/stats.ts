import { and, eq, gt, isNotNull, isNull, sql } from "drizzle-orm";
import { events } from "../../db/schema/index";
import { dbOf, requirePermission, type Ctx } from "../context";

export interface EventStats {
  /** Stored, not yet applied. */
  pending: number;
  /** Not yet applied, and the last attempt failed (see lastError). */
  failing: number;
  processedLastHour: number;
  oldestPendingAt: string | null;
  lastError: string | null;
}

/** The tenant's event pipeline at a glance, from PostgreSQL (the source of truth), never other tenants' numbers. */
export async function eventStats({ ctx }: { ctx: Ctx }): Promise<EventStats> {
  requirePermission(ctx, "queues:read");
  const db = dbOf(ctx);
  const hourAgo = new Date(ctx.deps.now().getTime() - 3600_000);
  const [pending] = await db
    .select({
      n: sql<number>`count(*)::int`,
      failing: sql<number>`count(*) filter (where ${events.lastError} is not null)::int`,
      oldest: sql<string | null>`min(${events.receivedAt})`,
    })
    .from(events)
    .where(and(eq(events.tenantId, ctx.tenantId), isNull(events.processedAt)));
  const [done] = await db
    .select({ n: sql<number>`count(*)::int` })
    .from(events)
    .where(and(eq(events.tenantId, ctx.tenantId), isNotNull(events.processedAt), gt(events.processedAt, hourAgo)));
  const [err] = await db
    .select({ e: events.lastError })
    .from(events)
    .where(and(eq(events.tenantId, ctx.tenantId), isNull(events.processedAt), isNotNull(events.lastError)))
    .limit(1);
  return {
    pending: pending?.n ?? 0,
    failing: pending?.failing ?? 0,
    processedLastHour: done?.n ?? 0,
    oldestPendingAt: pending?.oldest ? new Date(pending.oldest).toISOString() : null,
    lastError: err?.e ?? null,
  };
}
