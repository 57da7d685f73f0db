import { and, desc, eq, inArray, isNull, lt, or, sql, type SQL } from "drizzle-orm";
import { z } from "zod";
import { rowsOf, type Tx } from "../../db/client";
import { clinics, contacts, leadAssignments, leadGradeChanges, leads, leadSettings, staff } from "../../db/schema/index";
import { ownsOnly } from "../../domain/auth/permissions";
import { LeadConfig } from "../../domain/leads/config";
import { startOfLocalDay } from "../../domain/leads/route";
import { ConflictError, NotFoundError, ValidationError, zodIssues } from "../../errors";
import { audit, dbOf, requirePermission, withTransaction, type Ctx } from "../context";
import { cursorText, decodeCursor, encodeCursor, type Page } from "../pagination";
import { loadVisibleContact } from "../contacts/internal";
import { contactTagsByGroup, leadConfig, leadEnv, lockLeads, moveLead, openLeadsOf, regrade, routeLead } from "./internal";
import { startSop } from "./sop";

export const LeadView = z.object({
  id: z.string(),
  contactId: z.string(),
  contactName: z.string().nullable(),
  clinicId: z.string().nullable(),
  status: z.enum(["open", "converted", "lost"]),
  source: z.string(),
  sourceRef: z.string().nullable(),
  need: z.string().nullable(),
  score: z.number(),
  grade: z.enum(["A", "B", "C", "D"]),
  signals: z.number(),
  /** The consultant who owns it now (null: in the pool, or closed). */
  ownerStaffId: z.string().nullable(),
  ownerName: z.string().nullable(),
  inPool: z.boolean(),
  assignedAt: z.string().nullable(),
  firstContactDueAt: z.string().nullable(),
  firstContactedAt: z.string().nullable(),
  createdAt: z.string(),
  updatedAt: z.string(),
});
export type LeadView = z.infer<typeof LeadView>;

export const SignalInput = z
  .object({
    contactId: z.uuid(),
    source: z.string().min(1).max(64).default("api"),
    sourceRef: z.string().max(200).optional(),
    need: z.string().min(1).max(64).optional(),
    /** Points this signal adds (a repeat signal raises the lead's score). */
    score: z.number().int().min(0).max(100).default(10),
    clinicId: z.uuid().optional(),
  })
  .strict();

const iso = (d: Date | null) => (d ? d.toISOString() : null);

/** Leads as the API shows them, newest first, each with its keyset cursor position. */
async function loadViews(ctx: Ctx, where: SQL, limit = 1000): Promise<(LeadView & { cursorAt: string })[]> {
  const rows = await dbOf(ctx)
    .select({ lead: leads, contactName: contacts.name, ownerName: staff.name, cursorAt: cursorText(leads.createdAt) })
    .from(leads)
    .innerJoin(contacts, eq(contacts.id, leads.contactId))
    .leftJoin(staff, eq(staff.id, leads.activeOwnerStaffId))
    .where(and(eq(leads.tenantId, ctx.tenantId), where))
    .orderBy(desc(leads.createdAt), desc(leads.id))
    .limit(limit);
  return rows.map(({ lead: l, contactName, ownerName, cursorAt }) => ({
    id: l.id,
    contactId: l.contactId,
    contactName,
    clinicId: l.clinicId,
    status: l.status,
    source: l.source,
    sourceRef: l.sourceRef,
    need: l.need,
    score: l.score,
    grade: l.grade,
    signals: l.signals,
    ownerStaffId: l.activeOwnerStaffId,
    ownerName: l.activeOwnerStaffId ? ownerName : null,
    inPool: l.status === "open" && l.activeOwnerStaffId === null,
    assignedAt: iso(l.assignedAt),
    firstContactDueAt: iso(l.firstContactDueAt),
    firstContactedAt: iso(l.firstContactedAt),
    createdAt: l.createdAt.toISOString(),
    updatedAt: l.updatedAt.toISOString(),
    cursorAt,
  }));
}

