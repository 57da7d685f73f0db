import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startWorkers, type RunningWorker } from "../../src/jobs/workers";
import { client, createTestTenant, type TestTenant } from "../helpers/factories";
import { createTestRuntime, type TestRuntime } from "../helpers/runtime";
import { waitFor } from "../helpers/wait";

let t: TestRuntime;
let tenant: TestTenant;
let workers: RunningWorker[] = [];
let contactId: string;
const ago = (d: number) => new Date(Date.now() - d * 86_400_000).toISOString();

beforeAll(async () => {
  t = await createTestRuntime();
  tenant = await createTestTenant(t.rt.deps);
  workers = startWorkers(t.rt.deps, t.rt.redisUrl, ["events", "maintenance"]);
  const admin = client(t.app, tenant.tokens.admin);
  contactId = (await admin.post("/v1/contacts", { name: "规则测试" })).body.id;
  await admin.post("/v1/events", { events: [{ type: "visit", contactId, occurredAt: ago(40), idempotencyKey: "rule-v1", data: {} }] });
  await waitFor(async () => (await visitTag())?.name === "首诊", { what: "首诊 from the shipped rules" });
});
afterAll(async () => {
  await Promise.all(workers.map((w) => w.close()));
  await t?.close();
});

async function visitTag() {
  const r = await client(t.app, tenant.tokens.admin).get(`/v1/contacts/${contactId}/tags`);
  return r.body.tags.find((x: { group: string }) => x.group === "visit") as { name: string; reason: { ruleId: string; ruleVersion: number } } | undefined;
}

describe("tag rule management", () => {
  it("starts from the shipped rules as version 1", async () => {
    const r = await client(t.app, tenant.tokens.marketing).get("/v1/tag-rules");
    expect(r.body.published).toMatchObject({ version: 1, status: "published" });
    expect(r.body.published.rules).toBeGreaterThanOrEqual(20);
    expect(r.body.draft).toBeNull();
  });

  it("refuses an invalid draft, naming the rule and the field", async () => {
    const r = await client(t.app, tenant.tokens.marketing).call("PUT", "/v1/tag-rules/draft", {
      rules: [{ id: "bad-one", name: "坏规则", trigger: { events: ["visit"] }, when: { agg: { metric: "median", events: ["visit"] }, op: "gt", value: 1 }, then: [{ set: { group: "visit", tag: "首诊" } }] }],
    });
    expect(r.status).toBe(422);
    expect(r.body.errors[0]).toMatchObject({ field: "rules.bad-one.when.agg.metric", message: expect.stringMatching(/^rule bad-one: /) });
  });

  it("dry-runs a draft (30 dormant days), publishes it with a backfill, and rolls back", async () => {
    const mk = client(t.app, tenant.tokens.marketing);
    const current = (await mk.get("/v1/tag-rules")).body.published.definition;
    const saved = await mk.call("PUT", "/v1/tag-rules/draft", { ...current, params: { ...current.params, dormant_days: 30 }, note: "30 天未到诊即沉睡" });
    expect(saved.status).toBe(200);
    expect(saved.body).toMatchObject({ version: 2, status: "draft" });

    const dry = await mk.post("/v1/tag-rules/draft/dry-run");
    expect(dry.status).toBe(200);
    const byTag = Object.fromEntries(dry.body.changes.map((c: { group: string; tag: string }) => [`${c.group}:${c.tag}`, c]));
    expect(byTag["visit:沉睡"]).toMatchObject({ gains: 1, sampleGains: [contactId] });
    expect(byTag["visit:首诊"]).toMatchObject({ losses: 1, sampleLosses: [contactId] });
    expect((await visitTag())?.name).toBe("首诊"); // a dry run writes nothing

    const pub = await mk.post("/v1/tag-rules/draft/publish");
    expect(pub.body).toMatchObject({ version: 2, status: "published" });
    const dormant = await waitFor(async () => {
      const v = await visitTag();
      return v?.name === "沉睡" ? v : null;
    }, { what: "backfill under version 2" });
    expect(dormant.reason).toMatchObject({ ruleId: "visit-dormant", ruleVersion: 2 });

    const back = await mk.post("/v1/tag-rules/rollback", { version: 1 });
    expect(back.body).toMatchObject({ version: 3, status: "published" });
    await waitFor(async () => (await visitTag())?.name === "首诊", { what: "backfill after rollback" });
    const all = await mk.get("/v1/tag-rules");
    expect(all.body.versions.map((v: { version: number; status: string }) => `${v.version}:${v.status}`)).toEqual(["3:published", "2:archived", "1:archived"]);
    const audit = await client(t.app, tenant.tokens.admin).get("/v1/audit?entityType=tag_rule_set");
    expect(audit.body.items.map((a: { action: string }) => a.action)).toEqual(expect.arrayContaining(["tag_rules.draft", "tag_rules.publish", "tag_rules.rollback"]));
  });

  it("discards a draft: kept in the history as discarded, its number never reused, the published rules untouched, audited", async () => {
    const mk = client(t.app, tenant.tokens.marketing);
    const before = (await mk.get("/v1/tag-rules")).body;
    const saved = await mk.call("PUT", "/v1/tag-rules/draft", { ...before.published.definition, params: { ...before.published.definition.params, dormant_days: 7 }, note: "试一下 7 天" });
    expect(saved.status).toBe(200);
    expect((await client(t.app, tenant.tokens.consultant).call("DELETE", "/v1/tag-rules/draft")).status).toBe(403);
    const gone = await mk.call("DELETE", "/v1/tag-rules/draft");
    expect(gone.status).toBe(200);
    expect(gone.body).toMatchObject({ version: saved.body.version, status: "discarded" });
    const after = (await mk.get("/v1/tag-rules")).body;
    expect(after.draft).toBeNull();
    expect(after.published).toMatchObject({ version: before.published.version, status: "published" });
    expect(after.versions.find((v: { version: number }) => v.version === saved.body.version)).toMatchObject({ status: "discarded", note: "试一下 7 天" });
    const again = await mk.call("DELETE", "/v1/tag-rules/draft");
    expect(again.status).toBe(404);
    expect(again.headers.get("content-type")).toContain("application/problem+json");
    expect((await mk.post("/v1/tag-rules/draft/publish")).status).toBe(404);
    // The next draft takes a new number.
    const next = await mk.call("PUT", "/v1/tag-rules/draft", before.published.definition);
    expect(next.body.version).toBe(saved.body.version + 1);
    const audit = await client(t.app, tenant.tokens.admin).get("/v1/audit?entityType=tag_rule_set");
    const entry = audit.body.items.find((a: { action: string }) => a.action === "tag_rules.discard");
    expect(entry).toMatchObject({ entityId: String(saved.body.version), before: { status: "draft" }, after: { status: "discarded" } });
    expect((await mk.call("DELETE", "/v1/tag-rules/draft")).status).toBe(200);
  });
});
