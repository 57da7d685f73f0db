import { and, asc, eq, gt, gte, inArray, lt, or, sql, type SQL } from "drizzle-orm";
import { z } from "zod";
import type { DbOrTx, Tx } from "../../db/client";
import { rowsOf } from "../../db/client";
import { clinics, contacts, leads, leadTasks, posts, sopTemplates, staff, TASK_STATUSES, tenants } from "../../db/schema/index";
import { ownsOnly } from "../../domain/auth/permissions";
import { renderPost } from "../../domain/compliance/posts";
import {
  composeDigest,
  DEFAULT_SOP_TEMPLATE,
  digestDay,
  localDayBounds,
  pickTemplate,
  planSteps,
  SopMatch,
  SopStep,
  SopTemplateInput,
  SopTemplatePatch,
  sopIssues,
  utf8Bytes,
  validateSopTemplate,
  type DigestItem,
  type SopIssue,
  type SopTemplateLike,
} from "../../domain/leads/sop";
import { AppError, ConflictError, ForbiddenError, NotFoundError, ValidationError, zodIssues, type FieldIssue } from "../../errors";
import { WecomError } from "../../wecom/api/errors";
import { actorStaffId, audit, dbOf, requirePermission, systemCtx, withTransaction, type Ctx, type ServiceDeps } from "../context";
import { notifyStaff } from "../notifications/notify";
import { cursorText, decodeCursor, encodeCursor, type Page } from "../pagination";
import { assertSendable, SendRefused } from "../posts/posts";
import { loadWecomApp } from "../wecom/settings";
import { contactTagsByGroup, tenantTimeZone } from "./internal";

export { SopTemplateInput, SopTemplatePatch };

type LeadRow = typeof leads.$inferSelect;
type TemplateRow = typeof sopTemplates.$inferSelect;
type TaskRow = typeof leadTasks.$inferSelect;

const iso = (d: Date | null) => (d ? d.toISOString() : null);
const isUuid = (id: string) => z.uuid().safeParse(id).success;
const sopError = (issues: SopIssue[]) => new ValidationError(issues.map((i) => ({ field: i.path, message: i.message })));

// ------------------------------------------------------------------ templates

export const SopTemplateView = z.object({
  id: z.string(),
  clinicId: z.string().nullable(),
  name: z.string(),
  match: SopMatch,
  priority: z.number(),
  active: z.boolean(),
  steps: z.array(SopStep),
  createdByStaffId: z.string().nullable(),
  createdAt: z.string(),
  updatedAt: z.string(),
});
export type SopTemplateView = z.infer<typeof SopTemplateView>;

/** A stored template's match and steps (validated when written; a row that no longer parses is skipped by startSop). */
function parsed(row: TemplateRow): (SopTemplateLike & { steps: SopStep[] }) | null {
  const match = SopMatch.safeParse(row.match);
  const steps = z.array(SopStep).safeParse(row.steps);
  if (!match.success || !steps.success) return null;
  return { id: row.id, clinicId: row.clinicId, active: row.active, priority: row.priority, match: match.data, steps: steps.data };
}

function templateView(row: TemplateRow): SopTemplateView {
  return {
    id: row.id,
    clinicId: row.clinicId,
    name: row.name,
    match: row.match as SopMatch,
    priority: row.priority,
    active: row.active,
    steps: row.steps as SopStep[],
    createdByStaffId: row.createdByStaffId,
    createdAt: row.createdAt.toISOString(),
    updatedAt: row.updatedAt.toISOString(),
  };
}

/** JSON as stored: no undefined or null members, so a step reads back as it was written. */
function compact<T extends object>(o: T): Record<string, unknown> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined && v !== null));
}

function storedColumns(t: SopTemplateInput) {
  return { name: t.name, clinicId: t.clinicId ?? null, match: compact(t.match), steps: t.steps.map(compact), priority: t.priority, active: t.active };
}

/** The clinic and every step's post must be the tenant's own (the issue names `steps.N.postId`). */
async function checkRefs(tx: DbOrTx, ctx: Ctx, t: SopTemplateInput): Promise<void> {
  const issues: FieldIssue[] = [];
  if (t.clinicId) {
    const [c] = await tx.select({ id: clinics.id }).from(clinics).where(and(eq(clinics.tenantId, ctx.tenantId), eq(clinics.id, t.clinicId)));
    if (!c) issues.push({ field: "clinicId", message: "is not a clinic of this clinic group" });
  }
  const ids = [...new Set(t.steps.flatMap((s) => (s.postId ? [s.postId] : [])))];
  if (ids.length) {
    const found = new Set((await tx.select({ id: posts.id }).from(posts).where(and(eq(posts.tenantId, ctx.tenantId), inArray(posts.id, ids)))).map((p) => p.id));
    t.steps.forEach((s, i) => {
      if (s.postId && !found.has(s.postId)) issues.push({ field: `steps.${i}.postId`, message: "is not a post of this clinic group" });
    });
  }
  if (issues.length) throw new ValidationError(issues);
}

