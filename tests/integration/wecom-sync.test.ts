import { and, eq, isNotNull } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { contacts, contactTags, tagGroups, tags, wecomGroupChats, wecomSyncRuns } from "../../src/db/schema/index";
import { startWorkers, type RunningWorker } from "../../src/jobs/workers";
import { systemCtx } from "../../src/services/context";
import { runWecomSync, startWecomSync } from "../../src/services/wecom/sync";
import { WecomClient } from "../../src/wecom/api/client";
import { startFakeWecom, type RunningFakeWecom } from "../../src/wecom/fake/index";
import { client, createTestTenant, type TestTenant } from "../helpers/factories";
import { createTestRuntime, type TestRuntime } from "../helpers/runtime";
import { waitFor } from "../helpers/wait";
import { testWecomApp } from "../helpers/wecom";

let t: TestRuntime;
let fake: RunningFakeWecom;
let tenant: TestTenant;
const app = testWecomApp();
let c1: string;
let c2: string;
let vipTagId: string;
let tagged: string;
let localTagged: string;

beforeAll(async () => {
  fake = await startFakeWecom({ corpId: app.corpId, agentId: app.agentId, secret: app.secret, callbackToken: app.callbackToken, encodingAesKey: app.encodingAesKey });
  t = await createTestRuntime({}, { wecomBaseUrl: fake.url });
  tenant = await createTestTenant(t.rt.deps);
  expect((await client(t.app, tenant.tokens.admin).call("PUT", "/v1/wecom/settings", app)).status).toBe(200);
  c1 = `consultant-${tenant.slug}`;
  c2 = `consultant2-${tenant.slug}`;
  fake.control.createStaff({ userid: c1 });
  fake.control.createStaff({ userid: c2 });
  // A tag group made in WeCom's admin console, with one customer tagged in WeCom.
  const vip = await fake.control.adminCreatesTags({ groupName: "客户等级", tags: [{ name: "VIP" }, { name: "普通" }] });
  vipTagId = vip.tagIds[0]!;
  for (let i = 0; i < 230; i++) fake.control.createContact({ name: `客户${i}`, followedBy: i % 10 === 0 ? [c1, c2] : c1 });
  tagged = fake.control.createContact({ name: "VIP 客户", followedBy: { userid: c2, tagIds: [vipTagId] } }).externalUserId;
  // A customer Siyu already knows and has tagged 首诊 (a Siyu-managed group): the tag must reach WeCom.
  localTagged = fake.control.createContact({ name: "首诊客户", followedBy: c1 }).externalUserId;
  const created = await client(t.app, tenant.tokens.admin).post("/v1/contacts", { name: "首诊客户", externalUserId: localTagged });
  const [first] = await t.rt.deps.db.select({ id: tags.id }).from(tags).innerJoin(tagGroups, eq(tagGroups.id, tags.groupId)).where(and(eq(tags.tenantId, tenant.id), eq(tagGroups.key, "visit"), eq(tags.name, "首诊")));
  await t.rt.deps.db.insert(contactTags).values({ tenantId: tenant.id, contactId: created.body.id, tagId: first!.id, source: "rule", ruleId: "visit-first" });
  const ext = [...fake.state.contacts.keys()];
  await fake.control.createGroupChat({ owner: c1, name: "祛痘交流群", members: ext.slice(0, 12) });
  await fake.control.createGroupChat({ owner: c2, name: "抗衰 VIP 群", members: [c1, ...ext.slice(20, 25)] });
});
afterAll(async () => {
  await fake?.close();
  await t?.close();
});