const view = ({ cursorAt: _c, ...v }: LeadView & { cursorAt: string }): LeadView => v;

/** Views of leads by id (no visibility filter: for callers that chose the ids within it). */
export async function leadViews(ctx: Ctx, ids: string[]): Promise<LeadView[]> {
  if (!ids.length) return [];
  return (await loadViews(ctx, inArray(leads.id, ids), ids.length)).map(view);
}

/**
 * A consultant sees only the leads they own, and their closed ones (they stay the consultant of
 * record); everyone else with leads:read sees all.
 */
function visibility(ctx: Ctx): SQL | undefined {
  if (!(ctx.actor.kind === "staff" && ownsOnly(ctx.actor.role))) return undefined;
  return or(eq(leads.activeOwnerStaffId, ctx.actor.staffId), and(sql`${leads.status} <> 'open'`, eq(leads.ownerStaffId, ctx.actor.staffId)));
}

export async function getLead({ ctx, id }: { ctx: Ctx; id: string }): Promise<LeadView> {
  requirePermission(ctx, "leads:read");
  if (!z.uuid().safeParse(id).success) throw new NotFoundError("lead");
  const [v] = await loadViews(ctx, and(eq(leads.id, id), visibility(ctx))!);
  if (!v) throw new NotFoundError("lead");
  return view(v);
}

export const ListLeadsInput = z.object({
  status: z.enum(["open", "converted", "lost"]).optional(),
  grade: z.enum(["A", "B", "C", "D"]).optional(),
  /** `pool`: only leads waiting in the pool (公海); `mine`: only the caller's. */
  view: z.enum(["all", "mine", "pool"]).default("all"),
  ownerStaffId: z.uuid().optional(),
  cursor: z.string().optional(),
  limit: z.coerce.number().int().min(1).max(200).default(50),
});

/**
 * Leads, newest first, cursor-paginated. Consultants see their own leads, and the pool (which
 * holds no contact of anyone's: they claim from it); managers and admins see all.
 */
export async function listLeads({ ctx, input }: { ctx: Ctx; input: unknown }): Promise<Page<LeadView>> {
  requirePermission(ctx, "leads:read");
  const p = ListLeadsInput.safeParse(input ?? {});
  if (!p.success) throw new ValidationError(zodIssues(p.error.issues));
  const q = p.data;
  const conds: (SQL | undefined)[] = [];
  const me = ctx.actor.kind === "staff" ? ctx.actor.staffId : null;
  if (q.view === "pool") conds.push(and(eq(leads.status, "open"), isNull(leads.activeOwnerStaffId)));
  else if (q.view === "mine") conds.push(me ? eq(leads.activeOwnerStaffId, me) : sql`false`);
  else conds.push(visibility(ctx));
  if (q.status) conds.push(eq(leads.status, q.status));
  if (q.grade) conds.push(eq(leads.grade, q.grade));
  if (q.ownerStaffId) conds.push(eq(leads.activeOwnerStaffId, q.ownerStaffId));
  const cur = decodeCursor(q.cursor);
  if (cur) conds.push(or(lt(cursorText(leads.createdAt), cur.at), and(eq(cursorText(leads.createdAt), cur.at), lt(leads.id, cur.id))));
  const rows = await loadViews(ctx, and(sql`true`, ...conds)!, q.limit + 1);
  const page = rows.slice(0, q.limit);
  const last = page[page.length - 1];
  return { items: page.map(view), nextCursor: rows.length > q.limit && last ? encodeCursor(last.cursorAt, last.id) : null };
}

/** Lock the contact row (every path locks the contact, then the tenant's leads: one order, no deadlock). */
async function lockContact(tx: Tx, ctx: Ctx, contactId: string) {
  const c = await loadVisibleContact(tx, ctx, contactId, true);
  if (c.deletedAt) throw new NotFoundError("contact");
  return c;
}