/** A yes/no filter: a boolean, or "true" / "false" in a query string. */
const flag = z.union([z.boolean(), z.enum(["true", "false"]).transform((v) => v === "true")]);

export const ListSopTemplatesInput = z.object({
  /** Only this clinic's own templates (the tenant-wide ones have clinicId null). */
  clinicId: z.uuid().optional(),
  /** Include deactivated (deleted) templates. */
  includeInactive: flag.default(false),
});

/** The tenant's SOP templates: tenant-wide first, then per clinic; highest priority first. */
export async function listSopTemplates({ ctx, input }: { ctx: Ctx; input?: unknown }): Promise<{ items: SopTemplateView[] }> {
  requirePermission(ctx, "leads:settings");
  const p = ListSopTemplatesInput.safeParse(input ?? {});
  if (!p.success) throw new ValidationError(zodIssues(p.error.issues));
  const conds: (SQL | undefined)[] = [eq(sopTemplates.tenantId, ctx.tenantId)];
  if (p.data.clinicId) conds.push(eq(sopTemplates.clinicId, p.data.clinicId));
  if (!p.data.includeInactive) conds.push(eq(sopTemplates.active, true));
  const rows = await dbOf(ctx)
    .select()
    .from(sopTemplates)
    .where(and(...conds))
    .orderBy(sql`${sopTemplates.clinicId} nulls first`, sql`${sopTemplates.priority} desc`, asc(sopTemplates.createdAt), asc(sopTemplates.id));
  return { items: rows.map(templateView) };
}

async function loadTemplate(db: DbOrTx, ctx: Ctx, id: string, lock = false): Promise<TemplateRow> {
  if (!isUuid(id)) throw new NotFoundError("SOP template");
  const q = db.select().from(sopTemplates).where(and(eq(sopTemplates.tenantId, ctx.tenantId), eq(sopTemplates.id, id)));
  const [row] = lock ? await q.for("update") : await q;
  if (!row) throw new NotFoundError("SOP template");
  return row;
}

export async function getSopTemplate({ ctx, id }: { ctx: Ctx; id: string }): Promise<SopTemplateView> {
  requirePermission(ctx, "leads:settings");
  return templateView(await loadTemplate(dbOf(ctx), ctx, id));
}

/** A new template (SopTemplateInput). Leads created from now on may get it; existing tasks stay. */
export async function createSopTemplate({ ctx, input }: { ctx: Ctx; input: unknown }): Promise<SopTemplateView> {
  requirePermission(ctx, "leads:settings");
  const v = validateSopTemplate(input);
  if (!v.ok) throw sopError(v.issues);
  const t = v.template;
  return withTransaction(ctx, async (tx, ctx) => {
    await checkRefs(tx, ctx, t);
    const [row] = await tx
      .insert(sopTemplates)
      .values({ tenantId: ctx.tenantId, ...storedColumns(t), createdByStaffId: actorStaffId(ctx) })
      .returning();
    await audit(tx, ctx, { action: "sop.template.create", entityType: "sop_template", entityId: row!.id, after: storedColumns(t) });
    return templateView(row!);
  });
}

/**
 * Change a template (SopTemplatePatch: only the fields given; `steps` replaces them all). Tasks
 * already planned keep their due times and titles; new leads get the new version.
 */
export async function updateSopTemplate({ ctx, id, input }: { ctx: Ctx; id: string; input: unknown }): Promise<SopTemplateView> {
  requirePermission(ctx, "leads:settings");
  const p = SopTemplatePatch.safeParse(input ?? {});
  if (!p.success) throw sopError(sopIssues(p.error.issues));
  return withTransaction(ctx, async (tx, ctx) => {
    const before = await loadTemplate(tx, ctx, id, true);
    const was = { name: before.name, clinicId: before.clinicId, match: before.match, priority: before.priority, active: before.active, steps: before.steps };
    const merged: Record<string, unknown> = { ...was };
    for (const [k, val] of Object.entries(p.data)) if (val !== undefined) merged[k] = val;
    const v = validateSopTemplate(merged);
    if (!v.ok) throw sopError(v.issues);
    await checkRefs(tx, ctx, v.template);
    const [row] = await tx
      .update(sopTemplates)
      .set({ ...storedColumns(v.template), updatedAt: ctx.deps.now() })
      .where(eq(sopTemplates.id, before.id))
      .returning();
    await audit(tx, ctx, { action: "sop.template.update", entityType: "sop_template", entityId: before.id, before: was, after: storedColumns(v.template) });
    return templateView(row!);
  });
}

