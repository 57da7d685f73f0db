import { and, asc, eq, gt, inArray, isNull, lt, sql } from "drizzle-orm";
import { z } from "zod";
import { contacts, leads, staff, wecomTransfers } from "../../db/schema/index";
import { chooseConsultant } from "../../domain/leads/route";
import { NotFoundError, ValidationError, zodIssues } from "../../errors";
import { WecomError } from "../../wecom/api/errors";
import { jobId } from "../../queue/catalog";
import { afterCommit, audit, dbOf, requirePermission, withTransaction, type Ctx, type ServiceDeps } from "../context";
import { loadWecomApp } from "../wecom/settings";
import { notifyStaff } from "../notifications/notify";
import { candidates, contactTagsByGroup, leadEnv, lockLeads, moveLead } from "./internal";

export const OffboardInput = z
  .object({
    reason: z.string().trim().min(1, "a reason is required").max(500),
    /** One successor for the whole book; omitted: each contact by the assignment strategy chain (shifts ignored). */
    toStaffId: z.uuid().optional(),
    /**
     * How WeCom moves the customers: resigned (离职继承: the consultant has left in WeCom's admin),
     * on_job (在职继承: still employed; WeCom allows 2 per customer in 90 days and tells the
     * customer), none (Siyu only).
     */
    wecom: z.enum(["resigned", "on_job", "none"]).default("resigned"),
  })
  .strict();

/** Contacts handed over per transaction (and WeCom's maximum per transfer call). */
const BATCH = 100;

export interface OffboardReport {
  staffId: string;
  contacts: number;
  leads: number;
  toPool: number;
  bySuccessor: Record<string, number>;
  wecomQueued: number;
}

/**
 * 离职继承: a consultant leaves. They are deactivated (no new leads), and their whole book moves in
 * batches of 100 contacts, each batch one transaction: every contact (with its open lead, tasks
 * following) to the named successor or by the strategy chain, ignoring shifts, within capacity
 * (leads nobody can take go to the pool). Every move is in lead_assignments (kind `resign`) and
 * the audit log. WeCom transfers are queued in the same transactions (wecom_transfers, status
 * pending) and sent by a job, at most 100 customers per call, so a crash loses none.
 */