/**
 * A signal that a contact may buy: opens a lead, or raises the open one (one open lead per
 * contact). A new lead is graded, then goes to the contact's owner when they have one (the owner
 * keeps the client), to `direct` (the consultant whose QR code the contact used), or by the
 * strategy chain, else to the pool. Runs in the caller's transaction when there is one.
 */
export async function signalLead({ ctx, input, direct }: { ctx: Ctx; input: unknown; direct?: string | null }): Promise<{ lead: LeadView; created: boolean }> {
  requirePermission(ctx, "leads:write");
  const p = SignalInput.safeParse(input);
  if (!p.success) throw new ValidationError(zodIssues(p.error.issues));
  const s = p.data;
  const { id, created } = await withTransaction(ctx, async (tx, ctx) => {
    // The contact's row lock serialises signals for one contact (and the partial unique index
    // allows one open lead); the tenant's lead lock is taken only to assign, as late as possible.
    const contact = await lockContact(tx, ctx, s.contactId);
    const now = ctx.deps.now();
    const [open] = await tx.select().from(leads).where(and(eq(leads.tenantId, ctx.tenantId), eq(leads.contactId, contact.id), eq(leads.status, "open")));
    const tags = await contactTagsByGroup(tx, ctx.tenantId, contact.id);
    if (open) {
      const [raised] = await tx
        .update(leads)
        .set({ signals: sql`${leads.signals} + 1`, signalScore: sql`${leads.signalScore} + ${s.score}`, lastSignalAt: now, need: open.need ?? s.need ?? null, updatedAt: now })
        .where(eq(leads.id, open.id))
        .returning();
      await regrade(tx, ctx, raised!, await leadConfig(tx, ctx.tenantId, raised!.clinicId), tags);
      await audit(tx, ctx, { action: "lead.signal", entityType: "lead", entityId: open.id, after: { source: s.source, sourceRef: s.sourceRef ?? null, score: s.score } });
      return { id: open.id, created: false };
    }
    const clinicId = s.clinicId ?? contact.clinicId;
    const [lead] = await tx
      .insert(leads)
      .values({ tenantId: ctx.tenantId, contactId: contact.id, clinicId, source: s.source, sourceRef: s.sourceRef ?? null, need: s.need ?? null, signalScore: s.score, lastSignalAt: now })
      .returning();
    const env = await leadEnv(tx, ctx.tenantId, clinicId);
    const graded = await regrade(tx, ctx, lead!, env.config, tags, { initial: true });
    const fresh = { ...lead!, ...graded };
    // The SOP's tasks are planned now (unowned); the move below hands them to the owner.
    await startSop(tx, ctx, lead!);
    await audit(tx, ctx, { action: "lead.create", entityType: "lead", entityId: lead!.id, after: { contactId: contact.id, source: s.source, sourceRef: s.sourceRef ?? null, grade: graded.grade, score: graded.score } });
    const owner = contact.ownerStaffId ?? direct ?? null;
    const directTo = owner && (await isActiveConsultant(tx, ctx, owner)) ? owner : null;
    await lockLeads(tx, ctx.tenantId);
    if (directTo) {
      await moveLead(tx, ctx, fresh, directTo, { kind: "direct", reason: contact.ownerStaffId ? "the contact's consultant of record" : "the contact added this consultant", config: env.config, timeZone: env.timeZone });
    } else {
      await routeLead(tx, ctx, fresh, env, tags);
    }
    return { id: lead!.id, created: true };
  });
  const [v] = await loadViews(ctx, eq(leads.id, id));
  return { lead: view(v!), created };
}

/**
 * Signals for contacts whose lead is already open, as the events worker raises them in bulk: one
 * update of the leads' signals and scores, a regrade of each from the tags the caller just wrote
 * (no query per lead for tags or settings), one audit insert. The caller holds the contacts' row
 * locks (the events batch), so nothing else moves these leads meanwhile. Returns the contacts whose
 * open lead was raised; the others' signals go through signalLead (they open a lead and route it).
 */
