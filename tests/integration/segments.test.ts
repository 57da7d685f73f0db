import { eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { contactTags, events, tagGroups, tags } from "../../src/db/schema/index";
import { startWorkers, type RunningWorker } from "../../src/jobs/workers";
import { systemCtx } from "../../src/services/context";
import { segmentCount } from "../../src/services/segments/compile";
import { compileChecked, snapshotSegments } from "../../src/services/segments/segments";
import { client, createTestTenant, phone, type TestTenant } from "../helpers/factories";
import { createTestRuntime, type TestRuntime } from "../helpers/runtime";
import { waitFor } from "../helpers/wait";

let t: TestRuntime;
let tenant: TestTenant;
let workers: RunningWorker[] = [];
const ids: Record<string, string> = {};
const ago = (d: number) => new Date(Date.now() - d * 86_400_000).toISOString();

beforeAll(async () => {
  t = await createTestRuntime();
  tenant = await createTestTenant(t.rt.deps);
  workers = startWorkers(t.rt.deps, t.rt.redisUrl, ["events"]);
  const admin = client(t.app, tenant.tokens.admin);
  // Four patients with different histories; the rules engine tags them.
  const people: Record<string, object[]> = {
    acneRevisit: [{ type: "visit", d: 60 }, { type: "visit", d: 10 }, { type: "message_received", d: 5, data: { text: "祛痘还要几次" } }],
    acneNew: [{ type: "message_received", d: 3, data: { text: "想祛痘" } }, { type: "contact_added", d: 3 }],
    bigSpender: [{ type: "visit", d: 30 }, { type: "purchase", d: 30, data: { amount: 26000, items: ["热玛吉"] } }],
    reader: Array.from({ length: 12 }, () => ({ type: "article_read", d: 1, data: { articleId: "a", topic: "美白" } })),
  };
  for (const [key, evs] of Object.entries(people)) {
    const c = await admin.post("/v1/contacts", { name: key, phone: phone(), source: key === "reader" ? "livestream" : "wecom" });
    ids[key] = c.body.id;
    const res = await admin.post("/v1/events", { events: (evs as { type: string; d: number; data?: object }[]).map((e, i) => ({ type: e.type, contactId: c.body.id, occurredAt: ago(e.d), idempotencyKey: `${key}-${i}`, data: e.data ?? {} })) });
    expect(res.status).toBe(202);
  }
  await waitFor(async () => (await t.rt.deps.db.select({ p: events.processedAt }).from(events).where(eq(events.tenantId, tenant.id))).every((r) => r.p), { what: "events tagged" });
});
afterAll(async () => {
  await Promise.all(workers.map((w) => w.close()));
  await t?.close();
});

const preview = (expression: string) => client(t.app, tenant.tokens.marketing).post("/v1/segments/preview", { expression });
const names = (res: { body: { sample: { name: string }[] } }) => res.body.sample.map((c) => c.name).sort();

describe("segments", () => {
  it.each([
    ["visit:复诊 AND need:祛痘", ["acneRevisit"]],
    ["need:祛痘 AND NOT visit:复诊", ["acneNew"]],
    ["spend_12m >= 5000", ["bigSpender"]],
    ["spend_12m >= 5000 OR engagement:高", ["bigSpender", "reader"]],
    ['source = "livestream"', ["reader"]],
    ["visits >= 1 AND days_since_visit < 20", ["acneRevisit"]],
    ["NOT engagement:低 AND NOT engagement:中 AND NOT engagement:高", ["bigSpender"]],
    ["(need:祛痘 OR need:美白) AND NOT source = wecom", ["reader"]],
  ])("%s", async (expression, expected) => {
    const res = await preview(expression);
    expect(res.status).toBe(200);
    expect(res.body.count).toBe(expected.length);
    expect(names(res)).toEqual(expected);
  });

  it("refuses bad expressions with the position and unknown tags by name, naming the field", async () => {
    const syntax = await preview("visit:复诊 AND (need:祛痘");
    expect(syntax.status).toBe(422);
    expect(syntax.body.errors).toEqual([{ field: "expression", message: expect.stringMatching(/expected \).*position 21/) }]);
    const unknown = await preview("need:植发 OR visit:老客");
    expect(unknown.body.errors[0].message).toBe("unknown tag need:植发, visit:老客");
  });

  it("creates segments, counts live, pages members, exports CSV with masking, keeps daily sizes", async () => {
    const mk = client(t.app, tenant.tokens.marketing);
    const seg = await mk.post("/v1/segments", { name: "祛痘人群", expression: "need:祛痘" });
    expect(seg.status).toBe(201);
    expect(seg.body.count).toBe(2);
    expect((await mk.post("/v1/segments", { name: "祛痘人群", expression: "need:美白" })).status).toBe(409);
    const page1 = await mk.get(`/v1/segments/${seg.body.id}/members?limit=1`);
    const page2 = await mk.get(`/v1/segments/${seg.body.id}/members?limit=1&cursor=${page1.body.nextCursor}`);
    expect([page1.body.items[0].name, page2.body.items[0].name].sort()).toEqual(["acneNew", "acneRevisit"]);
    expect(page2.body.nextCursor).toBeNull();
    expect(page1.body.items[0].phone).toMatch(/^\d{3}\*{4}\d{4}$/);
    const csvRes = await t.app.request(`/v1/segments/${seg.body.id}/export.csv`, { headers: { authorization: `Bearer ${tenant.tokens.marketing}` } });
    expect(csvRes.headers.get("content-type")).toContain("text/csv");
    const bytes = Buffer.from(await csvRes.arrayBuffer());
    expect([...bytes.subarray(0, 3)]).toEqual([0xef, 0xbb, 0xbf]); // BOM: Excel opens the Chinese correctly
    const csv = bytes.subarray(3).toString("utf8");
    expect(csv.startsWith("id,姓名,手机号")).toBe(true);
    expect(csv.trim().split("\r\n")).toHaveLength(3);
    expect(csv).toMatch(/\d{3}\*{4}\d{4}/);
    const adminCsv = await (await t.app.request(`/v1/segments/${seg.body.id}/export.csv`, { headers: { authorization: `Bearer ${tenant.tokens.admin}` } })).text();
    expect(adminCsv).toMatch(/\+86\d{11}/);
    const changed = await mk.patch(`/v1/segments/${seg.body.id}`, { expression: "need:祛痘 AND visit:复诊" });
    expect(changed.body.count).toBe(1);
    await snapshotSegments({ ctx: systemCtx(t.rt.deps, tenant.id, "test"), day: "2026-11-23" });
    await snapshotSegments({ ctx: systemCtx(t.rt.deps, tenant.id, "test"), day: "2026-11-23" });
    const sizes = await mk.get(`/v1/segments/${seg.body.id}/sizes`);
    expect(sizes.body.items).toEqual([{ day: "2026-11-23", size: 1 }]);
    const list = await mk.get("/v1/segments");
    expect(list.body.items.find((s: { id: string }) => s.id === seg.body.id).count).toBe(1);
  });

  it("counts through the plan each expression needs: tag bits with fields, the tag index for a tag without a bit, a contact scan", async () => {
    // A tenant's 64th tag onwards has no bit in contact_tag_state: its members come from the tag
    // index, which holds exactly the rows of such tags.
    const [g] = await t.rt.deps.db.insert(tagGroups).values({ tenantId: tenant.id, key: "vip", name: "VIP" }).returning();
    const made = await t.rt.deps.db.insert(tags).values(Array.from({ length: 64 }, (_, i) => ({ tenantId: tenant.id, groupId: g!.id, name: `t${i}` }))).returning();
    const last = made.reduce((a, b) => (b.ordinal! > a.ordinal! ? b : a));
    expect(last.ordinal).toBeGreaterThanOrEqual(63);
    await t.rt.deps.db.insert(contactTags).values([ids.acneRevisit!, ids.bigSpender!].map((contactId) => ({ tenantId: tenant.id, contactId, tagId: last.id, source: "manual" as const })));
    const vip = `vip:${last.name}`;
    const ctx = systemCtx(t.rt.deps, tenant.id, "test");
    const cases: [string, string, number][] = [
      [vip, "tag-index", 2],
      [`${vip} AND need:祛痘`, "tag-index", 1],
      [`${vip} AND NOT need:祛痘 AND spend_12m >= 5000`, "tag-index", 1],
      ["need:祛痘 AND source = wecom", "tag-bits", 2],
      ["NOT visit:复诊 AND need:祛痘 AND days_since_added < 5", "tag-bits", 1],
      [`${vip} OR engagement:高`, "contacts", 3],
    ];
    for (const [expression, plan, n] of cases) {
      const c = await compileChecked(ctx, expression);
      expect([expression, segmentCount(c.ast, new Date().toISOString(), c.ids, tenant.id, () => 0, c.ordinals).drivenBy]).toEqual([expression, plan]);
      expect([expression, (await preview(expression)).body.count]).toEqual([expression, n]);
    }
  });

  it("counts the same through every plan (tag-driven, tag-driven with fields, contact scan) and leaves out deleted contacts", async () => {
    const cases: [string, number][] = [
      ["need:祛痘", 2],
      ["need:祛痘 AND source = wecom", 2],
      ["need:祛痘 AND NOT visit:复诊", 1],
      ["NOT visit:复诊 AND need:祛痘 AND days_since_added < 5", 1],
      ["need:祛痘 OR visit:复诊 OR spend_12m >= 5000", 3],
    ];
    for (const [expression, n] of cases) expect([expression, (await preview(expression)).body.count]).toEqual([expression, n]);
    // acneNew deletes the consultant: gone from every count.
    const res = await client(t.app, tenant.tokens.admin).post("/v1/events", { events: [{ type: "contact_deleted", contactId: ids.acneNew, occurredAt: ago(0), idempotencyKey: "acneNew-gone", data: {} }] });
    expect(res.status).toBe(202);
    await waitFor(async () => (await t.rt.deps.db.select({ p: events.processedAt }).from(events).where(eq(events.id, res.body.ids[0]))).every((r) => r.p), { what: "deletion processed" });
    const after: [string, number][] = [
      ["need:祛痘", 1],
      ["need:祛痘 AND source = wecom", 1],
      ["need:祛痘 AND NOT visit:复诊", 0],
      ["NOT visit:复诊 AND need:祛痘 AND days_since_added < 5", 0],
      ["need:祛痘 OR visit:复诊 OR spend_12m >= 5000", 2],
    ];
    for (const [expression, n] of after) expect([expression, (await preview(expression)).body.count]).toEqual([expression, n]);
  });
});