export async function offboardStaff({ ctx, id, input }: { ctx: Ctx; id: string; input: unknown }): Promise<OffboardReport> {
  requirePermission(ctx, "leads:assign");
  const p = OffboardInput.safeParse(input);
  if (!p.success) throw new ValidationError(zodIssues(p.error.issues));
  const o = p.data;
  if (!z.uuid().safeParse(id).success) throw new NotFoundError("staff");
  const db = dbOf(ctx);
  const [leaver] = await db.select().from(staff).where(and(eq(staff.tenantId, ctx.tenantId), eq(staff.id, id)));
  if (!leaver) throw new NotFoundError("staff");
  if (o.toStaffId === id) throw new ValidationError([{ field: "toStaffId", message: "is the consultant who is leaving" }]);
  if (o.toStaffId) {
    const [to] = await db.select({ role: staff.role, active: staff.active }).from(staff).where(and(eq(staff.tenantId, ctx.tenantId), eq(staff.id, o.toStaffId)));
    if (!to || !to.active || to.role !== "consultant") throw new ValidationError([{ field: "toStaffId", message: "is not an active consultant of this tenant" }]);
  }
  if (o.wecom !== "none" && !leaver.wecomUserId) throw new ValidationError([{ field: "wecom", message: "the consultant has no WeCom userid: use none" }]);
  await withTransaction(ctx, async (tx, ctx) => {
    await tx.update(staff).set({ active: false, updatedAt: ctx.deps.now() }).where(eq(staff.id, id));
    await audit(tx, ctx, { action: "staff.offboard", entityType: "staff", entityId: id, before: { active: leaver.active }, after: { active: false, reason: o.reason, toStaffId: o.toStaffId ?? null, wecom: o.wecom } });
  });
  const report: OffboardReport = { staffId: id, contacts: 0, leads: 0, toPool: 0, bySuccessor: {}, wecomQueued: 0 };
  let after = "00000000-0000-0000-0000-000000000000";
  // Settings and time zone per clinic, read once for the whole handover.
  const envs = new Map<string, Awaited<ReturnType<typeof leadEnv>>>();
  for (;;) {
    const moved = await withTransaction(ctx, async (tx, ctx) => {
      // The next batch of the leaver's contacts, locked in id order (then the tenant's lead lock).
      const batch = await tx
        .select({ id: contacts.id, clinicId: contacts.clinicId, externalUserId: contacts.externalUserId })
        .from(contacts)
        .where(and(eq(contacts.tenantId, ctx.tenantId), eq(contacts.ownerStaffId, id), gt(contacts.id, after), isNull(contacts.deletedAt)))
        .orderBy(asc(contacts.id))
        .limit(BATCH)
        .for("update");
      if (!batch.length) return null;
      await lockLeads(tx, ctx.tenantId);
      const open = await tx.select().from(leads).where(and(eq(leads.tenantId, ctx.tenantId), inArray(leads.contactId, batch.map((c) => c.id)), eq(leads.status, "open")));
      const leadOf = new Map(open.map((l) => [l.contactId, l]));
      const transfers: (typeof wecomTransfers.$inferInsert)[] = [];
      const pools = new Map<string, Awaited<ReturnType<typeof candidates>>>();
      const moves: { contactId: string; to: string | null }[] = [];
      for (const c of batch) {
        const lead = leadOf.get(c.id);
        const clinicId = lead?.clinicId ?? c.clinicId;
        let env = envs.get(clinicId ?? "");
        if (!env) envs.set(clinicId ?? "", (env = await leadEnv(tx, ctx.tenantId, clinicId)));
        let to: string | null = o.toStaffId ?? null;
        let strategy = null;
        if (!to) {
          // Loads are read once per batch and per clinic, then counted here as the batch fills them.
          const scope = (lead?.clinicId ?? c.clinicId) ?? "tenant";
          let pool = pools.get(scope);
          if (!pool) pools.set(scope, (pool = await candidates(tx, ctx.tenantId, lead?.clinicId ?? c.clinicId, scope)));
          const tags = lead ? await contactTagsByGroup(tx, ctx.tenantId, c.id) : {};
          const chain = env.config.assignment.chain.map((s) => ({ ...s, onShiftOnly: false }));
          const pick = chooseConsultant(pool, { needs: [...(lead?.need ? [lead.need] : []), ...(tags.need ?? [])] }, { ...env.config.assignment, chain }, ctx.deps.now(), env.timeZone, new Set([id]));
          to = pick?.staffId ?? null;
          strategy = pick?.strategy ?? null;
          const chosen = pool.find((x) => x.id === to);
          if (chosen) {
            chosen.turns++;
            if (lead) chosen.openLeads++;
          }
        }
        if (lead) {
          await moveLead(tx, ctx, lead, to, { kind: "resign", strategy, reason: o.reason, config: env.config, timeZone: env.timeZone });
          report.leads++;
          if (!to) report.toPool++;
        } else {
          await tx.update(contacts).set({ ownerStaffId: to, updatedAt: ctx.deps.now() }).where(eq(contacts.id, c.id));
        }
        moves.push({ contactId: c.id, to });
        report.contacts++;
        if (to) report.bySuccessor[to] = (report.bySuccessor[to] ?? 0) + 1;
        if (to && o.wecom !== "none" && c.externalUserId) {
          transfers.push({ tenantId: ctx.tenantId, contactId: c.id, externalUserId: c.externalUserId, handoverStaffId: id, takeoverStaffId: to, kind: o.wecom, status: "pending" });
        }
      }
      if (transfers.length) await tx.insert(wecomTransfers).values(transfers);
      await audit(
        tx,
        ctx,
        moves.map((m) => ({ action: "contact.reassign", entityType: "contact", entityId: m.contactId, before: { ownerStaffId: id }, after: { ownerStaffId: m.to, via: "offboard", reason: o.reason } })),
      );
      if (transfers.length) afterCommit(ctx, () => ctx.deps.producer.enqueue("wecom-transfers", { tenantId: ctx.tenantId }, { jobId: jobId("wtransfer", ctx.tenantId, String(Date.now())) }));
      report.wecomQueued += transfers.length;
      return batch[batch.length - 1]!.id;
    });
    if (!moved) break;
    after = moved;
  }
  // Each successor hears once what they took over.
  await withTransaction(ctx, async (tx, ctx) => {
    await notifyStaff(
      tx,
      ctx,
      Object.entries(report.bySuccessor).map(([staffId, n]) => ({ staffId, kind: "transfer", title: "客户交接", body: `${leaver.name} 离职，${n} 位客户已转交给您，请在工作台查看并尽快联系。`, dedupeKey: `offboard-${id}-${staffId}-${ctx.deps.now().toISOString().slice(0, 10)}` })),
    );
  });
  return report;
}

