import { and, eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { auditLog, clinics, contacts, leadTasks, posts, staff, staffNotifications } from "../../src/db/schema/index";
import { DEFAULT_SOP_TEMPLATE, localDate } from "../../src/domain/leads/sop";
import { startWorkers, type RunningWorker } from "../../src/jobs/workers";
import { QUEUES } from "../../src/queue/catalog";
import { systemCtx, withTransaction, type Ctx } from "../../src/services/context";
import { reassignLead, signalLead } from "../../src/services/leads/leads";
import {
  cancelOpenTasks,
  completeTask,
  consultantTaskStats,
  createSopTemplate,
  deleteSopTemplate,
  dueDigests,
  getTask,
  leadTaskStats,
  listSopTemplates,
  listTasks,
  sendDailyDigest,
  sendTaskMessage,
  skipTask,
  startSop,
  updateSopTemplate,
} from "../../src/services/leads/sop";
import { createPost, reviewPost, submitPost, updatePost } from "../../src/services/posts/posts";
import { putWecomSettings } from "../../src/services/wecom/settings";
import { startFakeWecom, type RunningFakeWecom } from "../../src/wecom/fake/index";
import { createTestTenant, type StaffKey, type TestTenant } from "../helpers/factories";
import { createTestRuntime, type TestRuntime } from "../helpers/runtime";
import { waitFor } from "../helpers/wait";
import { testWecomApp } from "../helpers/wecom";

/** Follow-up SOPs end to end: real PostgreSQL and Redis, the fake WeCom over HTTP. */
let t: TestRuntime;
let fake: RunningFakeWecom;
const app = testWecomApp();

beforeAll(async () => {
  fake = await startFakeWecom({ corpId: app.corpId, agentId: app.agentId, secret: app.secret, callbackToken: app.callbackToken, encodingAesKey: app.encodingAesKey });
  t = await createTestRuntime({}, { wecomBaseUrl: fake.url });
});
afterAll(async () => {
  await fake?.close();
  await t?.close();
});

const HOUR = 3_600_000;
const sys = (tenant: TestTenant): Ctx => systemCtx(t.rt.deps, tenant.id, "test");
const as = (tenant: TestTenant, key: StaffKey, now?: Date): Ctx => {
  const role = key === "consultant2" ? "consultant" : key;
  const ctx: Ctx = { ...sys(tenant), actor: { kind: "staff", staffId: tenant.staff[key].id, role, name: key, via: "token" } };
  return now ? { ...ctx, deps: { ...ctx.deps, now: () => now } } : ctx;
};

async function contact(tenant: TestTenant, o: Partial<typeof contacts.$inferInsert> = {}) {
  const [c] = await t.rt.deps.db.insert(contacts).values({ tenantId: tenant.id, name: "张女士", source: "api", ownerStaffId: tenant.staff.consultant.id, ...o }).returning();
  return c!;
}

/** A lead on a new contact of the consultant (or of `owner`), opened by the system. */
async function lead(tenant: TestTenant, o: { owner?: StaffKey; source?: string; need?: string; clinicId?: string; contact?: Partial<typeof contacts.$inferInsert> } = {}) {
  const c = await contact(tenant, { ownerStaffId: tenant.staff[o.owner ?? "consultant"].id, ...o.contact });
  const r = await signalLead({ ctx: sys(tenant), input: { contactId: c.id, source: o.source ?? "api", ...(o.need ? { need: o.need } : {}), ...(o.clinicId ? { clinicId: o.clinicId } : {}) } });
  return r.lead;
}

const tasksOf = async (tenant: TestTenant, leadId: string) => (await listTasks({ ctx: sys(tenant), input: { leadId } })).items;

/** `days` after the Shanghai calendar date of `at`, at hh:mm Shanghai time (UTC+8, no DST): computed without the code under test. */
function shanghai(at: Date, days: number, hhmm: string): string {
  const local = new Date(at.getTime() + 8 * HOUR);
  const [h, m] = hhmm.split(":").map(Number);
  return new Date(Date.UTC(local.getUTCFullYear(), local.getUTCMonth(), local.getUTCDate() + days, h! - 8, m!)).toISOString();
}

describe("SOP templates and starting a lead's SOP", () => {
  it("gives a new lead the default template's four tasks, due in Asia/Shanghai, owned by the lead's owner, once", async () => {
    const tenant = await createTestTenant(t.rt.deps);
    const templates = await listSopTemplates({ ctx: as(tenant, "manager") });
    expect(templates.items).toEqual([expect.objectContaining({ name: DEFAULT_SOP_TEMPLATE.name, clinicId: null, priority: 0, active: true, match: {} })]);
    expect(templates.items[0]!.steps.map((s) => [s.key, s.day, s.at ?? null, s.title])).toEqual([
      ["day0-greeting", 0, null, "问候/自我介绍"],
      ["day1-case", 1, "10:00", "案例分享"],
      ["day3-invite", 3, "14:00", "邀约面诊"],
      ["day7-followup", 7, "10:00", "回访跟进"],
    ]);

    const l = await lead(tenant);
    const created = new Date(l.createdAt);
    const tasks = await tasksOf(tenant, l.id);
    expect(tasks.map((x) => [x.stepKey, x.title, x.dueAt])).toEqual([
      ["day0-greeting", "问候/自我介绍", new Date(created.getTime() + 2 * HOUR).toISOString()],
      ["day1-case", "案例分享", shanghai(created, 1, "10:00")],
      ["day3-invite", "邀约面诊", shanghai(created, 3, "14:00")],
      ["day7-followup", "回访跟进", shanghai(created, 7, "10:00")],
    ]);
    expect(tasks.every((x) => x.staffId === tenant.staff.consultant.id && x.status === "open" && !x.overdue && x.templateId === templates.items[0]!.id && x.postId === null)).toBe(true);
    expect(tasks[1]!.note).toContain("案例");

    // A repeat signal raises the same lead and plans nothing; neither does starting the SOP again.
    await signalLead({ ctx: sys(tenant), input: { contactId: l.contactId, source: "rule" } });
    const again = await withTransaction(sys(tenant), (tx, ctx) => startSop(tx, ctx, { id: l.id }));
    expect(again).toEqual({ templateId: templates.items[0]!.id, tasks: 0 });
    expect(await tasksOf(tenant, l.id)).toHaveLength(4);
  });

  it("picks the most specific template, the clinic's own before the tenant's; a deactivated one starts nothing new", async () => {
    const tenant = await createTestTenant(t.rt.deps);
    const mgr = as(tenant, "manager");
    const ortho = await createSopTemplate({
      ctx: mgr,
      input: { name: "正畸线索 SOP", match: { needs: ["正畸"] }, steps: [{ key: "day0-ortho", day: 0, at: "20:00", title: "发送正畸科普" }, { key: "day2-invite", day: 2, title: "邀约正畸面诊" }] },
    });
    const l = await lead(tenant, { need: "正畸" });
    const created = new Date(l.createdAt);
    const tasks = await tasksOf(tenant, l.id);
    expect(tasks.map((x) => x.stepKey)).toEqual(["day0-ortho", "day2-invite"]);
    expect(tasks.every((x) => x.templateId === ortho.id)).toBe(true);
    expect(tasks[1]!.dueAt).toBe(new Date(created.getTime() + 48 * HOUR).toISOString());
    // Another need: the default.
    expect((await tasksOf(tenant, (await lead(tenant, { need: "美白" })).id)).map((x) => x.stepKey)).toEqual(DEFAULT_SOP_TEMPLATE.steps.map((s) => s.key));

    // A clinic's own template beats the tenant's, even a more specific one of higher priority.
    const [clinic] = await t.rt.deps.db.insert(clinics).values({ tenantId: tenant.id, name: "静安店" }).returning();
    await updateSopTemplate({ ctx: mgr, id: ortho.id, input: { priority: 50 } });
    const own = await createSopTemplate({ ctx: mgr, input: { name: "静安店 SOP", clinicId: clinic!.id, steps: [{ key: "d0", day: 0, title: "门店问候" }] } });
    expect((await tasksOf(tenant, (await lead(tenant, { need: "正畸", clinicId: clinic!.id })).id)).map((x) => [x.stepKey, x.templateId])).toEqual([["d0", own.id]]);

    // Deactivated: new 正畸 leads get the default; planned tasks stay.
    const off = await deleteSopTemplate({ ctx: mgr, id: ortho.id });
    expect(off.active).toBe(false);
    expect((await tasksOf(tenant, (await lead(tenant, { need: "正畸" })).id))[0]!.stepKey).toBe("day0-greeting");
    expect(await tasksOf(tenant, l.id)).toHaveLength(2);
    expect((await listSopTemplates({ ctx: mgr })).items.map((x) => x.id)).not.toContain(ortho.id);
    expect((await listSopTemplates({ ctx: mgr, input: { includeInactive: "true" } })).items.map((x) => x.id)).toContain(ortho.id);
    const audits = await t.rt.deps.db.select({ action: auditLog.action }).from(auditLog).where(and(eq(auditLog.tenantId, tenant.id), eq(auditLog.entityId, ortho.id)));
    expect(audits.map((a) => a.action).sort()).toEqual(["sop.template.create", "sop.template.delete", "sop.template.update"]);
  });

  it("validates templates, naming the field; a post must be the tenant's own; only managers and admins edit", async () => {
    const tenant = await createTestTenant(t.rt.deps);
    const other = await createTestTenant(t.rt.deps);
    const mgr = as(tenant, "manager");
    const steps = [{ key: "a", day: 0, title: "问候" }, { key: "b", day: 1, title: "案例" }];
    await expect(createSopTemplate({ ctx: mgr, input: { name: "x", steps: [...steps, { key: "c", day: 3, at: "7pm", title: "邀约" }] } })).rejects.toMatchObject({ status: 422, issues: [expect.objectContaining({ field: "steps.2.at" })] });
    await expect(createSopTemplate({ ctx: mgr, input: { name: "x", steps: [...steps, { key: "a", day: 3, title: "重复" }] } })).rejects.toMatchObject({ status: 422, issues: [expect.objectContaining({ field: "steps.2.key" })] });
    const foreign = await createPost({ ctx: as(other, "marketing"), input: { kind: "mass_message", body: "您好" } });
    await expect(createSopTemplate({ ctx: mgr, input: { name: "x", steps: [steps[0], { ...steps[1], postId: foreign.id }] } })).rejects.toMatchObject({ status: 422, issues: [{ field: "steps.1.postId", message: "is not a post of this clinic group" }] });
    await expect(createSopTemplate({ ctx: mgr, input: { name: "x", clinicId: "00000000-0000-4000-8000-000000000000", steps } })).rejects.toMatchObject({ status: 422, issues: [expect.objectContaining({ field: "clinicId" })] });
    for (const key of ["consultant", "marketing", "reviewer"] as const) {
      await expect(createSopTemplate({ ctx: as(tenant, key), input: { name: "x", steps } })).rejects.toMatchObject({ status: 403 });
      await expect(listSopTemplates({ ctx: as(tenant, key) })).rejects.toMatchObject({ status: 403 });
    }
    const made = await createSopTemplate({ ctx: as(tenant, "admin"), input: { name: "x", steps } });
    await expect(updateSopTemplate({ ctx: mgr, id: made.id, input: { steps: [{ key: "a", day: 400, title: "y" }] } })).rejects.toMatchObject({ status: 422, issues: [expect.objectContaining({ field: "steps.0.day" })] });
    await expect(updateSopTemplate({ ctx: as(other, "manager"), id: made.id, input: { name: "偷改" } })).rejects.toMatchObject({ status: 404 });
  });
});

describe("SOP tasks", () => {
  it("follow the lead when it is reassigned (done ones stay with who did them) and are cancelled when it closes", async () => {
    const tenant = await createTestTenant(t.rt.deps);
    const l = await lead(tenant);
    const [first] = await tasksOf(tenant, l.id);
    await completeTask({ ctx: as(tenant, "consultant"), id: first!.id });
    await reassignLead({ ctx: as(tenant, "manager"), id: l.id, input: { toStaffId: tenant.staff.consultant2.id, reason: "客户要求换顾问" } });
    const after = await tasksOf(tenant, l.id);
    expect(after.map((x) => [x.stepKey, x.status, x.staffId])).toEqual([
      ["day0-greeting", "done", tenant.staff.consultant.id],
      ["day1-case", "open", tenant.staff.consultant2.id],
      ["day3-invite", "open", tenant.staff.consultant2.id],
      ["day7-followup", "open", tenant.staff.consultant2.id],
    ]);
    // The new owner works them; the old one no longer sees them.
    await expect(completeTask({ ctx: as(tenant, "consultant"), id: after[1]!.id })).rejects.toMatchObject({ status: 404 });
    expect((await completeTask({ ctx: as(tenant, "consultant2"), id: after[1]!.id })).status).toBe("done");
    expect((await listTasks({ ctx: as(tenant, "consultant"), input: { leadId: l.id, mine: false } })).items).toEqual([]);

    const n = await withTransaction(sys(tenant), (tx, ctx) => cancelOpenTasks(tx, ctx, l.id, "lead converted"));
    expect(n).toBe(2);
    expect((await tasksOf(tenant, l.id)).map((x) => [x.status, x.skipReason])).toEqual([
      ["done", null],
      ["done", null],
      ["cancelled", "lead converted"],
      ["cancelled", "lead converted"],
    ]);
  });

  it("completes and skips (a reason required), lists today's, overdue and upcoming tasks in the tenant's day, and counts them", async () => {
    const tenant = await createTestTenant(t.rt.deps);
    const l = await lead(tenant);
    const ids = (await tasksOf(tenant, l.id)).map((x) => x.id);
    // The clock: Tuesday 2026-11-24 12:00 in Shanghai.
    const now = new Date("2026-11-24T04:00:00.000Z");
    const due = ["2026-11-23T02:00:00.000Z", "2026-11-24T01:00:00.000Z", "2026-11-24T08:00:00.000Z", "2026-11-25T02:00:00.000Z"]; // yesterday 10:00, today 09:00, today 16:00, tomorrow 10:00
    for (const [i, id] of ids.entries()) await t.rt.deps.db.update(leadTasks).set({ dueAt: new Date(due[i]!) }).where(eq(leadTasks.id, id));
    const me = as(tenant, "consultant", now);
    const list = async (input: object) => (await listTasks({ ctx: me, input })).items.map((x) => [x.dueAt, x.overdue]);
    expect(await list({ due: "overdue" })).toEqual([
      [due[0], true],
      [due[1], true],
    ]);
    expect(await list({ due: "today" })).toEqual([
      [due[1], true],
      [due[2], false],
    ]);
    expect(await list({ due: "upcoming" })).toEqual([
      [due[2], false],
      [due[3], false],
    ]);
    // Pages in due order.
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const page: Awaited<ReturnType<typeof listTasks>> = await listTasks({ ctx: me, input: { limit: 1, ...(cursor ? { cursor } : {}) } });
      seen.push(...page.items.map((x) => x.dueAt));
      cursor = page.nextCursor;
    } while (cursor);
    expect(seen).toEqual(due);

    const done = await completeTask({ ctx: me, id: ids[1]! });
    expect(done).toMatchObject({ status: "done", overdue: false, completedAt: now.toISOString(), completedByStaffId: tenant.staff.consultant.id });
    await expect(completeTask({ ctx: me, id: ids[1]! })).rejects.toMatchObject({ status: 409 });
    await expect(skipTask({ ctx: me, id: ids[0]!, input: {} })).rejects.toMatchObject({ status: 422, issues: [{ field: "reason", message: "a reason is required" }] });
    await expect(skipTask({ ctx: me, id: ids[0]!, input: { reason: "  " } })).rejects.toMatchObject({ status: 422, issues: [expect.objectContaining({ field: "reason" })] });
    const skipped = await skipTask({ ctx: me, id: ids[0]!, input: { reason: "客户已到院面诊" } });
    expect(skipped).toMatchObject({ status: "skipped", skipReason: "客户已到院面诊", overdue: false });
    await expect(skipTask({ ctx: me, id: ids[0]!, input: { reason: "again" } })).rejects.toMatchObject({ status: 409 });
    expect(await list({ due: "overdue" })).toEqual([]);
    expect(await list({ due: "today", status: "open" })).toEqual([[due[2], false]]);
    expect((await listTasks({ ctx: me, input: { status: "done" } })).items.map((x) => x.id)).toEqual([ids[1]]);

    const stats = { open: 2, overdue: 0, done: 1, late: 1, skipped: 1, cancelled: 0 };
    expect(await leadTaskStats({ ctx: me, leadId: l.id })).toEqual(stats);
    expect(await consultantTaskStats({ ctx: me })).toEqual({ items: [{ staffId: tenant.staff.consultant.id, staffName: expect.any(String), ...stats }] });
    // The next morning the 16:00 task is overdue too.
    expect(await leadTaskStats({ ctx: as(tenant, "manager", new Date("2026-11-25T00:30:00.000Z")), leadId: l.id })).toMatchObject({ open: 1, overdue: 1 });
    const audits = await t.rt.deps.db.select({ action: auditLog.action, after: auditLog.after }).from(auditLog).where(and(eq(auditLog.tenantId, tenant.id), eq(auditLog.entityType, "lead_task")));
    expect(audits.map((a) => a.action).sort()).toEqual(["lead.task.done", "lead.task.skip"]);
  });

  it("keeps consultants to the tasks of leads they own: others' are 404; managers see all", async () => {
    const tenant = await createTestTenant(t.rt.deps);
    const theirs = await lead(tenant, { owner: "consultant2" });
    const mine = await lead(tenant);
    const [task] = await tasksOf(tenant, theirs.id);
    const me = as(tenant, "consultant");
    await expect(getTask({ ctx: me, id: task!.id })).rejects.toMatchObject({ status: 404 });
    await expect(completeTask({ ctx: me, id: task!.id })).rejects.toMatchObject({ status: 404 });
    await expect(skipTask({ ctx: me, id: task!.id, input: { reason: "不是我的" } })).rejects.toMatchObject({ status: 404 });
    await expect(sendTaskMessage({ ctx: me, id: task!.id })).rejects.toMatchObject({ status: 404 });
    await expect(leadTaskStats({ ctx: me, leadId: theirs.id })).rejects.toMatchObject({ status: 404 });
    await expect(consultantTaskStats({ ctx: me, input: { staffId: tenant.staff.consultant2.id } })).rejects.toMatchObject({ status: 403 });
    expect((await listTasks({ ctx: me, input: { mine: false } })).items.every((x) => x.leadId === mine.id)).toBe(true);
    expect((await listTasks({ ctx: me, input: { leadId: theirs.id, mine: false } })).items).toEqual([]);
    expect((await listTasks({ ctx: me })).items).toHaveLength(4);
    // Managers see every task; `mine` narrows to their own (none).
    const mgr = as(tenant, "manager");
    expect((await listTasks({ ctx: mgr })).items).toHaveLength(8);
    expect((await listTasks({ ctx: mgr, input: { staffId: tenant.staff.consultant2.id } })).items.map((x) => x.leadId)).toEqual(Array(4).fill(theirs.id));
    expect((await listTasks({ ctx: mgr, input: { mine: true } })).items).toEqual([]);
    expect((await getTask({ ctx: mgr, id: task!.id })).id).toBe(task!.id);
    // Reviewers and marketing have no lead rights to read.
    await expect(listTasks({ ctx: as(tenant, "reviewer") })).rejects.toMatchObject({ status: 403 });
    await expect(completeTask({ ctx: as(tenant, "reviewer"), id: task!.id })).rejects.toMatchObject({ status: 403 });
  });
});