/** Deactivate a template (kept: tasks refer to it). It starts no new SOPs; planned tasks stay. */
export async function deleteSopTemplate({ ctx, id }: { ctx: Ctx; id: string }): Promise<SopTemplateView> {
  requirePermission(ctx, "leads:settings");
  return withTransaction(ctx, async (tx, ctx) => {
    const before = await loadTemplate(tx, ctx, id, true);
    const [row] = await tx.update(sopTemplates).set({ active: false, updatedAt: ctx.deps.now() }).where(eq(sopTemplates.id, before.id)).returning();
    await audit(tx, ctx, { action: "sop.template.delete", entityType: "sop_template", entityId: before.id, before: { active: before.active, name: before.name }, after: { active: false } });
    return templateView(row!);
  });
}

/** The default SOP (DEFAULT_SOP_TEMPLATE) for a new tenant, in the transaction that creates it. */
export async function seedDefaultSopTemplate(db: DbOrTx, tenantId: string): Promise<string> {
  const [row] = await db
    .insert(sopTemplates)
    .values({ tenantId, ...storedColumns(DEFAULT_SOP_TEMPLATE) })
    .returning({ id: sopTemplates.id });
  return row!.id;
}

/** Every template of a tenant; a tenant created before SOPs existed (none at all) gets the default first. */
async function tenantTemplates(tx: Tx, tenantId: string): Promise<TemplateRow[]> {
  const all = () => tx.select().from(sopTemplates).where(eq(sopTemplates.tenantId, tenantId));
  let rows = await all();
  if (!rows.length) {
    await tx.execute(sql`select pg_advisory_xact_lock(hashtext(${`siyu-sop-seed-${tenantId}`}::text))`);
    rows = await all();
    if (!rows.length) {
      await seedDefaultSopTemplate(tx, tenantId);
      rows = await all();
    }
  }
  return rows;
}

// ------------------------------------------------------------ starting SOPs

/**
 * Plan a new lead's follow-up SOP in the transaction that creates it: the template for the lead
 * (its clinic's, else the tenant's; highest priority; most specific), one task per step with its
 * due time in the tenant's time zone, owned by the lead's owner (none while in the pool). The
 * unique (lead, template, step) makes a repeat call plan nothing twice. Null: no template fits.
 */
export async function startSop(tx: Tx, ctx: Ctx, lead: Pick<LeadRow, "id">): Promise<{ templateId: string; tasks: number } | null> {
  const [l] = await tx.select().from(leads).where(and(eq(leads.tenantId, ctx.tenantId), eq(leads.id, lead.id)));
  if (!l || l.status !== "open") return null;
  const templates = (await tenantTemplates(tx, ctx.tenantId)).map(parsed).filter((t): t is NonNullable<typeof t> => t !== null);
  // The contact's need tags only matter when some template matches on needs.
  const tagNeeds = templates.some((t) => t.active && t.match.needs?.length) ? ((await contactTagsByGroup(tx, ctx.tenantId, l.contactId)).need ?? []) : [];
  const needs = [...new Set([...(l.need ? [l.need] : []), ...tagNeeds])];
  const template = pickTemplate(templates, { clinicId: l.clinicId, source: l.source, needs, grade: l.grade });
  if (!template) return null;
  const plan = planSteps(template, l.createdAt, await tenantTimeZone(tx, ctx.tenantId));
  const rows = await tx
    .insert(leadTasks)
    .values(plan.map((s) => ({ tenantId: ctx.tenantId, leadId: l.id, contactId: l.contactId, staffId: l.activeOwnerStaffId, templateId: template.id, stepKey: s.key, title: s.title, postId: s.postId, dueAt: s.dueAt })))
    .onConflictDoNothing()
    .returning({ id: leadTasks.id });
  return { templateId: template.id, tasks: rows.length };
}

/** When a lead closes: its open tasks become cancelled with the reason (done and skipped ones stay). Returns how many. */
export async function cancelOpenTasks(tx: Tx, ctx: Ctx, leadId: string, reason: string): Promise<number> {
  const rows = await tx
    .update(leadTasks)
    .set({ status: "cancelled", skipReason: reason.slice(0, 500), completedAt: ctx.deps.now() })
    .where(and(eq(leadTasks.tenantId, ctx.tenantId), eq(leadTasks.leadId, leadId), eq(leadTasks.status, "open")))
    .returning({ id: leadTasks.id });
  return rows.length;
}

// ------------------------------------------------------------------- tasks

export const TaskView = z.object({
  id: z.string(),
  leadId: z.string(),
  contactId: z.string(),
  contactName: z.string().nullable(),
  /** The lead's owner while the task is open (null: the lead is in the pool); who owned it when it closed. */
  staffId: z.string().nullable(),
  staffName: z.string().nullable(),
  templateId: z.string().nullable(),
  templateName: z.string().nullable(),
  stepKey: z.string(),
  title: z.string(),
  /** The template step's guidance for the consultant. */
  note: z.string().nullable(),
  /** The approved post sent to the patient for this step (sendTaskMessage), if any. */
  postId: z.string().nullable(),
  dueAt: z.string(),
  status: z.enum(TASK_STATUSES),
  /** Open and past its due time. */
  overdue: z.boolean(),
  completedAt: z.string().nullable(),
  completedByStaffId: z.string().nullable(),
  /** Why it was skipped (or cancelled, when the lead closed). */
  skipReason: z.string().nullable(),
  sentAt: z.string().nullable(),
  /** WeCom's msgid of the message sent for this step. */
  sendRef: z.string().nullable(),
  createdAt: z.string(),
});
export type TaskView = z.infer<typeof TaskView>;