export interface TransferView {
  id: string;
  contactId: string;
  externalUserId: string;
  handoverStaffId: string;
  takeoverStaffId: string;
  kind: string;
  status: string;
  errcode: number | null;
  detail: string | null;
  requestedAt: string;
  updatedAt: string;
}

export const ListTransfersInput = z.object({ status: z.enum(["pending", "requested", "done", "failed"]).optional(), limit: z.coerce.number().int().min(1).max(1000).default(200) });

/** WeCom transfers of a consultant's customers (as handover), newest first. */
export async function listTransfers({ ctx, id, input }: { ctx: Ctx; id: string; input?: unknown }): Promise<{ items: TransferView[]; counts: Record<string, number> }> {
  requirePermission(ctx, "leads:assign");
  const p = ListTransfersInput.safeParse(input ?? {});
  if (!p.success) throw new ValidationError(zodIssues(p.error.issues));
  const db = dbOf(ctx);
  const [s] = await db.select({ id: staff.id }).from(staff).where(and(eq(staff.tenantId, ctx.tenantId), eq(staff.id, id)));
  if (!s) throw new NotFoundError("staff");
  const mine = and(eq(wecomTransfers.tenantId, ctx.tenantId), eq(wecomTransfers.handoverStaffId, id));
  const rows = await db
    .select()
    .from(wecomTransfers)
    .where(and(mine, p.data.status ? eq(wecomTransfers.status, p.data.status) : undefined))
    .orderBy(sql`${wecomTransfers.requestedAt} desc`, asc(wecomTransfers.id))
    .limit(p.data.limit);
  const counts = Object.fromEntries((await db.select({ status: wecomTransfers.status, n: sql<number>`count(*)::int` }).from(wecomTransfers).where(mine).groupBy(wecomTransfers.status)).map((r) => [r.status, r.n]));
  return {
    items: rows.map((r) => ({ id: r.id, contactId: r.contactId, externalUserId: r.externalUserId, handoverStaffId: r.handoverStaffId, takeoverStaffId: r.takeoverStaffId, kind: r.kind, status: r.status, errcode: r.errcode, detail: r.detail, requestedAt: r.requestedAt.toISOString(), updatedAt: r.updatedAt.toISOString() })),
    counts,
  };
}

/** What WeCom's per-customer errcodes mean for a transfer. */
const TRANSFER_ERRORS: Record<number, string> = {
  40096: "WeCom does not know this customer",
  40097: "the consultant has not left in WeCom yet: resign them in WeCom's admin, or use on_job",
  40098: "the successor is not active in WeCom",
  40100: "the customer is already being transferred",
  40128: "WeCom allows at most 2 on-job transfers per customer in 90 days",
  40129: "the customer is being transferred",
  40130: "handover and takeover are the same person",
  40131: "the customer is not a friend of the consultant who left",
};

/** WeCom transfer_result statuses: 1 done, 2 waiting, 3 refused by the customer, 4 the successor is full, 5 no record. */
const RESULT_STATUS: Record<number, { status: string; detail: string | null }> = {
  1: { status: "done", detail: null },
  2: { status: "requested", detail: null },
  3: { status: "failed", detail: "the customer refused the transfer" },
  4: { status: "failed", detail: "the successor has reached WeCom's customer limit" },
  5: { status: "failed", detail: "WeCom has no record of this transfer" },
};

/**
 * The transfers job: send pending transfers to WeCom (per handover, takeover and kind, 100
 * customers per call), then refresh requested ones from transfer_result. Idempotent: a row moves
 * from pending only with WeCom's answer for it.
 */
