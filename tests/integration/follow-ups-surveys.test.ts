import { and, eq, sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { auditLog, events, followUps, staffNotifications, surveys } from "../../src/db/schema/index";
import { startWorkers, type RunningWorker } from "../../src/jobs/workers";
import { systemCtx, withTransaction } from "../../src/services/context";
import { planFollowUps } from "../../src/services/conversions/follow-ups";
import { processEvents } from "../../src/services/events/process";
import { sendDailyDigest } from "../../src/services/leads/sop";
import { client, createTestTenant, phone, type TestTenant } from "../helpers/factories";
import { createTestRuntime, type TestRuntime } from "../helpers/runtime";
import { waitFor } from "../helpers/wait";

let t: TestRuntime;
let workers: RunningWorker[] = [];
beforeAll(async () => {
  t = await createTestRuntime({ PUBLIC_URL: "https://siyu.example.cn" });
  workers = startWorkers(t.rt.deps, t.rt.redisUrl, ["events"]);
});
afterAll(async () => {
  await Promise.all(workers.map((w) => w.close()));
  await t?.close();
});

const SHANGHAI = new Intl.DateTimeFormat("en-CA", { timeZone: "Asia/Shanghai", year: "numeric", month: "2-digit", day: "2-digit" });
/** 10:00 Shanghai time, `days` local days after the local day of `at`. */
function tenOClock(at: Date, days: number): string {
  const [y, m, d] = SHANGHAI.format(at).split("-").map(Number);
  const day = new Date(Date.UTC(y!, m! - 1, d! + days)).toISOString().slice(0, 10);
  return new Date(`${day}T10:00:00+08:00`).toISOString();
}

async function ownContact(tenant: TestTenant, name = "王女士", token = tenant.tokens.consultant) {
  const c = await client(t.app, token).post("/v1/contacts", { name, phone: phone() });
  expect(c.status).toBe(201);
  return c.body.id as string;
}

async function processed(eventId: string) {
  return waitFor(async () => (await t.rt.deps.db.select().from(events).where(eq(events.id, eventId)))[0]?.processedAt, { what: `event ${eventId} processed` });
}

async function visit(tenant: TestTenant, contactId: string, occurredAt = new Date(Date.now() - 3_600_000)) {
  const v = await client(t.app, tenant.tokens.consultant).post("/v1/visits", { contactId, occurredAt: occurredAt.toISOString() });
  expect(v.status, JSON.stringify(v.body)).toBe(201);
  await processed(v.body.eventId);
  return { eventId: v.body.eventId as string, occurredAt };
}

const followUpsOf = (tenant: TestTenant, contactId: string) => t.rt.deps.db.select().from(followUps).where(and(eq(followUps.tenantId, tenant.id), eq(followUps.contactId, contactId)));

async function tagsIn(tenant: TestTenant, contactId: string, group: string): Promise<string[]> {
  const res = await client(t.app, tenant.tokens.admin).get(`/v1/contacts/${contactId}/tags`);
  return (res.body.tags as { group: string; name: string }[]).filter((x) => x.group === group).map((x) => x.name);
}

const form = (token: string, fields: Record<string, string>) =>
  t.app.request(`/s/${token}`, { method: "POST", body: new URLSearchParams(fields).toString(), headers: { "content-type": "application/x-www-form-urlencoded" } });

describe("post-visit follow-ups (回访)", () => {
  it("plans one follow-up per visit for the owner, due 3 days later at 10:00 tenant time, with a survey; processing again adds none", async () => {
    const tenant = await createTestTenant(t.rt.deps);
    const contactId = await ownContact(tenant);
    const v = await visit(tenant, contactId);
    const [f, ...more] = await followUpsOf(tenant, contactId);
    expect(more).toHaveLength(0);
    expect(f).toMatchObject({ status: "open", staffId: tenant.staff.consultant.id, visitEventId: v.eventId, kind: "post_visit" });
    expect(f!.dueAt.toISOString()).toBe(tenOClock(v.occurredAt, 3));
    const [s] = await t.rt.deps.db.select().from(surveys).where(eq(surveys.id, f!.surveyId!));
    expect(s).toMatchObject({ contactId, staffId: tenant.staff.consultant.id, visitEventId: v.eventId, answeredAt: null });
    expect(s!.token).toMatch(/^[A-Za-z0-9_-]{22,}$/);

    // The same visit applied again (a retried batch, a sweeper re-run): still one follow-up and one survey.
    await t.rt.deps.db.update(events).set({ processedAt: null }).where(eq(events.id, v.eventId));
    const again = await processEvents({ ctx: systemCtx(t.rt.deps, tenant.id, "test"), eventIds: [v.eventId] });
    expect(again.processed).toBe(1);
    const [ev] = await t.rt.deps.db.select().from(events).where(eq(events.id, v.eventId));
    await withTransaction(systemCtx(t.rt.deps, tenant.id, "test"), (tx, ctx) => planFollowUps(tx, ctx, [ev!]));
    expect(await followUpsOf(tenant, contactId)).toHaveLength(1);
    expect(await t.rt.deps.db.select().from(surveys).where(eq(surveys.contactId, contactId))).toHaveLength(1);

    // A second visit gets its own; a visit imported a month late gets none.
    await visit(tenant, contactId, new Date(Date.now() - 60_000));
    await visit(tenant, contactId, new Date(Date.now() - 30 * 86_400_000));
    expect(await followUpsOf(tenant, contactId)).toHaveLength(2);
  });

  it("follows the analytics settings (days, survey or not); only admins and managers change them, naming bad fields", async () => {
    const tenant = await createTestTenant(t.rt.deps);
    const mgr = client(t.app, tenant.tokens.manager);
    expect((await mgr.get("/v1/analytics/settings")).body).toEqual({ followUps: { afterVisitDays: 3, surveyAfterVisit: true }, attribution: { windowDays: 30 } });
    const bad = await mgr.call("PUT", "/v1/analytics/settings", { followUps: { afterVisitDays: 400 }, attribution: { windowDays: 0 } });
    expect(bad.status).toBe(422);
    expect(bad.body.errors.map((e: { field: string }) => e.field).sort()).toEqual(["attribution.windowDays", "followUps.afterVisitDays"]);
    expect((await client(t.app, tenant.tokens.consultant).get("/v1/analytics/settings")).status).toBe(403);
    const put = await mgr.call("PUT", "/v1/analytics/settings", { followUps: { afterVisitDays: 1, surveyAfterVisit: false } });
    expect(put.status).toBe(200);
    expect(put.body).toEqual({ followUps: { afterVisitDays: 1, surveyAfterVisit: false }, attribution: { windowDays: 30 } });
    const [a] = await t.rt.deps.db.select().from(auditLog).where(and(eq(auditLog.tenantId, tenant.id), eq(auditLog.action, "analytics.settings.update")));
    expect(a).toMatchObject({ actorStaffId: tenant.staff.manager.id });
    const contactId = await ownContact(tenant);
    const v = await visit(tenant, contactId);
    const [f] = await followUpsOf(tenant, contactId);
    expect(f!.dueAt.toISOString()).toBe(tenOClock(v.occurredAt, 1));
    expect(f!.surveyId).toBeNull();
  });

  it("lists, completes and skips follow-ups; consultants only their own contacts'", async () => {
    const tenant = await createTestTenant(t.rt.deps);
    const mine = await ownContact(tenant);
    const theirs = await ownContact(tenant, "李先生", tenant.tokens.consultant2);
    await visit(tenant, mine);
    const v2 = await client(t.app, tenant.tokens.consultant2).post("/v1/visits", { contactId: theirs });
    await processed(v2.body.eventId);
    const me = client(t.app, tenant.tokens.consultant);
    const list = await me.get("/v1/follow-ups?status=open");
    expect(list.status).toBe(200);
    expect(list.body.items.map((f: { contactId: string }) => f.contactId)).toEqual([mine]);
    const f = list.body.items[0];
    expect(f).toMatchObject({ contactName: "王女士", ownerStaffId: tenant.staff.consultant.id, status: "open", overdue: false, survey: { url: expect.stringMatching(/^https:\/\/siyu\.example\.cn\/s\/[A-Za-z0-9_-]{22,}$/), answeredAt: null } });
    expect((await me.get("/v1/follow-ups?due=upcoming")).body.items).toHaveLength(1);
    expect((await me.get("/v1/follow-ups?due=overdue")).body.items).toHaveLength(0);
    const all = await client(t.app, tenant.tokens.manager).get("/v1/follow-ups?limit=1");
    expect(all.body.items).toHaveLength(1);
    const page2 = await client(t.app, tenant.tokens.manager).get(`/v1/follow-ups?limit=1&cursor=${all.body.nextCursor}`);
    expect([...all.body.items, ...page2.body.items].map((x: { contactId: string }) => x.contactId).sort()).toEqual([mine, theirs].sort());
    expect((await client(t.app, tenant.tokens.manager).get(`/v1/follow-ups?staffId=${tenant.staff.consultant2.id}`)).body.items.map((x: { contactId: string }) => x.contactId)).toEqual([theirs]);

    const other = client(t.app, tenant.tokens.consultant2);
    expect((await other.get(`/v1/follow-ups/${f.id}`)).status).toBe(404);
    expect((await other.post(`/v1/follow-ups/${f.id}/complete`, { note: "抢" })).status).toBe(404);
    expect((await client(t.app, tenant.tokens.marketing).get("/v1/follow-ups")).status).toBe(403);

    const done = await me.post(`/v1/follow-ups/${f.id}/complete`, { note: "恢复良好，下月复诊", surveySent: true });
    expect(done.status).toBe(200);
    expect(done.body).toMatchObject({ status: "done", note: "恢复良好，下月复诊", completedByStaffId: tenant.staff.consultant.id, survey: { sentAt: expect.any(String) } });
    // No body at all is fine too (here: already done).
    expect((await me.post(`/v1/follow-ups/${f.id}/complete`)).status).toBe(409);

    const g = (await other.get("/v1/follow-ups")).body.items[0];
    const noReason = await other.post(`/v1/follow-ups/${g.id}/skip`, {});
    expect(noReason.status).toBe(422);
    expect(noReason.body.errors[0].field).toBe("reason");
    const skipped = await other.post(`/v1/follow-ups/${g.id}/skip`, { reason: "联系不上" });
    expect(skipped.body).toMatchObject({ status: "skipped", note: "联系不上" });
    const actions = (await t.rt.deps.db.select().from(auditLog).where(eq(auditLog.tenantId, tenant.id))).map((a) => a.action);
    expect(actions).toEqual(expect.arrayContaining(["followup.done", "followup.skip"]));
  });

  it("shows today's follow-ups in the consultant's workspace and in the 08:30 digest", async () => {
    const tenant = await createTestTenant(t.rt.deps);
    expect((await client(t.app, tenant.tokens.admin).call("PUT", "/v1/analytics/settings", { followUps: { afterVisitDays: 0 } })).status).toBe(200);
    const contactId = await ownContact(tenant, "周小姐");
    // A visit early today (Shanghai): its follow-up is due at 10:00 today.
    const at = new Date(Math.max(new Date(`${SHANGHAI.format(new Date())}T00:05:00+08:00`).getTime(), Date.now() - 3_600_000));
    await visit(tenant, contactId, at);
    const ws = await client(t.app, tenant.tokens.consultant).get("/v1/workspace");
    expect(ws.status).toBe(200);
    expect(ws.body.followUps).toEqual([expect.objectContaining({ contactId, contactName: "周小姐", survey: expect.objectContaining({ url: expect.stringContaining("/s/") }) })]);
    expect(ws.body.counts.followUpsToday).toBe(1);
    expect(ws.body.counts).toMatchObject({ open: 0, tasksToday: 0 });
    expect((await client(t.app, tenant.tokens.consultant2).get("/v1/workspace")).body.followUps).toEqual([]);

    const r = await sendDailyDigest({ deps: t.rt.deps, tenantId: tenant.id, day: SHANGHAI.format(new Date()) });
    expect(r.queued).toBe(1);
    const [n] = await t.rt.deps.db.select().from(staffNotifications).where(and(eq(staffNotifications.tenantId, tenant.id), eq(staffNotifications.kind, "digest")));
    expect(n).toMatchObject({ staffId: tenant.staff.consultant.id });
    expect(n!.body).toContain("到诊回访：周小姐");
  });
});

describe("satisfaction surveys (NPS)", () => {
  async function surveyFor(tenant: TestTenant, clinic?: string) {
    let clinicId: string | undefined;
    if (clinic) clinicId = (await client(t.app, tenant.tokens.admin).post("/v1/clinics", { name: clinic, city: "上海" })).body.id;
    const contactId = await ownContact(tenant);
    const v = await client(t.app, tenant.tokens.consultant).post("/v1/visits", { contactId, ...(clinicId ? { clinicId } : {}) });
    await processed(v.body.eventId);
    const [s] = await t.rt.deps.db.select().from(surveys).where(eq(surveys.contactId, contactId));
    return { contactId, survey: s! };
  }

  it("shows a Chinese page, takes the answer once as a survey_answered event, and tags the contact 推荐者", async () => {
    const tenant = await createTestTenant(t.rt.deps);
    const { contactId, survey } = await surveyFor(tenant, `<b>美丽颜</b>静安店`);
    const page = await t.app.request(`/s/${survey.token}`);
    expect(page.status).toBe(200);
    expect(page.headers.get("content-type")).toContain("text/html");
    expect(page.headers.get("cache-control")).toBe("no-store");
    const html = await page.text();
    expect(html).toContain("您有多大可能向朋友推荐我们？");
    expect(html).toContain("&lt;b&gt;美丽颜&lt;/b&gt;静安店");
    expect(html).not.toContain("<b>美丽颜");
    expect((html.match(/name="score"/g) ?? []).length).toBe(11);

    const bad = await form(survey.token, { score: "11" });
    expect(bad.status).toBe(422);
    expect(await bad.text()).toContain("请选择 0 到 10");
    const answered = await form(survey.token, { score: "10", comment: "医生很耐心 <3" });
    expect(answered.status).toBe(201);
    expect(await answered.text()).toContain("感谢您的反馈");
    const [row] = await t.rt.deps.db.select().from(surveys).where(eq(surveys.id, survey.id));
    expect(row).toMatchObject({ score: 10, comment: "医生很耐心 <3" });
    const [ev] = await t.rt.deps.db.select().from(events).where(eq(events.id, row!.eventId!));
    expect(ev).toMatchObject({ type: "survey_answered", contactId, source: "survey", payload: { score: 10, surveyId: survey.id, comment: "医生很耐心 <3", staffId: tenant.staff.consultant.id } });
    await processed(ev!.id);
    expect(await tagsIn(tenant, contactId, "nps")).toEqual(["推荐者"]);
    const facts = await t.rt.deps.db.execute(sql`select score from metric_facts where event_id = ${ev!.id}::uuid`);
    expect(JSON.stringify(facts)).toContain("10");

    // A second answer: the friendly 已提交 page, nothing changes.
    const twice = await form(survey.token, { score: "0" });
    expect(twice.status).toBe(409);
    expect(await twice.text()).toContain("已提交");
    expect((await t.rt.deps.db.select().from(surveys).where(eq(surveys.id, survey.id)))[0]!.score).toBe(10);
    expect(await (await t.app.request(`/s/${survey.token}`)).text()).toContain("已提交");
    const json = await t.app.request(`/s/${survey.token}`, { method: "POST", body: JSON.stringify({ score: 3 }), headers: { "content-type": "application/json" } });
    expect(json.status).toBe(409);
    expect(json.headers.get("content-type")).toContain("application/problem+json");
    expect(await t.rt.deps.db.select().from(events).where(and(eq(events.contactId, contactId), eq(events.type, "survey_answered")))).toHaveLength(1);

    // The consultant sees the answer with the link.
    const list = await client(t.app, tenant.tokens.consultant).get(`/v1/contacts/${contactId}/surveys`);
    expect(list.body.items).toEqual([expect.objectContaining({ id: survey.id, score: 10, category: "promoter", url: `https://siyu.example.cn/s/${survey.token}` })]);
    expect((await client(t.app, tenant.tokens.consultant2).get(`/v1/contacts/${contactId}/surveys`)).status).toBe(404);
  });

  it("answers JSON with problem+json naming score or comment, and tags a low score 贬损者; unknown tokens get the 404 page", async () => {
    const tenant = await createTestTenant(t.rt.deps);
    const { contactId, survey } = await surveyFor(tenant);
    const post = (body: unknown) => t.app.request(`/s/${survey.token}`, { method: "POST", body: JSON.stringify(body), headers: { "content-type": "application/json" } });
    const errorsOf = async (res: Response) => ((await res.json()) as { errors: { field: string }[] }).errors;
    const noScore = await post({ comment: "x" });
    expect(noScore.status).toBe(422);
    expect((await errorsOf(noScore))[0]!.field).toBe("score");
    const half = await post({ score: 7.5 });
    expect((await errorsOf(half))[0]!.field).toBe("score");
    const long = await post({ score: 5, comment: "太".repeat(501) });
    expect(long.status).toBe(422);
    expect((await errorsOf(long))[0]!.field).toBe("comment");
    const ok = await post({ score: 4 });
    expect(ok.status).toBe(201);
    expect(await ok.json()).toMatchObject({ surveyId: survey.id, score: 4, category: "detractor" });
    const [ev] = await t.rt.deps.db.select().from(events).where(and(eq(events.contactId, contactId), eq(events.type, "survey_answered")));
    await processed(ev!.id);
    expect(await tagsIn(tenant, contactId, "nps")).toEqual(["贬损者"]);

    for (const token of ["x".repeat(24), "short", survey.token.slice(0, -1) + (survey.token.endsWith("A") ? "B" : "A")]) {
      const r = await t.app.request(`/s/${token}`);
      expect(r.status, token).toBe(404);
      expect(await r.text()).toContain("问卷不存在");
    }
    const big = await t.app.request(`/s/${survey.token}`, { method: "POST", body: JSON.stringify({ score: 1, comment: "x".repeat(20_000) }), headers: { "content-type": "application/json" } });
    expect(big.status).toBe(413);
  });
});