describe("sending a step's message through the compliance gate", () => {
  let tenant: TestTenant;
  const userid = () => `consultant-${tenant.slug}`;
  beforeAll(async () => {
    tenant = await createTestTenant(t.rt.deps);
    await putWecomSettings({ ctx: sys(tenant), input: app });
    fake.control.createStaff({ userid: userid(), name: "张顾问" });
  });

  /** A post through review: mass messages need two levels (reviewer, then admin). */
  async function approvedPost(body: string) {
    const p = await createPost({ ctx: as(tenant, "marketing"), input: { kind: "mass_message", body } });
    await submitPost({ ctx: as(tenant, "marketing"), id: p.id });
    await reviewPost({ ctx: as(tenant, "reviewer"), id: p.id, input: { decision: "approve", contentHash: p.contentHash } });
    return reviewPost({ ctx: as(tenant, "admin"), id: p.id, input: { decision: "approve", contentHash: p.contentHash } });
  }

  /** A WeCom patient of the consultant with a lead whose SOP (matched by source) sends `postId` on day 0. */
  async function taskWithPost(postId: string, o: { wecom?: boolean; name?: string } = {}) {
    const source = `sop-${Math.random().toString(36).slice(2, 10)}`;
    await createSopTemplate({ ctx: as(tenant, "manager"), input: { name: source, match: { sources: [source] }, steps: [{ key: "day0-greeting", day: 0, title: "问候", postId }] } });
    const ext = o.wecom === false ? null : fake.control.createContact({ name: o.name ?? "陈女士", followedBy: userid() }).externalUserId;
    const l = await lead(tenant, { source, contact: { name: o.name ?? "陈女士", externalUserId: ext } });
    const [task] = await tasksOf(tenant, l.id);
    expect(task!.postId).toBe(postId);
    return { task: task!, ext, lead: l };
  }

  const refusedAudits = async (postId: string) => (await t.rt.deps.db.select().from(auditLog).where(and(eq(auditLog.tenantId, tenant.id), eq(auditLog.entityId, postId), eq(auditLog.action, "post.send.refused")))).length;

  it("refuses copy that is not approved, or was edited after approval, and WeCom gets nothing", async () => {
    const me = as(tenant, "consultant");
    const before = fake.state.massMessages.size;
    const draft = await createPost({ ctx: as(tenant, "marketing"), input: { kind: "mass_message", body: "{{name}}您好，我是您的专属顾问。" } });
    const { task } = await taskWithPost(draft.id);
    await expect(sendTaskMessage({ ctx: me, id: task.id })).rejects.toMatchObject({ status: 412, detail: expect.stringContaining("the post is draft, not approved"), issues: [expect.objectContaining({ field: "postId" })] });

    // Approved, then edited through the API: back to draft.
    const edited = await approvedPost("{{name}}您好，本周末有皮肤检测开放日。");
    const one = await taskWithPost(edited.id);
    await updatePost({ ctx: as(tenant, "marketing"), id: edited.id, input: { body: "{{name}}您好，本周末有皮肤检测开放日，名额有限！" } });
    await expect(sendTaskMessage({ ctx: me, id: one.task.id })).rejects.toMatchObject({ status: 412, detail: expect.stringContaining("not approved") });

    // Approved, then changed behind the API's back: the content no longer matches what was approved.
    const tampered = await approvedPost("{{name}}您好，欢迎来院咨询。");
    const two = await taskWithPost(tampered.id);
    await t.rt.deps.db.update(posts).set({ body: "{{name}}您好，欢迎来院咨询，保证效果。" }).where(eq(posts.id, tampered.id));
    await expect(sendTaskMessage({ ctx: me, id: two.task.id })).rejects.toMatchObject({ status: 412, detail: expect.stringContaining("the content differs from the approved content") });

    expect(fake.state.massMessages.size).toBe(before);
    expect(await refusedAudits(draft.id)).toBe(1);
    expect(await refusedAudits(tampered.id)).toBe(1);
    expect((await getTask({ ctx: me, id: two.task.id })).sentAt).toBeNull();
  });

  it("sends approved copy, rendered for the patient, as a single-customer mass message from the owner's WeCom account, once", async () => {
    const post = await approvedPost("{{name}}您好，我是您的顾问{{consultant}}，明天上午为您准备了同类案例，方便时回复我。");
    const { task, ext, lead: l } = await taskWithPost(post.id, { name: "陈女士" });
    const sent = await sendTaskMessage({ ctx: as(tenant, "consultant"), id: task.id });
    expect(sent.sentAt).not.toBeNull();
    expect(sent.sendRef).toMatch(/\S/);
    const msg = fake.state.massMessages.get(sent.sendRef!);
    const [owner] = await t.rt.deps.db.select({ name: staff.name }).from(staff).where(eq(staff.id, tenant.staff.consultant.id));
    expect(msg).toMatchObject({ chatType: "single", text: { content: `陈女士您好，我是您的顾问${owner!.name}，明天上午为您准备了同类案例，方便时回复我。` } });
    expect(msg!.results).toEqual([expect.objectContaining({ userid: userid(), externalUserId: ext, status: 0 })]);
    const [audit] = await t.rt.deps.db.select().from(auditLog).where(and(eq(auditLog.tenantId, tenant.id), eq(auditLog.entityId, post.id), eq(auditLog.action, "post.send")));
    expect(audit!.after).toMatchObject({ kind: "sop", taskId: task.id, leadId: l.id, contentHash: post.contentHash, msgid: sent.sendRef, sender: userid() });
    // Twice: refused, nothing more reaches WeCom. The task itself is still the consultant's to mark done.
    const count = fake.state.massMessages.size;
    await expect(sendTaskMessage({ ctx: as(tenant, "manager"), id: task.id })).rejects.toMatchObject({ status: 409 });
    expect(fake.state.massMessages.size).toBe(count);
    expect(sent.status).toBe("open");
  });

  it("refuses clearly when the step has no post, the patient is not on WeCom, or the owner has no WeCom userid", async () => {
    const me = as(tenant, "consultant");
    const post = await approvedPost("{{name}}您好，期待与您见面。");
    const plain = (await tasksOf(tenant, (await lead(tenant)).id))[0]!;
    await expect(sendTaskMessage({ ctx: me, id: plain.id })).rejects.toMatchObject({ status: 412, issues: [expect.objectContaining({ field: "postId" })] });
    const offline = await taskWithPost(post.id, { wecom: false });
    await expect(sendTaskMessage({ ctx: me, id: offline.task.id })).rejects.toMatchObject({ status: 412, issues: [expect.objectContaining({ field: "contactId" })] });
    const noUserid = await taskWithPost(post.id);
    await t.rt.deps.db.update(staff).set({ wecomUserId: null }).where(eq(staff.id, tenant.staff.consultant.id));
    try {
      await expect(sendTaskMessage({ ctx: me, id: noUserid.task.id })).rejects.toMatchObject({ status: 412, issues: [expect.objectContaining({ field: "staffId" })] });
    } finally {
      await t.rt.deps.db.update(staff).set({ wecomUserId: userid() }).where(eq(staff.id, tenant.staff.consultant.id));
    }
  });
});