/** Consultants see and act on the tasks of leads they own; everyone else on all of the tenant's. */
function taskVisibility(ctx: Ctx): SQL | undefined {
  return ctx.actor.kind === "staff" && ownsOnly(ctx.actor.role) ? eq(leads.activeOwnerStaffId, ctx.actor.staffId) : undefined;
}

const stepNote = sql<string | null>`(select s->>'note' from jsonb_array_elements(${sopTemplates.steps}) s where s->>'key' = ${leadTasks.stepKey} limit 1)`;

async function loadTasks(ctx: Ctx, where: SQL, limit: number): Promise<(TaskView & { cursorAt: string })[]> {
  const now = ctx.deps.now().getTime();
  const rows = await dbOf(ctx)
    .select({ task: leadTasks, contactName: contacts.name, staffName: staff.name, templateName: sopTemplates.name, note: stepNote, cursorAt: cursorText(leadTasks.dueAt) })
    .from(leadTasks)
    .innerJoin(leads, eq(leads.id, leadTasks.leadId))
    .innerJoin(contacts, eq(contacts.id, leadTasks.contactId))
    .leftJoin(staff, eq(staff.id, leadTasks.staffId))
    .leftJoin(sopTemplates, eq(sopTemplates.id, leadTasks.templateId))
    .where(and(eq(leadTasks.tenantId, ctx.tenantId), where))
    .orderBy(asc(leadTasks.dueAt), asc(leadTasks.id))
    .limit(limit);
  return rows.map(({ task: t, contactName, staffName, templateName, note, cursorAt }) => ({
    id: t.id,
    leadId: t.leadId,
    contactId: t.contactId,
    contactName,
    staffId: t.staffId,
    staffName: t.staffId ? staffName : null,
    templateId: t.templateId,
    templateName,
    stepKey: t.stepKey,
    title: t.title,
    note,
    postId: t.postId,
    dueAt: t.dueAt.toISOString(),
    status: t.status,
    overdue: t.status === "open" && t.dueAt.getTime() < now,
    completedAt: iso(t.completedAt),
    completedByStaffId: t.completedByStaffId,
    skipReason: t.skipReason,
    sentAt: iso(t.sentAt),
    sendRef: t.sendRef,
    createdAt: t.createdAt.toISOString(),
    cursorAt,
  }));
}

const taskView = ({ cursorAt: _c, ...v }: TaskView & { cursorAt: string }): TaskView => v;

/** One task as the caller may see it (no permission check: callers check theirs). */
async function visibleTask(ctx: Ctx, id: string): Promise<TaskView> {
  if (!isUuid(id)) throw new NotFoundError("task");
  const [v] = await loadTasks(ctx, and(eq(leadTasks.id, id), taskVisibility(ctx))!, 1);
  if (!v) throw new NotFoundError("task");
  return taskView(v);
}

export async function getTask({ ctx, id }: { ctx: Ctx; id: string }): Promise<TaskView> {
  requirePermission(ctx, "leads:read");
  return visibleTask(ctx, id);
}


export const ListTasksInput = z.object({
  /** Only tasks assigned to the caller. Default: true for consultants, false for everyone else. */
  mine: flag.optional(),
  staffId: z.uuid().optional(),
  leadId: z.uuid().optional(),
  status: z.enum(TASK_STATUSES).optional(),
  /**
   * today: due within today (tenant time zone), any status unless `status` says; overdue: open and
   * past due; upcoming: open and not yet due.
   */
  due: z.enum(["today", "overdue", "upcoming"]).optional(),
  cursor: z.string().optional(),
  limit: z.coerce.number().int().min(1).max(200).default(50),
});
export type ListTasksInput = z.infer<typeof ListTasksInput>;