describe("siyu wecom sync", () => {
  it("resumes from the last saved page after a failure instead of starting over", async () => {
    const ctx = systemCtx(t.rt.deps, tenant.id, "test");
    const run = await startWecomSync({ ctx });
    // A client that fails on the third page of customers, as a network outage would.
    let pages = 0;
    const real = t.rt.deps.wecomClient;
    const flaky = (a: Parameters<typeof real>[0]) => {
      const c = real(a);
      return new Proxy(c, {
        get(target, prop, receiver) {
          if (prop === "batchGetByUser") {
            return async (input: Parameters<WecomClient["batchGetByUser"]>[0]) => {
              if (++pages === 3) throw new Error("network down");
              return target.batchGetByUser(input);
            };
          }
          return Reflect.get(target, prop, receiver);
        },
      });
    };
    await expect(runWecomSync({ deps: { ...t.rt.deps, wecomClient: flaky }, tenantId: tenant.id, runId: run.id })).rejects.toThrow(/network down/);
    const [failed] = await t.rt.deps.db.select().from(wecomSyncRuns).where(eq(wecomSyncRuns.id, run.id));
    expect(failed).toMatchObject({ status: "failed", phase: "contacts" });
    expect(failed!.position.cursor).toBeTruthy();
    const relationsBefore = failed!.counts.relations!;
    expect(relationsBefore).toBe(200);

    // Resume: through the API and the wecom worker, as `siyu wecom sync` does.
    const workers: RunningWorker[] = startWorkers(t.rt.deps, t.rt.redisUrl, ["wecom"]);
    try {
      const again = await client(t.app, tenant.tokens.admin).post("/v1/wecom/sync", {});
      expect(again.status).toBe(202);
      expect(again.body.id).toBe(run.id);
      const done = await waitFor(async () => {
        const s = await client(t.app, tenant.tokens.admin).get("/v1/wecom/sync");
        return s.body.status === "done" ? s.body : s.body.status === "failed" ? Promise.reject(new Error(s.body.error)) : null;
      }, { what: "sync done", timeoutMs: 30_000 });
      // 234 relations on c1's side... every (customer, staff) pair exactly once across both runs.
      expect(done.counts.relations).toBe(230 + 23 + 1 + 1);
      expect(done.counts.groupChats).toBe(2);
    } finally {
      await Promise.all(workers.map((w) => w.close()));
    }
  });

  it("imported every customer once, with the follow user as owner", async () => {
    const rows = await t.rt.deps.db.select().from(contacts).where(and(eq(contacts.tenantId, tenant.id), isNotNull(contacts.externalUserId)));
    expect(rows).toHaveLength(232);
    const unowned = rows.filter((r) => !r.ownerStaffId);
    expect(unowned).toHaveLength(0);
    const sample = rows.find((r) => r.name === "客户0")!;
    expect([tenant.staff.consultant.id, tenant.staff.consultant2.id]).toContain(sample.ownerStaffId);
  });

  it("created Siyu's tag groups in WeCom, mirrored WeCom's own group, and reconciled contact tags both ways", async () => {
    const groups = await t.rt.deps.db.select().from(tagGroups).where(eq(tagGroups.tenantId, tenant.id));
    for (const key of ["visit", "spending", "need", "engagement"]) expect(groups.find((g) => g.key === key)?.wecomGroupId).toBeTruthy();
    const mirrored = groups.find((g) => g.name === "客户等级");
    expect(mirrored?.key).toMatch(/^wecom_/);
    const remoteGroups = [...fake.state.tagGroups.values()].map((g) => g.name);
    expect(remoteGroups).toEqual(expect.arrayContaining(["到诊状态", "消费能力", "需求类型", "活跃度", "客户等级"]));
    // Pulled: the WeCom VIP tag is now a local tag of that customer.
    const [vipContact] = await t.rt.deps.db.select().from(contacts).where(and(eq(contacts.tenantId, tenant.id), eq(contacts.externalUserId, tagged)));
    const vipTags = await t.rt.deps.db.select({ name: tags.name, source: contactTags.source }).from(contactTags).innerJoin(tags, eq(tags.id, contactTags.tagId)).where(eq(contactTags.contactId, vipContact!.id));
    expect(vipTags).toEqual([{ name: "VIP", source: "wecom" }]);
    // Pushed: Siyu's 首诊 reached WeCom with mark_tag.
    const [first] = await t.rt.deps.db.select({ wecomTagId: tags.wecomTagId }).from(tags).where(and(eq(tags.tenantId, tenant.id), eq(tags.name, "首诊")));
    expect(fake.state.follow(localTagged, c1)!.tagIds).toContain(first!.wecomTagId);
  });

  it("stored the customer groups", async () => {
    const rows = await t.rt.deps.db.select().from(wecomGroupChats).where(eq(wecomGroupChats.tenantId, tenant.id));
    expect(rows.map((r) => r.name).sort()).toEqual(["抗衰 VIP 群", "祛痘交流群"]);
    expect(rows.find((r) => r.name === "祛痘交流群")!.customerCount).toBe(12);
  });

  it("a second sync changes nothing and pushes nothing", async () => {
    const ctx = systemCtx(t.rt.deps, tenant.id, "test");
    const run = await startWecomSync({ ctx, restart: true });
    const out = await runWecomSync({ deps: t.rt.deps, tenantId: tenant.id, runId: run.id });
    expect(out.status).toBe("done");
    expect(out.counts.contactsCreated ?? 0).toBe(0);
    expect(out.counts.tagsPushed ?? 0).toBe(0);
    expect(out.counts.tagsCreatedInWecom ?? 0).toBe(0);
  });

  it("pushes a contact's tag changes to WeCom a few seconds after the rules move them", async () => {
    const [c] = await t.rt.deps.db.select().from(contacts).where(and(eq(contacts.tenantId, tenant.id), eq(contacts.externalUserId, localTagged)));
    const workers = startWorkers(t.rt.deps, t.rt.redisUrl, ["events", "wecom"]);
    try {
      const at = (d: number) => new Date(Date.now() - d * 86_400_000).toISOString();
      const res = await client(t.app, tenant.tokens.admin).post("/v1/events", {
        events: [
          { type: "visit", contactId: c!.id, occurredAt: at(20), idempotencyKey: "push-1", data: {} },
          { type: "visit", contactId: c!.id, occurredAt: at(2), idempotencyKey: "push-2", data: {} },
        ],
      });
      expect(res.status).toBe(202);
      const [revisit] = await t.rt.deps.db.select({ wecomTagId: tags.wecomTagId }).from(tags).where(and(eq(tags.tenantId, tenant.id), eq(tags.name, "复诊")));
      const [first] = await t.rt.deps.db.select({ wecomTagId: tags.wecomTagId }).from(tags).where(and(eq(tags.tenantId, tenant.id), eq(tags.name, "首诊")));
      const remote = await waitFor(async () => {
        const ids = fake.state.follow(localTagged, c1)!.tagIds;
        return ids.includes(revisit!.wecomTagId!) ? ids : null;
      }, { what: "复诊 in WeCom", timeoutMs: 20_000 });
      expect(remote).not.toContain(first!.wecomTagId);
    } finally {
      await Promise.all(workers.map((w) => w.close()));
    }
  });
});