export async function raiseOpenLeads(tx: Tx, ctx: Ctx, signals: readonly { contactId: string; source: string; sourceRef: string; need?: string | undefined; score?: number | undefined }[], tagsOf: (contactId: string) => Record<string, string[]>): Promise<Set<string>> {
  if (!signals.length) return new Set();
  const open = await tx.select().from(leads).where(and(eq(leads.tenantId, ctx.tenantId), inArray(leads.contactId, [...new Set(signals.map((s) => s.contactId))]), eq(leads.status, "open")));
  if (!open.length) return new Set();
  const byContact = new Map(open.map((l) => [l.contactId, l]));
  const now = ctx.deps.now();
  const sums = new Map<string, { n: number; score: number; need: string | null }>();
  const entries: Parameters<typeof audit>[2] = [];
  for (const s of signals) {
    const lead = byContact.get(s.contactId);
    if (!lead) continue;
    const score = SignalInput.shape.score.parse(s.score);
    const t = sums.get(lead.id) ?? { n: 0, score: 0, need: null };
    t.n += 1;
    t.score += score;
    t.need ??= s.need ?? null;
    sums.set(lead.id, t);
    entries.push({ action: "lead.signal", entityType: "lead", entityId: lead.id, after: { source: s.source, sourceRef: s.sourceRef, score } });
  }
  const rows = [...sums].map(([id, t]) => ({ id, n: t.n, score: t.score, need: t.need }));
  const raised = rowsOf<{ id: string }>(
    await tx.execute(sql`
      update leads l set signals = l.signals + x.n, signal_score = l.signal_score + x.score, last_signal_at = ${now.toISOString()}::timestamptz,
        need = coalesce(l.need, x.need), updated_at = ${now.toISOString()}::timestamptz
      from jsonb_to_recordset(${JSON.stringify(rows)}::jsonb) as x(id uuid, n int, score int, need text)
      where l.tenant_id = ${ctx.tenantId}::uuid and l.id = x.id and l.status = 'open' returning l.id`),
  ).map((r) => r.id);
  const configs = new Map<string, Awaited<ReturnType<typeof leadConfig>>>();
  const fresh = await tx.select().from(leads).where(and(eq(leads.tenantId, ctx.tenantId), inArray(leads.id, raised)));
  for (const lead of fresh) {
    let config = configs.get(lead.clinicId ?? "");
    if (!config) configs.set(lead.clinicId ?? "", (config = await leadConfig(tx, ctx.tenantId, lead.clinicId)));
    await regrade(tx, ctx, lead, config, tagsOf(lead.contactId));
  }
  await audit(tx, ctx, entries);
  return new Set(fresh.map((l) => l.contactId));
}

async function isActiveConsultant(tx: Tx, ctx: Ctx, staffId: string): Promise<boolean> {
  const [s] = await tx.select({ id: staff.id }).from(staff).where(and(eq(staff.tenantId, ctx.tenantId), eq(staff.id, staffId), eq(staff.active, true)));
  return Boolean(s);
}

/** Lock a lead by id after its contact (see lockContact): returns the row, locked. */
export async function lockLead(tx: Tx, ctx: Ctx, id: string) {
  if (!z.uuid().safeParse(id).success) throw new NotFoundError("lead");
  const [peek] = await tx.select({ contactId: leads.contactId }).from(leads).where(and(eq(leads.tenantId, ctx.tenantId), eq(leads.id, id)));
  if (!peek) throw new NotFoundError("lead");
  await tx.select({ id: contacts.id }).from(contacts).where(and(eq(contacts.tenantId, ctx.tenantId), eq(contacts.id, peek.contactId))).for("update");
  await lockLeads(tx, ctx.tenantId);
  const [lead] = await tx.select().from(leads).where(and(eq(leads.tenantId, ctx.tenantId), eq(leads.id, id)));
  return lead!;
}