/** SOP tasks, soonest due first, cursor-paginated. Consultants: only tasks of leads they own. */
export async function listTasks({ ctx, input }: { ctx: Ctx; input?: unknown }): Promise<Page<TaskView>> {
  requirePermission(ctx, "leads:read");
  const p = ListTasksInput.safeParse(input ?? {});
  if (!p.success) throw new ValidationError(zodIssues(p.error.issues));
  const q = p.data;
  const me = actorStaffId(ctx);
  const consultant = ctx.actor.kind === "staff" && ownsOnly(ctx.actor.role);
  const now = ctx.deps.now();
  const conds: (SQL | undefined)[] = [taskVisibility(ctx)];
  if (q.mine ?? consultant) conds.push(me ? eq(leadTasks.staffId, me) : sql`false`);
  if (q.staffId) conds.push(eq(leadTasks.staffId, q.staffId));
  if (q.leadId) conds.push(eq(leadTasks.leadId, q.leadId));
  if (q.status) conds.push(eq(leadTasks.status, q.status));
  if (q.due === "today") {
    const { start, end } = localDayBounds(now, await tenantTimeZone(dbOf(ctx), ctx.tenantId));
    conds.push(gte(leadTasks.dueAt, start), lt(leadTasks.dueAt, end));
  } else if (q.due === "overdue") conds.push(eq(leadTasks.status, "open"), lt(leadTasks.dueAt, now));
  else if (q.due === "upcoming") conds.push(eq(leadTasks.status, "open"), gte(leadTasks.dueAt, now));
  const cur = decodeCursor(q.cursor);
  if (cur) conds.push(or(gt(cursorText(leadTasks.dueAt), cur.at), and(eq(cursorText(leadTasks.dueAt), cur.at), gt(leadTasks.id, cur.id))));
  const rows = await loadTasks(ctx, and(sql`true`, ...conds)!, q.limit + 1);
  const page = rows.slice(0, q.limit);
  const last = page[page.length - 1];
  return { items: page.map(taskView), nextCursor: rows.length > q.limit && last ? encodeCursor(last.cursorAt, last.id) : null };
}

/** The task row, locked, if the caller may act on it (consultants: leads they own; others get 404). */
async function lockTask(tx: Tx, ctx: Ctx, id: string): Promise<TaskRow> {
  if (!isUuid(id)) throw new NotFoundError("task");
  const [row] = await tx
    .select({ task: leadTasks })
    .from(leadTasks)
    .innerJoin(leads, eq(leads.id, leadTasks.leadId))
    .where(and(eq(leadTasks.tenantId, ctx.tenantId), eq(leadTasks.id, id), taskVisibility(ctx)))
    .for("update", { of: leadTasks });
  if (!row) throw new NotFoundError("task");
  return row.task;
}

const notOpen = (t: TaskRow) => new ConflictError(`the task is ${t.status}`, [{ field: "id", message: `status is ${t.status}, not open` }]);

/** Mark an open task done (by the caller). */
export async function completeTask({ ctx, id }: { ctx: Ctx; id: string }): Promise<TaskView> {
  requirePermission(ctx, "leads:work");
  await withTransaction(ctx, async (tx, ctx) => {
    const t = await lockTask(tx, ctx, id);
    if (t.status !== "open") throw notOpen(t);
    const now = ctx.deps.now();
    await tx.update(leadTasks).set({ status: "done", completedAt: now, completedByStaffId: actorStaffId(ctx) }).where(eq(leadTasks.id, t.id));
    await audit(tx, ctx, { action: "lead.task.done", entityType: "lead_task", entityId: t.id, after: { leadId: t.leadId, stepKey: t.stepKey, dueAt: t.dueAt.toISOString(), late: now.getTime() > t.dueAt.getTime() } });
  });
  return visibleTask(ctx, id);
}

export const SkipTaskInput = z.object({
  reason: z.string({ error: "a reason is required" }).trim().min(1, "a reason is required").max(500),
});
export type SkipTaskInput = z.infer<typeof SkipTaskInput>;

/** Skip an open task, saying why (客户已到院, 客户明确拒绝, ...). */
export async function skipTask({ ctx, id, input }: { ctx: Ctx; id: string; input: unknown }): Promise<TaskView> {
  requirePermission(ctx, "leads:work");
  const p = SkipTaskInput.safeParse(input ?? {});
  if (!p.success) throw new ValidationError(zodIssues(p.error.issues));
  await withTransaction(ctx, async (tx, ctx) => {
    const t = await lockTask(tx, ctx, id);
    if (t.status !== "open") throw notOpen(t);
    await tx.update(leadTasks).set({ status: "skipped", skipReason: p.data.reason, completedAt: ctx.deps.now(), completedByStaffId: actorStaffId(ctx) }).where(eq(leadTasks.id, t.id));
    await audit(tx, ctx, { action: "lead.task.skip", entityType: "lead_task", entityId: t.id, after: { leadId: t.leadId, stepKey: t.stepKey, reason: p.data.reason } });
  });
  return visibleTask(ctx, id);
}

const refuse = (detail: string, field: string, message = detail) => new AppError("PRECONDITION_FAILED", detail, { issues: [{ field, message }] });

/** WeCom's limit on a mass message's text. */
const TEXT_MAX_BYTES = 4000;