describe("the consultants' daily digest", () => {
  let workers: RunningWorker[] = [];
  afterAll(async () => Promise.all(workers.map((w) => w.close())));

  it("is due at 08:30 in each tenant's time zone", async () => {
    const tenant = await createTestTenant(t.rt.deps);
    expect(await dueDigests(t.rt.deps, new Date("2026-11-24T00:45:00.000Z"))).toContainEqual({ tenantId: tenant.id, day: "2026-11-24" });
    expect((await dueDigests(t.rt.deps, new Date("2026-11-24T00:15:00.000Z"))).map((d) => d.tenantId)).not.toContain(tenant.id);
    expect((await dueDigests(t.rt.deps, new Date("2026-11-24T01:15:00.000Z"))).map((d) => d.tenantId)).not.toContain(tenant.id);
  });

  it("reaches each consultant with something to do once through WeCom's message/send, however often the job runs", async () => {
    const tenant = await createTestTenant(t.rt.deps);
    await putWecomSettings({ ctx: sys(tenant), input: app });
    for (const key of ["consultant", "consultant2", "manager"] as const) fake.control.createStaff({ userid: `${key}-${tenant.slug}`, name: key });
    const mine = await lead(tenant, { contact: { name: "周女士" } });
    await lead(tenant, { owner: "consultant2", contact: { name: "吴先生" } });
    // One of the consultant's tasks is overdue.
    const [first] = await tasksOf(tenant, mine.id);
    await t.rt.deps.db.update(leadTasks).set({ dueAt: new Date(Date.now() - 26 * HOUR) }).where(eq(leadTasks.id, first!.id));

    const day = localDate(new Date(), "Asia/Shanghai");
    workers = startWorkers(t.rt.deps, t.rt.redisUrl, ["wecom", "leads"]);
    const queue = t.rt.deps.producer.queue(QUEUES.leads);
    const run = async (jobId: string) => {
      await t.rt.deps.producer.enqueue("lead-digest", { tenantId: tenant.id, day }, { jobId });
      await waitFor(async () => (await queue.getJob(jobId))?.finishedOn, { what: `digest job ${jobId}` });
      return (await queue.getJob(jobId))!.returnvalue as { staff: number; queued: number };
    };
    expect(await run(`lead-digest-${tenant.id}-${day}`)).toEqual({ staff: 2, queued: 2 });
    // The job again (a retry, a second scheduler, a manual run): nothing new is queued.
    expect(await run(`lead-digest-${tenant.id}-${day}-again`)).toEqual({ staff: 2, queued: 0 });
    expect(await sendDailyDigest({ deps: t.rt.deps, tenantId: tenant.id, day })).toEqual({ staff: 2, queued: 0 });

    const rows = await waitFor(async () => {
      const r = await t.rt.deps.db.select().from(staffNotifications).where(and(eq(staffNotifications.tenantId, tenant.id), eq(staffNotifications.kind, "digest")));
      return r.length === 2 && r.every((n) => n.sentAt) ? r : null;
    }, { what: "both digests delivered" });
    expect(rows.map((r) => [r.staffId, r.outcome]).sort()).toEqual([[tenant.staff.consultant.id, "sent"], [tenant.staff.consultant2.id, "sent"]].sort());
    await new Promise((r) => setTimeout(r, 300));
    const digestsTo = (u: string) => fake.state.appMessages.filter((m) => JSON.stringify(m.body).includes("跟进日报") && (m.body as { touser?: string }).touser === u);
    const mineMsgs = digestsTo(`consultant-${tenant.slug}`);
    expect(mineMsgs).toHaveLength(1);
    expect(digestsTo(`consultant2-${tenant.slug}`)).toHaveLength(1);
    expect(digestsTo(`manager-${tenant.slug}`)).toHaveLength(0);
    const text = (mineMsgs[0]!.body as { text: { content: string } }).text.content;
    expect(text).toContain("逾期 1 项");
    expect(text).toContain("待首次联系 1 位");
    expect(text).toContain("问候/自我介绍：周女士");
    expect(text).toContain("周女士（");
    expect(text).not.toContain("吴先生");
  });
});
