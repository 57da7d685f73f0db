import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startWorkers, type RunningWorker } from "../../src/jobs/workers";
import { contactsByIds } from "../../src/services/contacts/by-ids";
import { systemCtx, type Ctx } from "../../src/services/context";
import { snapshotSegments } from "../../src/services/segments/segments";
import { latestSegmentSnapshots } from "../../src/services/segments/snapshots";
import { tagRuleVersionPeople } from "../../src/services/tagging/rule-history";
import { client, createTestTenant, phone, staffCtx as staffCtxOf, type StaffKey, type TestTenant } from "../helpers/factories";
import { createTestRuntime, type TestRuntime } from "../helpers/runtime";

/** The small service reads the console's marketing pages added: who wrote and published rule versions, latest segment snapshots, contacts by id. */
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

describe("tagRuleVersionPeople", () => {
  it("names who saved and who published each version, per tenant; roles without rules:read are refused", async () => {
    const mk = client(t.app, tenant.tokens.marketing);
    const current = (await mk.get("/v1/tag-rules")).body.published.definition;
    expect((await mk.call("PUT", "/v1/tag-rules/draft", { ...current, note: "same rules" })).status).toBe(200);
    expect(await tagRuleVersionPeople({ ctx: staffCtx("admin") })).toEqual({ 2: { createdBy: `marketing ${tenant.slug}`, publishedBy: null } });
    expect((await client(t.app, tenant.tokens.admin).post("/v1/tag-rules/draft/publish")).status).toBe(200);
    expect((await mk.post("/v1/tag-rules/rollback", { version: 1 })).status).toBe(200);
    expect(await tagRuleVersionPeople({ ctx: staffCtx("marketing") })).toEqual({
      2: { createdBy: `marketing ${tenant.slug}`, publishedBy: `admin ${tenant.slug}` },
      3: { createdBy: `marketing ${tenant.slug}`, publishedBy: `marketing ${tenant.slug}` },
    });
    expect(await tagRuleVersionPeople({ ctx: staffCtx("admin", other) })).toEqual({});
    await expect(tagRuleVersionPeople({ ctx: staffCtx("consultant") })).rejects.toMatchObject({ code: "FORBIDDEN" });
  });
});

describe("latestSegmentSnapshots", () => {
  it("gives each segment's latest daily size; segments never snapshotted are absent", async () => {
    const mk = client(t.app, tenant.tokens.marketing);
    const a = (await mk.post("/v1/segments", { name: "来自海报", expression: 'source = "qr_poster"' })).body.id as string;
    await snapshotSegments({ ctx: systemCtx(t.rt.deps, tenant.id, "test"), day: "2026-11-20" });
    await mk.post("/v1/contacts", { name: "海报客户", phone: phone(), source: "qr_poster" });
    await snapshotSegments({ ctx: systemCtx(t.rt.deps, tenant.id, "test"), day: "2026-11-21" });
    const b = (await mk.post("/v1/segments", { name: "直播", expression: 'source = "livestream"' })).body.id as string;
    const latest = await latestSegmentSnapshots({ ctx: staffCtx("marketing") });
    expect(latest[a]).toEqual({ day: "2026-11-21", size: 1 });
    expect(latest[b]).toBeUndefined();
    expect(await latestSegmentSnapshots({ ctx: staffCtx("admin", other) })).toEqual({});
    await expect(latestSegmentSnapshots({ ctx: staffCtx("reviewer") })).rejects.toMatchObject({ code: "FORBIDDEN" });
  });
});

describe("contactsByIds", () => {
  it("returns the contacts the caller may see, phones masked per role, ignoring unknown and malformed ids", async () => {
    const admin = client(t.app, tenant.tokens.admin);
    const mine = (await admin.post("/v1/contacts", { name: "我的", phone: phone(), ownerStaffId: tenant.staff.consultant.id })).body.id as string;
    const theirs = (await admin.post("/v1/contacts", { name: "别人的", phone: phone(), ownerStaffId: tenant.staff.consultant2.id })).body.id as string;
    const elsewhere = (await client(t.app, other.tokens.admin).post("/v1/contacts", { name: "别家的", phone: phone() })).body.id as string;
    const ids = [mine, theirs, elsewhere, "not-an-id", "00000000-0000-0000-0000-000000000000", mine];
    const byMarketing = await contactsByIds({ ctx: staffCtx("marketing"), ids });
    expect([...byMarketing.keys()].sort()).toEqual([mine, theirs].sort());
    expect(byMarketing.get(mine)!.phone).toMatch(/^1\d{2}\*{4}\d{4}$/);
    const byConsultant = await contactsByIds({ ctx: staffCtx("consultant"), ids });
    expect([...byConsultant.keys()]).toEqual([mine]);
    expect(byConsultant.get(mine)!.phone).toMatch(/^\+86\d{11}$/);
    expect((await contactsByIds({ ctx: staffCtx("marketing"), ids: [] })).size).toBe(0);
    await expect(contactsByIds({ ctx: staffCtx("reviewer"), ids: [mine] })).rejects.toMatchObject({ code: "FORBIDDEN" });
  });
});