/**
 * Send the step's copy to the patient: the post rendered for the contact (name, consultant,
 * clinic), passed through the compliance gate in the transaction, then handed to WeCom as a
 * single-customer mass message (add_msg_template, chat_type single) from the owner's WeCom
 * account; the owner confirms it in the WeCom client. Records sent_at and WeCom's msgid, audits
 * `post.send`. Refuses (412, naming the field) when the step has no post, the gate refuses, the
 * contact has no WeCom external id or the owner no WeCom userid; 409 when already sent.
 * The task row stays locked while WeCom answers, so two clicks send once.
 */
export async function sendTaskMessage({ ctx, id }: { ctx: Ctx; id: string }): Promise<TaskView> {
  requirePermission(ctx, "leads:work");
  const app = await loadWecomApp(ctx.deps, ctx.tenantId);
  await withTransaction(ctx, async (tx, ctx) => {
    const t = await lockTask(tx, ctx, id);
    if (t.status === "skipped" || t.status === "cancelled") throw notOpen(t);
    if (t.sentAt) throw new ConflictError(`this step's message was already sent (${t.sendRef ?? "no msgid"})`, [{ field: "id", message: `sent at ${t.sentAt.toISOString()}` }]);
    if (!t.postId) throw refuse("this step has no message: attach an approved post to the template's step", "postId", "the step has no post");
    if (!app) throw refuse("set up WeCom first (PUT /v1/wecom/settings)", "wecom", "WeCom is not set up");
    if (!t.staffId) throw refuse("the lead has no consultant (it is in the pool): assign it first", "staffId", "the lead has no owner");
    const [who] = await tx
      .select({ ext: contacts.externalUserId, name: contacts.name, deletedAt: contacts.deletedAt, clinic: clinics.name, owner: staff.name, ownerUserId: staff.wecomUserId, ownerActive: staff.active })
      .from(contacts)
      .innerJoin(staff, eq(staff.id, t.staffId))
      .leftJoin(clinics, eq(clinics.id, contacts.clinicId))
      .where(and(eq(contacts.tenantId, ctx.tenantId), eq(contacts.id, t.contactId)));
    if (!who) throw new NotFoundError("contact");
    if (!who.ext) throw refuse("the patient is not a WeCom contact (no external userid): send it by hand", "contactId", "the contact has no WeCom external userid");
    if (who.deletedAt) throw refuse("the patient removed the consultant in WeCom", "contactId", "the contact is no longer reachable in WeCom");
    if (!who.ownerUserId || !who.ownerActive) throw refuse("the lead's consultant has no WeCom userid (or has left)", "staffId", "the owner has no WeCom userid");
    const [post] = await tx.select().from(posts).where(and(eq(posts.tenantId, ctx.tenantId), eq(posts.id, t.postId)));
    if (!post) throw refuse("the step's post no longer exists", "postId", "no such post");
    try {
      // An SOP step is a consultant's follow-up about an offer: marketing, so a patient who opted out is refused.
      await assertSendable(tx, ctx, post.id, { title: post.title, body: post.body }, { contactId: t.contactId, service: false });
    } catch (err) {
      if (err instanceof SendRefused) throw refuse(`the compliance gate refused the step's copy: ${err.message}`, "postId", err.message);
      throw err;
    }
    const text = renderPost(post.body, { ...post.sampleData, name: who.name ?? "", nickname: who.name ?? "", consultant: who.owner, ...(who.clinic ? { clinic: who.clinic } : {}) });
    if (utf8Bytes(text) > TEXT_MAX_BYTES) throw refuse(`the rendered message is longer than WeCom's ${TEXT_MAX_BYTES} bytes`, "postId", "too long for WeCom");
    let msgid: string;
    try {
      const r = await ctx.deps.wecomClient(app).addMsgTemplate({ chat_type: "single", external_userid: [who.ext], sender: who.ownerUserId, text: { content: text } });
      if (r.fail_list?.includes(who.ext)) throw new WecomError("externalcontact/add_msg_template", 41048, "the customer is in fail_list");
      msgid = r.msgid;
    } catch (err) {
      const detail = err instanceof WecomError ? `${err.errcode} ${err.errmsg}` : (err as Error).message;
      await audit(ctx.deps.db, ctx, { action: "post.send.failed", entityType: "post", entityId: post.id, after: { kind: "sop", taskId: t.id, leadId: t.leadId, contactId: t.contactId, error: detail.slice(0, 300) } });
      if (err instanceof WecomError && err.errcode === 41048) throw refuse("WeCom has no such customer for this consultant (not friends, or the consultant is outside the app's visibility)", "contactId", "WeCom refused the recipient (41048)");
      throw new AppError("SERVICE_UNAVAILABLE", `WeCom did not take the message: ${detail}; try again`, { cause: err });
    }
    await tx.update(leadTasks).set({ sentAt: ctx.deps.now(), sendRef: msgid }).where(eq(leadTasks.id, t.id));
    await audit(tx, ctx, { action: "post.send", entityType: "post", entityId: post.id, after: { kind: "sop", taskId: t.id, leadId: t.leadId, contactId: t.contactId, sender: who.ownerUserId, contentHash: post.contentHash, msgid } });
  });
  return visibleTask(ctx, id);
}