/**
 * A consultant takes a lead from the pool, at most `poolDailyClaimCap` a day (tenant time zone).
 * Two consultants racing for one lead: the first wins, the second gets 409.
 */
export async function claimLead({ ctx, id }: { ctx: Ctx; id: string }): Promise<LeadView> {
  requirePermission(ctx, "leads:claim");
  if (ctx.actor.kind !== "staff") throw new ValidationError([{ field: "actor", message: "only a consultant can claim" }]);
  const me = ctx.actor.staffId;
  await withTransaction(ctx, async (tx, ctx) => {
    const lead = await lockLead(tx, ctx, id);
    if (lead.status !== "open" || lead.activeOwnerStaffId !== null) throw new ConflictError("the lead is no longer in the pool", [{ field: "id", message: "already taken or closed" }]);
    const { config, timeZone } = await leadEnv(tx, ctx.tenantId, lead.clinicId);
    const since = startOfLocalDay(ctx.deps.now(), timeZone);
    const [{ n } = { n: 0 }] = await tx
      .select({ n: sql<number>`count(*)::int` })
      .from(leadAssignments)
      .where(and(eq(leadAssignments.tenantId, ctx.tenantId), eq(leadAssignments.toStaffId, me), eq(leadAssignments.kind, "claim"), sql`${leadAssignments.at} >= ${since.toISOString()}::timestamptz`));
    if (n >= config.assignment.poolDailyClaimCap) throw new ConflictError(`daily claim cap reached (${config.assignment.poolDailyClaimCap} a day)`, [{ field: "id", message: "claim cap reached for today" }]);
    const [cap] = await tx.select({ capacity: staff.capacity, open: openLeadsOf(sql`${ctx.tenantId}::uuid`, sql`${me}::uuid`) }).from(staff).where(eq(staff.id, me));
    if (cap && cap.open >= cap.capacity) throw new ConflictError("you are at capacity", [{ field: "id", message: `you hold ${cap.open} open leads (capacity ${cap.capacity})` }]);
    await moveLead(tx, ctx, lead, me, { kind: "claim", config, timeZone });
    await audit(tx, ctx, { action: "lead.claim", entityType: "lead", entityId: lead.id, after: { ownerStaffId: me } });
  });
  return getLead({ ctx, id });
}

export const ReassignInput = z
  .object({
    /** The consultant to give the lead to; omit to route it by the strategy chain, null for the pool. */
    toStaffId: z.uuid().nullable().optional(),
    reason: z.string().trim().min(1, "a reason is required").max(500),
  })
  .strict();

/** Manual reassignment with a reason (managers, admins): to a consultant, by strategy, or to the pool. */
export async function reassignLead({ ctx, id, input }: { ctx: Ctx; id: string; input: unknown }): Promise<LeadView> {
  requirePermission(ctx, "leads:assign");
  const p = ReassignInput.safeParse(input);
  if (!p.success) throw new ValidationError(zodIssues(p.error.issues));
  await withTransaction(ctx, async (tx, ctx) => {
    const lead = await lockLead(tx, ctx, id);
    if (lead.status !== "open") throw new ConflictError("the lead is closed", [{ field: "id", message: `status is ${lead.status}` }]);
    const env = await leadEnv(tx, ctx.tenantId, lead.clinicId);
    if (p.data.toStaffId === undefined) {
      const tags = await contactTagsByGroup(tx, ctx.tenantId, lead.contactId);
      await routeLead(tx, ctx, lead, env, tags, { kind: "reassign", reason: p.data.reason, exclude: new Set(lead.activeOwnerStaffId ? [lead.activeOwnerStaffId] : []) });
    } else {
      if (p.data.toStaffId !== null) {
        const [to] = await tx.select({ role: staff.role, active: staff.active }).from(staff).where(and(eq(staff.tenantId, ctx.tenantId), eq(staff.id, p.data.toStaffId)));
        if (!to || !to.active || to.role !== "consultant") throw new ValidationError([{ field: "toStaffId", message: "is not an active consultant of this clinic group" }]);
      }
      await moveLead(tx, ctx, lead, p.data.toStaffId, { kind: p.data.toStaffId ? "reassign" : "release", reason: p.data.reason, config: env.config, timeZone: env.timeZone });
    }
    const [after] = await tx.select({ owner: leads.activeOwnerStaffId }).from(leads).where(eq(leads.id, lead.id));
    await audit(tx, ctx, { action: "lead.reassign", entityType: "lead", entityId: lead.id, before: { ownerStaffId: lead.activeOwnerStaffId }, after: { ownerStaffId: after!.owner, reason: p.data.reason } });
  });
  return getLead({ ctx, id });
}

