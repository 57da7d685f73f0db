import { and, eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { bootstrap, type Runtime } from "../../src/bootstrap";
import { loadConfig } from "../../src/config/env";
import { auditLog, events } from "../../src/db/schema/index";
import { systemCtx } from "../../src/services/context";
import { assertSendable, createPost, SendRefused } from "../../src/services/posts/posts";
import { createApp, type App } from "../../src/http/app";
import { startWorkers, type RunningWorker } from "../../src/jobs/workers";
import { createLogger } from "../../src/logger";
import { httpDeps } from "../../src/server";
import { client, createTestTenant, phone, type TestTenant } from "../helpers/factories";
import { TEST_PII_KEY } from "../helpers/runtime";
import { waitFor } from "../helpers/wait";

/** The default product setup: embedded PGlite (no DATABASE_URL), migrations, the main requests. */
let rt: Runtime;
let app: App;
let tenant: TestTenant;
let workers: RunningWorker[] = [];

beforeAll(async () => {
  const config = loadConfig({ NODE_ENV: "test", DATA_DIR: "memory://", REDIS_URL: process.env.REDIS_URL, QUEUE_PREFIX: `pglite-${process.pid}-${Date.now()}`, PII_KEY: TEST_PII_KEY, LOG_LEVEL: "silent" });
  rt = await bootstrap(config, { migrate: true, logger: createLogger({ level: "silent" }) });
  app = createApp(httpDeps(rt));
  tenant = await createTestTenant(rt.deps);
  workers = startWorkers(rt.deps, rt.redisUrl, ["events"]);
});
afterAll(async () => {
  await Promise.all(workers.map((w) => w.close()));
  await rt?.close();
});

describe("embedded PGlite", () => {
  it("runs on PGlite", () => {
    expect(rt.database.kind).toBe("pglite");
  });

  it("serves the main requests", async () => {
    const admin = client(app, tenant.tokens.admin);
    expect((await admin.get("/readyz")).status).toBe(200);
    const p = phone();
    const c = await admin.post("/v1/contacts", { name: "吴女士", phone: p, ownerStaffId: tenant.staff.consultant.id });
    expect(c.status).toBe(201);
    expect((await admin.post("/v1/contacts", { phone: p })).status).toBe(409);
    expect((await admin.patch(`/v1/contacts/${c.body.id}`, { name: "吴小姐" })).body.name).toBe("吴小姐");
    const list = await client(app, tenant.tokens.marketing).get("/v1/contacts?q=吴");
    expect(list.body.items).toHaveLength(1);
    expect(list.body.items[0].phone).toMatch(/^\d{3}\*{4}\d{4}$/);
    expect((await client(app, tenant.tokens.consultant2).get(`/v1/contacts/${c.body.id}`)).status).toBe(404);
    const imp = await client(app, tenant.tokens.admin).call("POST", "/v1/contacts/import", `姓名,手机号\n郑先生,${phone()}\n坏号码,123\n`, { "content-type": "text/csv" });
    expect(imp.body).toMatchObject({ created: 1, failed: 1 });
    const ev = await admin.post("/v1/events", {
      events: [
        { type: "purchase", contactId: c.body.id, occurredAt: new Date().toISOString(), idempotencyKey: "pg-1", data: { amount: 2999, items: ["水光针"] } },
        { type: "purchase", contactId: c.body.id, occurredAt: new Date().toISOString(), idempotencyKey: "pg-1", data: { amount: 2999, items: ["水光针"] } },
      ],
    });
    expect(ev.body).toMatchObject({ accepted: 1, duplicates: 1 });
    await waitFor(async () => (await rt.deps.db.select().from(events).where(eq(events.id, ev.body.ids[0])))[0]?.processedAt, { what: "processed on PGlite" });
    const tagged = await admin.get(`/v1/contacts/${c.body.id}/tags`);
    expect(tagged.body.tags).toEqual([expect.objectContaining({ group: "spending", name: "低消费", reason: expect.objectContaining({ ruleId: "spending-low", eventId: ev.body.ids[0] }) })]);
    expect((await admin.get("/v1/audit?entityType=contact")).body.items.length).toBeGreaterThanOrEqual(3);
    // The set-based evaluator runs on PGlite too (normalize(), temp tables): a backfill agrees and writes nothing new.
    const { runSetBased } = await import("../../src/services/tagging/set-based");
    const { systemCtx } = await import("../../src/services/context");
    const pass = await runSetBased({ ctx: systemCtx(rt.deps, tenant.id, "test"), mode: "backfill" });
    expect(pass.removed).toBe(0);
    expect((await admin.get(`/v1/contacts/${c.body.id}/tags`)).body.tags.map((x: { name: string }) => x.name)).toContain("低消费");
  });

  it("refuses a send at the gate without freezing on its one connection, and records the refusal", async () => {
    const ctx = systemCtx(rt.deps, tenant.id, "test");
    const post = await createPost({ ctx: { ...ctx, actor: { kind: "staff", staffId: tenant.staff.marketing.id, role: "marketing", name: "m", via: "token" } }, input: { kind: "mass_message", body: "还没审核的文案" } });
    await expect(rt.deps.db.transaction((tx) => assertSendable(tx, { ...ctx, tx }, post.id, { title: null, body: post.body }))).rejects.toBeInstanceOf(SendRefused);
    await waitFor(async () => (await rt.deps.db.select().from(auditLog).where(and(eq(auditLog.entityId, post.id), eq(auditLog.action, "post.send.refused")))).length === 1, { what: "the refusal recorded" });
  });
});