// ------------------------------------------------------------------- stats

export const TaskStats = z.object({
  /** Open, not yet due. */
  open: z.number(),
  /** Open and past due. */
  overdue: z.number(),
  done: z.number(),
  /** Of the done ones, finished after their due time. */
  late: z.number(),
  skipped: z.number(),
  /** Closed with the lead. */
  cancelled: z.number(),
});
export type TaskStats = z.infer<typeof TaskStats>;

function statsColumns(now: Date) {
  const at = sql`${now.toISOString()}::timestamptz`;
  const n = (cond: SQL) => sql<number>`(count(*) filter (where ${cond}))::int`;
  return {
    open: n(sql`${leadTasks.status} = 'open' and ${leadTasks.dueAt} >= ${at}`),
    overdue: n(sql`${leadTasks.status} = 'open' and ${leadTasks.dueAt} < ${at}`),
    done: n(sql`${leadTasks.status} = 'done'`),
    late: n(sql`${leadTasks.status} = 'done' and ${leadTasks.completedAt} > ${leadTasks.dueAt}`),
    skipped: n(sql`${leadTasks.status} = 'skipped'`),
    cancelled: n(sql`${leadTasks.status} = 'cancelled'`),
  };
}

/** How a lead's SOP is going. Consultants: leads they own (others 404). */
export async function leadTaskStats({ ctx, leadId }: { ctx: Ctx; leadId: string }): Promise<TaskStats> {
  requirePermission(ctx, "leads:read");
  if (!isUuid(leadId)) throw new NotFoundError("lead");
  const db = dbOf(ctx);
  const [lead] = await db.select({ id: leads.id }).from(leads).where(and(eq(leads.tenantId, ctx.tenantId), eq(leads.id, leadId), taskVisibility(ctx)));
  if (!lead) throw new NotFoundError("lead");
  const [s] = await db.select(statsColumns(ctx.deps.now())).from(leadTasks).where(and(eq(leadTasks.tenantId, ctx.tenantId), eq(leadTasks.leadId, leadId)));
  return s!;
}

export const ConsultantTaskStatsInput = z.object({
  /** One consultant; consultants may only ask for themselves (the default for them). */
  staffId: z.uuid().optional(),
  /** Tasks due in [since, until). */
  since: z.iso.datetime({ offset: true }).optional(),
  until: z.iso.datetime({ offset: true }).optional(),
});

/** Per consultant (the task's owner): open, overdue, done (late), skipped, cancelled. */
export async function consultantTaskStats({ ctx, input }: { ctx: Ctx; input?: unknown }): Promise<{ items: (TaskStats & { staffId: string; staffName: string })[] }> {
  requirePermission(ctx, "leads:read");
  const p = ConsultantTaskStatsInput.safeParse(input ?? {});
  if (!p.success) throw new ValidationError(zodIssues(p.error.issues));
  let staffId = p.data.staffId;
  if (ctx.actor.kind === "staff" && ownsOnly(ctx.actor.role)) {
    if (staffId && staffId !== ctx.actor.staffId) throw new ForbiddenError("consultants see their own figures only");
    staffId = ctx.actor.staffId;
  }
  const conds: (SQL | undefined)[] = [eq(leadTasks.tenantId, ctx.tenantId), sql`${leadTasks.staffId} is not null`];
  if (staffId) conds.push(eq(leadTasks.staffId, staffId));
  if (p.data.since) conds.push(gte(leadTasks.dueAt, new Date(p.data.since)));
  if (p.data.until) conds.push(lt(leadTasks.dueAt, new Date(p.data.until)));
  const rows = await dbOf(ctx)
    .select({ staffId: leadTasks.staffId, staffName: staff.name, ...statsColumns(ctx.deps.now()) })
    .from(leadTasks)
    .innerJoin(staff, eq(staff.id, leadTasks.staffId))
    .where(and(...conds))
    .groupBy(leadTasks.staffId, staff.name)
    .orderBy(asc(staff.name));
  return { items: rows.map((r) => ({ ...r, staffId: r.staffId! })) };
}

// ------------------------------------------------------------ daily digest

/** Tenants whose consultants' digest is due now (08:30 local, catching up until 09:15), with their local day. */
export async function dueDigests(deps: ServiceDeps, now: Date = deps.now()): Promise<{ tenantId: string; day: string }[]> {
  const rows = await deps.db.select({ id: tenants.id, tz: tenants.timezone }).from(tenants);
  return rows.flatMap((r) => {
    try {
      const day = digestDay(now, r.tz);
      return day ? [{ tenantId: r.id, day }] : [];
    } catch {
      deps.logger.warn({ tenantId: r.id, timezone: r.tz }, "tenant time zone unknown: no lead digest");
      return [];
    }
  });
}

const asDate = (v: string | Date | null) => (v === null ? null : new Date(v));
const SHOWN = 5;

