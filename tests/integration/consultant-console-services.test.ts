import { and, eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { events, followUps } from "../../src/db/schema/index";
import { addDays } from "../../src/domain/delivery/schedule";
import { localDate } from "../../src/domain/leads/sop";
import { startWorkers, type RunningWorker } from "../../src/jobs/workers";
import { systemCtx, type Ctx } from "../../src/services/context";
import { listConsultants } from "../../src/services/leads/consultants";
import { segmentSizeSeries } from "../../src/services/metrics/segment-sizes";
import { snapshotSegments } from "../../src/services/segments/segments";
import { client, createTestTenant, phone, staffCtx as staffCtxOf, type StaffKey, type TestTenant } from "../helpers/factories";
import { createTestRuntime, type TestRuntime } from "../helpers/runtime";
import { waitFor } from "../helpers/wait";

/** The service reads the console's consultant and team pages added: consultants with their load, segment sizes over time, follow-ups due by today. */
let t: TestRuntime;
let tenant: TestTenant;
let other: TestTenant;
let workers: RunningWorker[] = [];

beforeAll(async () => {
  t = await createTestRuntime();
  tenant = await createTestTenant(t.rt.deps);
  other = await createTestTenant(t.rt.deps);
  workers = startWorkers(t.rt.deps, t.rt.redisUrl, ["events"]);
});
afterAll(async () => {
  await Promise.all(workers.map((w) => w.close()));
  await t?.close();
});

const staffCtx = (who: StaffKey, of: TestTenant = tenant): Ctx => staffCtxOf(t.rt.deps, of, who);
const api = (who: StaffKey, of: TestTenant = tenant) => client(t.app, of.tokens[who]);

async function contact(owner: StaffKey, of: TestTenant = tenant): Promise<string> {
  const res = await api("admin", of).post("/v1/contacts", { name: `客户${phone().slice(-4)}`, phone: phone(), ownerStaffId: of.staff[owner].id });
  expect(res.status).toBe(201);
  return res.body.id as string;
}

describe("listConsultants", () => {
  it("lists the tenant's active consultants with their open leads and capacity, for roles that route leads only", async () => {
    for (let i = 0; i < 2; i++) expect((await api("consultant").post("/v1/leads", { contactId: await contact("consultant"), source: "api" })).status).toBe(201);
    const all = await listConsultants({ ctx: staffCtx("manager") });
    expect(all.map((c) => [c.id, c.openLeads, c.capacity])).toEqual([
      [tenant.staff.consultant.id, 2, 50],
      [tenant.staff.consultant2.id, 0, 50],
    ]);
    expect(all.map((c) => c.name)).toEqual([`consultant ${tenant.slug}`, `consultant2 ${tenant.slug}`]);
    // Another tenant's consultants never appear; a deactivated consultant is no longer offered.
    expect((await listConsultants({ ctx: staffCtx("admin", other) })).every((c) => c.name.endsWith(other.slug))).toBe(true);
    expect((await api("admin").patch(`/v1/staff/${tenant.staff.consultant2.id}`, { active: false })).status).toBe(200);
    expect((await listConsultants({ ctx: staffCtx("admin") })).map((c) => c.id)).toEqual([tenant.staff.consultant.id]);
    expect((await api("admin").patch(`/v1/staff/${tenant.staff.consultant2.id}`, { active: true })).status).toBe(200);
    for (const who of ["consultant", "marketing", "reviewer"] as const) await expect(listConsultants({ ctx: staffCtx(who) })).rejects.toMatchObject({ code: "FORBIDDEN" });
  });
});

describe("segmentSizeSeries", () => {
  it("returns every segment with its snapshots in [from, to), oldest first; metrics:read roles only", async () => {
    const mk = api("marketing");
    expect((await mk.post("/v1/segments", { name: "A 全部", expression: "spend_12m >= 0" })).status).toBe(201);
    const ctx = systemCtx(t.rt.deps, tenant.id, "test");
    const today = localDate(new Date(), "Asia/Shanghai");
    await snapshotSegments({ ctx, day: addDays(today, -40) });
    await snapshotSegments({ ctx, day: addDays(today, -10) });
    await snapshotSegments({ ctx, day: today });
    // B, made after the snapshots, was never measured: listed with no sizes.
    expect((await mk.post("/v1/segments", { name: "B 从未测量", expression: "spend_12m >= 100000" })).status).toBe(201);
    const series = await segmentSizeSeries({ ctx: staffCtx("manager"), input: { from: addDays(today, -30), to: addDays(today, 1) } });
    expect(series.from).toBe(addDays(today, -30));
    const byName = Object.fromEntries(series.segments.map((s) => [s.name, s.sizes.map((x) => x.day)]));
    expect(byName["A 全部"]).toEqual([addDays(today, -10), today]);
    expect(series.segments.map((s) => s.name)).toEqual(["A 全部", "B 从未测量"]);
    expect(byName["B 从未测量"]).toEqual([]);
    expect(series.segments[0]!.sizes[1]!.size).toBeGreaterThan(0);
    // The default period is the last 30 days, ending today.
    const recent = await segmentSizeSeries({ ctx: staffCtx("marketing") });
    expect(recent.to).toBe(addDays(today, 1));
    expect(recent.segments.find((s) => s.name === "A 全部")!.sizes.map((x) => x.day)).toEqual([addDays(today, -10), today]);
    // Another tenant sees none of them.
    expect((await segmentSizeSeries({ ctx: staffCtx("admin", other) })).segments).toEqual([]);
    await expect(segmentSizeSeries({ ctx: staffCtx("manager"), input: { from: today, to: addDays(today, -1) } })).rejects.toMatchObject({ code: "VALIDATION_FAILED" });
    for (const who of ["consultant", "reviewer"] as const) await expect(segmentSizeSeries({ ctx: staffCtx(who) })).rejects.toMatchObject({ code: "FORBIDDEN" });
  });
});

describe("follow-ups due by today", () => {
  it("due=by_today lists open follow-ups due before the end of today (overdue and today's), not later or handled ones", async () => {
    const visit = async (contactId: string, daysAgo: number) => {
      const v = await api("admin").post("/v1/visits", { contactId, occurredAt: new Date(Date.now() - daysAgo * 86_400_000).toISOString() });
      expect(v.status).toBe(201);
      await waitFor(async () => (await t.rt.deps.db.select().from(events).where(eq(events.id, v.body.eventId)))[0]?.processedAt, { what: "visit processed" });
      const [f] = await t.rt.deps.db.select().from(followUps).where(and(eq(followUps.tenantId, tenant.id), eq(followUps.contactId, contactId)));
      return f!.id;
    };
    const overdue = await visit(await contact("consultant"), 5);
    const dueToday = await visit(await contact("consultant"), 3);
    const later = await visit(await contact("consultant"), 0);
    const handled = await visit(await contact("consultant"), 4);
    expect((await api("consultant").post(`/v1/follow-ups/${handled}/complete`, { note: "已回访" })).status).toBe(200);
    const theirs = await visit(await contact("consultant2"), 5);

    const ids = async (who: StaffKey, q: string) => ((await api(who).get(`/v1/follow-ups?${q}`)).body.items as { id: string }[]).map((f) => f.id);
    const mine = await ids("consultant", "due=by_today");
    expect(mine).toContain(overdue);
    expect(mine).toContain(dueToday);
    expect(mine).not.toContain(later);
    expect(mine).not.toContain(handled);
    expect(mine).not.toContain(theirs);
    expect(mine.indexOf(overdue)).toBeLessThan(mine.indexOf(dueToday));
    // Managers: everyone's, or one consultant's.
    expect(await ids("manager", "due=by_today")).toContain(theirs);
    expect(await ids("manager", `due=by_today&staffId=${tenant.staff.consultant2.id}`)).toEqual([theirs]);
    expect((await api("consultant").get("/v1/follow-ups?due=someday")).status).toBe(422);
  });
});
