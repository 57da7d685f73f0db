import type { Config } from "../config/env";
import type { Db, DbOrTx, Tx } from "../db/client";
import { auditLog } from "../db/schema/index";
import type { Role } from "../domain/auth/permissions";
import { can, type Permission } from "../domain/auth/permissions";
import type { PiiCipher } from "../domain/pii/crypto";
import { AppError, ForbiddenError } from "../errors";
import type { Logger } from "../logger";
import type { Producer } from "../queue/producer";
import type { WecomClient } from "../wecom/api/client";

/** Long-lived dependencies every service may use. Built once per process. */
export interface ServiceDeps {
  db: Db;
  config: Readonly<Config>;
  logger: Logger;
  producer: Producer;
  pii: PiiCipher | undefined;
  now: () => Date;
  /** A WeCom API client for a corp's app (token cache and rate limits shared through Redis). */
  wecomClient: (app: { corpId: string; secret: string; agentId: number }) => WecomClient;
}

export type Actor =
  | { kind: "staff"; staffId: string; role: Role; name: string; via: "token" | "session" }
  | { kind: "system"; name: string };

/** Per-call context: who acts, for which tenant, in which request, optionally inside a transaction. */
export interface Ctx {
  deps: ServiceDeps;
  tenantId: string;
  actor: Actor;
  requestId?: string | undefined;
  logger: Logger;
  tx?: Tx | undefined;
  /** Work to run once the transaction in `tx` commits (set by withTransaction). */
  afterCommit?: (() => Promise<unknown>)[] | undefined;
}

export function systemCtx(deps: ServiceDeps, tenantId: string, name = "system", requestId?: string): Ctx {
  return { deps, tenantId, actor: { kind: "system", name }, logger: deps.logger, requestId };
}

/** The database handle to use: the open transaction when there is one. */
export function dbOf(ctx: Ctx): DbOrTx {
  return ctx.tx ?? ctx.deps.db;
}

/**
 * Run fn in a transaction, reusing the caller's when ctx already carries one. Work registered with
 * `afterCommit` inside runs once the outermost transaction has committed (not at all on rollback).
 */
export async function withTransaction<T>(ctx: Ctx, fn: (tx: Tx, ctx: Ctx) => Promise<T>): Promise<T> {
  if (ctx.tx) return fn(ctx.tx, ctx);
  const after: (() => Promise<unknown>)[] = [];
  const out = await ctx.deps.db.transaction(async (tx) => fn(tx, { ...ctx, tx, afterCommit: after }));
  for (const work of after) {
    await work().catch((err: Error) => ctx.logger.warn({ err: err.message }, "after-commit work failed; the sweeps retry it"));
  }
  return out;
}

/**
 * Run `work` after the current transaction commits (enqueue a job, wake a delivery). Only for work
 * that a sweep also does eventually: inside a transaction opened without withTransaction it is
 * left to the sweep; outside any transaction it runs now.
 */
export function afterCommit(ctx: Ctx, work: () => Promise<unknown>): void {
  if (ctx.afterCommit) ctx.afterCommit.push(work);
  else if (!ctx.tx) void work().catch((err: Error) => ctx.logger.warn({ err: err.message }, "after-commit work failed; the sweeps retry it"));
}

/** Throws ForbiddenError unless the acting staff member's role grants the permission. System actors may do anything. */
export function requirePermission(ctx: Ctx, permission: Permission): void {
  if (ctx.actor.kind === "system") return;
  if (!can(ctx.actor.role, permission)) {
    throw new ForbiddenError(`the ${ctx.actor.role} role may not ${permission.replace(":", " ")}`);
  }
}

export function actorStaffId(ctx: Ctx): string | null {
  return ctx.actor.kind === "staff" ? ctx.actor.staffId : null;
}

export function requirePii(ctx: Ctx): PiiCipher {
  if (!ctx.deps.pii) throw new AppError("SERVICE_UNAVAILABLE", "PII_KEY is not configured: phone numbers cannot be stored");
  return ctx.deps.pii;
}

export interface AuditEntry {
  action: string;
  entityType: string;
  entityId: string;
  before?: Record<string, unknown> | null;
  after?: Record<string, unknown> | null;
}

/** Write audit rows; call inside the transaction that makes the change. */
export async function audit(tx: DbOrTx, ctx: Ctx, entries: AuditEntry | AuditEntry[]): Promise<void> {
  const list = Array.isArray(entries) ? entries : [entries];
  if (list.length === 0) return;
  const rows = list.map((e) => ({
    tenantId: ctx.tenantId,
    actorStaffId: actorStaffId(ctx),
    actorKind: ctx.actor.kind,
    action: e.action,
    entityType: e.entityType,
    entityId: e.entityId,
    before: e.before ?? null,
    after: e.after ?? null,
    requestId: ctx.requestId ?? null,
  }));
  // Large imports write many rows; keep each statement well under PostgreSQL's parameter limit.
  for (let i = 0; i < rows.length; i += 2000) await tx.insert(auditLog).values(rows.slice(i, i + 2000));
}