/**
 * The morning digest of one tenant's local day: every active staff member with open SOP tasks or
 * post-visit follow-ups (回访, listed as tasks) due that day or overdue, or open leads not yet
 * contacted, gets one WeCom app message (kind digest),
 * queued in the outbox with a key per staff and day, so a job that runs twice (or two schedulers)
 * still sends one. Returns how many staff had something and how many messages were newly queued.
 */
export async function sendDailyDigest({ deps, tenantId, day }: { deps: ServiceDeps; tenantId: string; day: string }): Promise<{ staff: number; queued: number }> {
  const ctx = systemCtx(deps, tenantId, "lead-digest");
  return withTransaction(ctx, async (tx, ctx) => {
    const timeZone = await tenantTimeZone(tx, tenantId);
    const { end } = localDayBounds(day, timeZone);
    const now = ctx.deps.now();
    const nowAt = sql`${now.toISOString()}::timestamptz`;
    const tasks = rowsOf<{ staff_id: string; title: string; due_at: string | Date; contact_name: string | null; overdue: boolean; n: number }>(
      await tx.execute(sql`
        select staff_id, title, due_at, contact_name, overdue, n from (
          select t.staff_id, t.title, t.due_at, t.contact_name, t.due_at < ${nowAt} as overdue,
            count(*) over (partition by t.staff_id, t.due_at < ${nowAt})::int as n,
            row_number() over (partition by t.staff_id, t.due_at < ${nowAt} order by t.due_at, t.id) as rn
          from (
            select t.id, t.staff_id, t.title, t.due_at, c.name as contact_name
            from lead_tasks t
              join leads l on l.id = t.lead_id and l.status = 'open'
              join contacts c on c.id = t.contact_id
              join staff s on s.id = t.staff_id and s.active
            where t.tenant_id = ${tenantId}::uuid and t.status = 'open' and t.staff_id is not null
              and t.due_at < ${end.toISOString()}::timestamptz
            union all
            -- Post-visit follow-ups (回访), for the contact's consultant now.
            select f.id, c.owner_staff_id, '到诊回访', f.due_at, c.name
            from follow_ups f
              join contacts c on c.tenant_id = f.tenant_id and c.id = f.contact_id
              join staff s on s.id = c.owner_staff_id and s.active
            where f.tenant_id = ${tenantId}::uuid and f.status = 'open' and f.due_at < ${end.toISOString()}::timestamptz
          ) t
        ) x where rn <= ${SHOWN} order by due_at`),
    );
    const waiting = rowsOf<{ staff_id: string; contact_name: string | null; grade: "A" | "B" | "C" | "D"; due_at: string | Date | null; n: number }>(
      await tx.execute(sql`
        select staff_id, contact_name, grade, due_at, n from (
          select l.active_owner_staff_id as staff_id, c.name as contact_name, l.grade, l.first_contact_due_at as due_at,
            count(*) over (partition by l.active_owner_staff_id)::int as n,
            row_number() over (partition by l.active_owner_staff_id order by l.first_contact_due_at nulls last, l.created_at, l.id) as rn
          from leads l
            join contacts c on c.id = l.contact_id
            join staff s on s.id = l.active_owner_staff_id and s.active
          where l.tenant_id = ${tenantId}::uuid and l.status = 'open' and l.active_owner_staff_id is not null and l.first_contacted_at is null
        ) x where rn <= ${SHOWN} order by due_at nulls last`),
    );
    type Acc = { today: DigestItem[]; overdue: DigestItem[]; awaiting: { contactName: string | null; grade: "A" | "B" | "C" | "D"; dueAt: Date | null }[]; totals: { today: number; overdue: number; awaiting: number } };
    const by = new Map<string, Acc>();
    const acc = (id: string) => by.get(id) ?? by.set(id, { today: [], overdue: [], awaiting: [], totals: { today: 0, overdue: 0, awaiting: 0 } }).get(id)!;
    for (const r of tasks) {
      const a = acc(r.staff_id);
      const item = { contactName: r.contact_name, title: r.title, dueAt: asDate(r.due_at)! };
      if (r.overdue) {
        a.overdue.push(item);
        a.totals.overdue = r.n;
      } else {
        a.today.push(item);
        a.totals.today = r.n;
      }
    }
    for (const r of waiting) {
      const a = acc(r.staff_id);
      a.awaiting.push({ contactName: r.contact_name, grade: r.grade, dueAt: asDate(r.due_at) });
      a.totals.awaiting = r.n;
    }
    const items = [...by.entries()].flatMap(([staffId, a]) => {
      const d = composeDigest({ day, timeZone, ...a });
      return d ? [{ staffId, kind: "digest", title: d.title, body: d.body, dedupeKey: `digest-${staffId}-${day}` }] : [];
    });
    const ids = await notifyStaff(tx, ctx, items);
    return { staff: items.length, queued: ids.length };
  });
}