export async function runWecomTransfers(deps: ServiceDeps, tenantId: string): Promise<{ sent: number; failed: number; refreshed: number }> {
  const out = { sent: 0, failed: 0, refreshed: 0 };
  const app = await loadWecomApp(deps, tenantId);
  if (!app) return out;
  const client = deps.wecomClient(app);
  const people = new Map((await deps.db.select({ id: staff.id, userId: staff.wecomUserId }).from(staff).where(eq(staff.tenantId, tenantId))).map((s) => [s.id, s.userId]));
  const now = () => deps.now();
  const pending = await deps.db.select().from(wecomTransfers).where(and(eq(wecomTransfers.tenantId, tenantId), eq(wecomTransfers.status, "pending"))).orderBy(asc(wecomTransfers.requestedAt)).limit(10_000);
  const groups = new Map<string, typeof pending>();
  for (const r of pending) {
    const k = `${r.handoverStaffId} ${r.takeoverStaffId} ${r.kind}`;
    const g = groups.get(k);
    if (g) g.push(r);
    else groups.set(k, [r]);
  }
  for (const rows of groups.values()) {
    const first = rows[0]!;
    const handover = people.get(first.handoverStaffId);
    const takeover = people.get(first.takeoverStaffId);
    if (!handover || !takeover) {
      await deps.db.update(wecomTransfers).set({ status: "failed", detail: "handover or successor has no WeCom userid", updatedAt: now() }).where(inArray(wecomTransfers.id, rows.map((r) => r.id)));
      out.failed += rows.length;
      continue;
    }
    for (let i = 0; i < rows.length; i += 100) {
      const part = rows.slice(i, i + 100);
      let answers: { external_userid: string; errcode: number }[];
      try {
        const input = { handoverUserId: handover, takeoverUserId: takeover, externalUserIds: part.map((r) => r.externalUserId) };
        answers = (first.kind === "on_job" ? await client.transferCustomer({ ...input, transferSuccessMsg: "您好，您的专属顾问已更换，后续将由新顾问为您服务。" }) : await client.resignedTransferCustomer(input)).customer;
      } catch (err) {
        // A whole-call refusal (e.g. 40097: not resigned yet) fails the part with WeCom's reason; network errors retry the job.
        if (!(err instanceof WecomError)) throw err;
        await deps.db
          .update(wecomTransfers)
          .set({ status: "failed", errcode: err.errcode, detail: TRANSFER_ERRORS[err.errcode] ?? err.message.slice(0, 300), updatedAt: now() })
          .where(inArray(wecomTransfers.id, part.map((r) => r.id)));
        out.failed += part.length;
        continue;
      }
      // WeCom answers per customer: one update per errcode (0: requested).
      const byExt = new Map(answers.map((a) => [a.external_userid, a.errcode]));
      const byCode = new Map<number, string[]>();
      for (const r of part) {
        const code = byExt.get(r.externalUserId) ?? -1;
        byCode.set(code, [...(byCode.get(code) ?? []), r.id]);
      }
      for (const [code, ids] of byCode) {
        const ok = code === 0;
        await deps.db
          .update(wecomTransfers)
          .set({ status: ok ? "requested" : "failed", errcode: ok ? null : code, detail: ok ? null : (TRANSFER_ERRORS[code] ?? `WeCom errcode ${code}`), updatedAt: now() })
          .where(inArray(wecomTransfers.id, ids));
        if (ok) out.sent += ids.length;
        else out.failed += ids.length;
      }
    }
  }
  // Refresh what WeCom is still working on (a transfer completes 24 h after it starts).
  const waiting = await deps.db
    .selectDistinct({ handover: wecomTransfers.handoverStaffId, takeover: wecomTransfers.takeoverStaffId, kind: wecomTransfers.kind })
    .from(wecomTransfers)
    .where(and(eq(wecomTransfers.tenantId, tenantId), eq(wecomTransfers.status, "requested"), lt(wecomTransfers.updatedAt, new Date(now().getTime() + 1000))));
  for (const w of waiting) {
    const handover = people.get(w.handover);
    const takeover = people.get(w.takeover);
    if (!handover || !takeover) continue;
    let cursor: string | undefined;
    do {
      const input = { handoverUserId: handover, takeoverUserId: takeover, ...(cursor ? { cursor } : {}) };
      const r = w.kind === "on_job" ? await client.transferResult(input) : await client.resignedTransferResult(input);
      for (const c of r.customer) {
        const s = RESULT_STATUS[c.status];
        if (!s || s.status === "requested") continue;
        const changed = await deps.db
          .update(wecomTransfers)
          .set({ status: s.status, detail: s.detail, updatedAt: now() })
          .where(and(eq(wecomTransfers.tenantId, tenantId), eq(wecomTransfers.externalUserId, c.external_userid), eq(wecomTransfers.handoverStaffId, w.handover), eq(wecomTransfers.takeoverStaffId, w.takeover), eq(wecomTransfers.status, "requested")))
          .returning({ id: wecomTransfers.id });
        out.refreshed += changed.length;
      }
      cursor = r.next_cursor || undefined;
    } while (cursor);
  }
  return out;
}

/** Tenants with transfers to send or to follow up (for the daily refresh). */
export async function tenantsWithOpenTransfers(deps: ServiceDeps): Promise<string[]> {
  const rows = await deps.db.selectDistinct({ tenantId: wecomTransfers.tenantId }).from(wecomTransfers).where(inArray(wecomTransfers.status, ["pending", "requested"]));
  return rows.map((r) => r.tenantId);
}