/** Who owned the lead when, and its grades: the lead's history. */
export async function leadHistory({ ctx, id }: { ctx: Ctx; id: string }) {
  const lead = await getLead({ ctx, id });
  const moves = await dbOf(ctx).select().from(leadAssignments).where(and(eq(leadAssignments.tenantId, ctx.tenantId), eq(leadAssignments.leadId, lead.id))).orderBy(leadAssignments.at);
  const grades = await dbOf(ctx).select().from(leadGradeChanges).where(and(eq(leadGradeChanges.tenantId, ctx.tenantId), eq(leadGradeChanges.leadId, lead.id))).orderBy(leadGradeChanges.at);
  return {
    assignments: moves.map((m) => ({ kind: m.kind, fromStaffId: m.fromStaffId, toStaffId: m.toStaffId, strategy: m.strategy, reason: m.reason, actorStaffId: m.actorStaffId, at: m.at.toISOString() })),
    grades: grades.map((g) => ({ fromGrade: g.fromGrade, toGrade: g.toGrade, score: g.score, parts: g.parts, at: g.at.toISOString() })),
  };
}

/** The lead settings of the tenant (clinicId omitted) or of a clinic, with defaults filled in. */
export async function getLeadSettings({ ctx, clinicId }: { ctx: Ctx; clinicId?: string | undefined }): Promise<LeadConfig> {
  requirePermission(ctx, "leads:settings");
  await checkClinic(ctx, clinicId);
  return leadConfig(dbOf(ctx), ctx.tenantId, clinicId ?? null);
}

async function checkClinic(ctx: Ctx, clinicId: string | undefined): Promise<void> {
  if (!clinicId) return;
  const [c] = await dbOf(ctx).select({ id: clinics.id }).from(clinics).where(and(eq(clinics.tenantId, ctx.tenantId), eq(clinics.id, clinicId)));
  if (!c) throw new ValidationError([{ field: "clinicId", message: "is not a clinic of this tenant" }]);
}

export async function putLeadSettings({ ctx, clinicId, input }: { ctx: Ctx; clinicId?: string | undefined; input: unknown }): Promise<LeadConfig> {
  requirePermission(ctx, "leads:settings");
  const p = LeadConfig.safeParse(input ?? {});
  if (!p.success) throw new ValidationError(zodIssues(p.error.issues));
  await checkClinic(ctx, clinicId);
  return withTransaction(ctx, async (tx, ctx) => {
    const before = await leadConfig(tx, ctx.tenantId, clinicId ?? null);
    const scope = clinicId ? eq(leadSettings.clinicId, clinicId) : isNull(leadSettings.clinicId);
    const updated = await tx.update(leadSettings).set({ config: p.data, updatedAt: ctx.deps.now() }).where(and(eq(leadSettings.tenantId, ctx.tenantId), scope)).returning({ id: leadSettings.id });
    if (!updated.length) await tx.insert(leadSettings).values({ tenantId: ctx.tenantId, clinicId: clinicId ?? null, config: p.data });
    await audit(tx, ctx, { action: "lead.settings", entityType: "lead_settings", entityId: clinicId ?? ctx.tenantId, before: before as unknown as Record<string, unknown>, after: p.data as unknown as Record<string, unknown> });
    return p.data;
  });
}
