/**
 * The services behind the console's admin pages: the audit log filtered by who acted, the queue
 * dashboard (a tenant sees and retries only its own failed jobs), the sandbox link and its
 * simulations through the fake WeCom's real encrypted callbacks, and the callback inbox with what
 * each callback became.
 */
import { serve, type ServerType } from "@hono/node-server";
import { Worker } from "bullmq";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { bootstrap, type Runtime } from "../../src/bootstrap";
import { connectSandbox } from "../../src/cli/sandbox";
import { loadConfig } from "../../src/config/env";
import { startWorkers, type RunningWorker } from "../../src/jobs/workers";
import { createRedis } from "../../src/queue/connection";
import type { Ctx } from "../../src/services/context";
import { queueDashboard, retryQueueJob } from "../../src/services/queues/dashboard";
import { attachSandbox, detachSandbox, sandboxLinkOf } from "../../src/services/sandbox/link";
import { sandboxOptions, sandboxStatus, simulateContactAdded, simulateGroupJoin, simulateMessage } from "../../src/services/sandbox/simulate";
import { listWecomCallbacks } from "../../src/services/wecom/callbacks-list";
import { startFakeWecom, type RunningFakeWecom } from "../../src/wecom/fake/index";
import { client, createTestTenant, staffCtx, type StaffKey, type TestTenant } from "../helpers/factories";
import { createTestRuntime, type TestRuntime } from "../helpers/runtime";
import { waitFor } from "../helpers/wait";
import { testWecomApp } from "../helpers/wecom";

let t: TestRuntime;
let A: TestTenant;
let B: TestTenant;

beforeAll(async () => {
  t = await createTestRuntime();
  A = await createTestTenant(t.rt.deps);
  B = await createTestTenant(t.rt.deps);
});
afterAll(async () => {
  await t?.close();
});

const ctxOf = (tenant: TestTenant, who: StaffKey): Ctx => staffCtx(t.rt.deps, tenant, who);

describe("audit log by actor", () => {
  it("filters by the staff member who acted, or by system actors; a malformed actor is refused", async () => {
    const admin = client(t.app, A.tokens.admin);
    const made = await admin.post("/v1/staff", { name: "审计员", email: `audit-${A.slug}@example.com`, role: "reviewer" });
    expect(made.status).toBe(201);
    await client(t.app, A.tokens.manager).call("PUT", "/v1/lead-settings", { sla: { onBreach: "pool" } });

    const mine = await admin.get(`/v1/audit?actorStaffId=${A.staff.admin.id}`);
    expect(mine.status).toBe(200);
    expect(mine.body.items.length).toBeGreaterThan(0);
    expect(mine.body.items.every((r: { actorStaffId: string }) => r.actorStaffId === A.staff.admin.id)).toBe(true);
    expect(mine.body.items.map((r: { action: string; entityId: string }) => `${r.action}/${r.entityId}`)).toContain(`staff.create/${made.body.id}`);

    const manager = await admin.get(`/v1/audit?actorStaffId=${A.staff.manager.id}&action=lead.settings`);
    expect(manager.body.items).toHaveLength(1);

    // The test tenant's staff were created by a system actor.
    const system = await admin.get("/v1/audit?actorKind=system&action=staff.create");
    expect(system.body.items.length).toBe(6);
    expect(system.body.items.every((r: { actorKind: string; actorStaffId: string | null }) => r.actorKind === "system" && r.actorStaffId === null)).toBe(true);

    const bad = await admin.get("/v1/audit?actorStaffId=nobody");
    expect(bad.status).toBe(422);
    expect(bad.body.errors.map((e: { field: string }) => e.field)).toContain("actorStaffId");
  });
});

describe("queue dashboard", () => {
  it("counts every queue, lists and retries only the tenant's own failed jobs, audited", async () => {
    const queue = t.rt.deps.producer.queue("maintenance");
    const mineJob = await queue.add("tagging-nightly", { tenantId: A.id, day: "2026-01-01" }, { attempts: 1 });
    const theirs = await queue.add("tagging-nightly", { tenantId: B.id, day: "2026-01-01" }, { attempts: 1 });
    // Nobody else works this runtime's maintenance queue: this worker makes both fail for real.
    const conn = createRedis(t.rt.redisUrl, "worker");
    const w = new Worker("maintenance", async () => Promise.reject(new Error("rules table unreachable")), { connection: conn, prefix: t.rt.config.QUEUE_PREFIX });
    await waitFor(async () => (await queue.getFailedCount()) === 2, { what: "two failed jobs" });
    await w.close();
    await conn.quit();

    const d = await queueDashboard({ ctx: ctxOf(A, "admin") });
    expect(d.queues.map((q) => q.queue).sort()).toEqual(["delivery", "events", "leads", "maintenance", "wecom"]);
    expect(d.queues.find((q) => q.queue === "maintenance")!.counts.failed).toBe(2);
    expect(d.failed.map((j) => j.id)).toEqual([mineJob.id]);
    expect(d.failed[0]).toMatchObject({ queue: "maintenance", name: "tagging-nightly", failedReason: "rules table unreachable", attemptsMade: 1, attempts: 1 });
    expect(d.events).toMatchObject({ pending: expect.any(Number), processedLastHour: expect.any(Number) });

    // Another tenant's job is not there for A; a consultant may not look at all.
    await expect(retryQueueJob({ ctx: ctxOf(A, "admin"), input: { queue: "maintenance", jobId: theirs.id } })).rejects.toMatchObject({ code: "NOT_FOUND" });
    await expect(queueDashboard({ ctx: ctxOf(A, "consultant") })).rejects.toMatchObject({ code: "FORBIDDEN" });
    await expect(retryQueueJob({ ctx: ctxOf(A, "admin"), input: { queue: "nope", jobId: "1" } })).rejects.toMatchObject({ code: "VALIDATION_FAILED" });

    const retried = await retryQueueJob({ ctx: ctxOf(A, "admin"), input: { queue: "maintenance", jobId: mineJob.id } });
    expect(retried.id).toBe(mineJob.id);
    expect(await (await queue.getJob(mineJob.id!))!.getState()).toBe("waiting");
    expect(await (await queue.getJob(theirs.id!))!.getState()).toBe("failed");
    await expect(retryQueueJob({ ctx: ctxOf(A, "admin"), input: { queue: "maintenance", jobId: mineJob.id } })).rejects.toMatchObject({ code: "VALIDATION_FAILED" });
    const audit = await client(t.app, A.tokens.admin).get("/v1/audit?action=queue.retry");
    expect(audit.body.items).toHaveLength(1);
    expect(audit.body.items[0]).toMatchObject({ actorStaffId: A.staff.admin.id, entityType: "job", entityId: `maintenance/${mineJob.id}` });
    await queue.obliterate({ force: true });
  });
});

describe("sandbox", () => {
  const app = testWecomApp();
  let fake: RunningFakeWecom;
  let server: ServerType;
  let workers: RunningWorker[] = [];
  let workerRt: Runtime;

  beforeAll(async () => {
    fake = await startFakeWecom({ corpId: app.corpId, agentId: app.agentId, secret: app.secret, callbackToken: app.callbackToken, encodingAesKey: app.encodingAesKey, port: 0 });
    expect((await client(t.app, A.tokens.admin).call("PUT", "/v1/wecom/settings", app)).status).toBe(200);
    server = await new Promise<ServerType>((resolve) => {
      const s = serve({ fetch: t.app.fetch, port: 0, hostname: "127.0.0.1" }, () => resolve(s));
    });
    // The workers run as a separate worker process would: same database, Redis and queues, WECOM_API_BASE at the fake.
    workerRt = await bootstrap(loadConfig({ ...t.env, WECOM_API_BASE: fake.url }), { logger: t.rt.logger });
    workers = startWorkers(workerRt.deps, workerRt.redisUrl, ["events", "wecom"]);
  });
  afterAll(async () => {
    await Promise.all(workers.map((w) => w.close()));
    await workerRt?.close();
    await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
    await fake?.close();
    detachSandbox(t.rt.deps);
  });

  it("says why it cannot simulate: live mode, no fake in this process, a fake of another tenant", async () => {
    const live = { ...ctxOf(A, "admin"), deps: { ...t.rt.deps, config: { ...t.rt.deps.config, WECOM_MODE: "live" as const } } };
    expect(sandboxStatus({ ctx: live })).toEqual({ mode: "live" });
    expect(sandboxStatus({ ctx: ctxOf(A, "admin") })).toEqual({ mode: "detached" });
    await expect(simulateContactAdded({ ctx: ctxOf(A, "admin"), input: { staffId: A.staff.consultant.id } })).rejects.toMatchObject({ code: "PRECONDITION_FAILED" });
    attachSandbox(t.rt.deps, { url: fake.url, tenantId: B.id });
    expect(sandboxStatus({ ctx: ctxOf(A, "admin") })).toEqual({ mode: "other-tenant" });
    expect(() => sandboxStatus({ ctx: ctxOf(A, "manager") })).toThrow(/may not wecom manage/);
  });

  it("a simulated add goes through the encrypted callback path and becomes a contact; a message and a group join follow", async () => {
    const port = (server.address() as { port: number }).port;
    await connectSandbox(t.rt.deps, fake, { tenantId: A.id, slug: A.slug, callbackBase: `http://127.0.0.1:${port}` });
    expect(sandboxLinkOf(t.rt.deps)).toEqual({ url: fake.url, tenantId: A.id });
    const ctx = ctxOf(A, "admin");
    expect(sandboxStatus({ ctx })).toEqual({ mode: "ready", url: fake.url });

    // Refused inputs name their field.
    await expect(simulateContactAdded({ ctx, input: {} })).rejects.toMatchObject({ code: "VALIDATION_FAILED", issues: [expect.objectContaining({ field: "staffId" })] });
    await expect(simulateContactAdded({ ctx, input: { staffId: A.staff.consultant.id, state: "空格 不行" } })).rejects.toMatchObject({ issues: [expect.objectContaining({ field: "state" })] });
    const noWecom = await client(t.app, A.tokens.admin).post("/v1/staff", { name: "无企微", email: `nowecom-${A.slug}@example.com`, role: "consultant" });
    await expect(simulateContactAdded({ ctx, input: { staffId: noWecom.body.id } })).rejects.toMatchObject({ issues: [expect.objectContaining({ field: "staffId", message: "has no WeCom userid" })] });

    // A consultant added to Siyu after the sandbox started is added to the fake first.
    const late = await client(t.app, A.tokens.admin).post("/v1/staff", { name: "新顾问", email: `late-${A.slug}@example.com`, role: "consultant", wecomUserId: `late-${A.slug}` });
    expect(fake.state.findStaff(`late-${A.slug}`)).toBeUndefined();
    const r = await simulateContactAdded({ ctx, input: { staffId: late.body.id, name: "周小姐", state: "poster_a" } });
    expect(r.delivery).toMatchObject({ delivered: true, attempts: 1 });
    expect(fake.state.findStaff(`late-${A.slug}`)).toBeDefined();

    const added = await waitFor(async () => {
      const page = await listWecomCallbacks({ ctx, input: {} });
      const cb = page.items.find((c) => c.externalUserIds.includes(r.externalUserId) && c.changeType === "add_external_contact");
      return cb?.processedAt && cb.events.length ? cb : null;
    }, { what: "the add to be applied", timeoutMs: 20_000 });
    expect(added).toMatchObject({ kind: "external_contact", userId: `late-${A.slug}`, state: "poster_a", deliveries: 1, lastError: null });
    expect(added.contacts).toEqual([expect.objectContaining({ name: "周小姐", externalUserId: r.externalUserId })]);
    expect(added.events).toEqual([expect.objectContaining({ type: "contact_added", contactName: "周小姐", contactId: added.contacts[0]!.id })]);
    const contact = await client(t.app, A.tokens.admin).get(`/v1/contacts/${added.contacts[0]!.id}`);
    expect(contact.body).toMatchObject({ source: "wecom", sourceState: "poster_a", ownerStaffId: late.body.id });

    // The options offer the contact, and the fake's group once joined.
    expect((await sandboxOptions({ ctx })).contacts.map((c) => c.externalUserId)).toContain(r.externalUserId);
    const msg = await simulateMessage({ ctx, input: { externalUserId: r.externalUserId, text: "请问祛痘多少钱？" } });
    expect(msg.delivery).toBeNull();
    await expect(simulateMessage({ ctx, input: { externalUserId: "wmUnknown", text: "hi" } })).rejects.toMatchObject({ issues: [expect.objectContaining({ field: "externalUserId" })] });
    const timeline = await client(t.app, A.tokens.admin).get(`/v1/contacts/${added.contacts[0]!.id}/timeline`);
    expect(JSON.stringify(timeline.body)).toContain("请问祛痘多少钱？");

    await expect(simulateGroupJoin({ ctx, input: { externalUserId: r.externalUserId } })).rejects.toMatchObject({ issues: [expect.objectContaining({ field: "ownerStaffId" })] });
    const join = await simulateGroupJoin({ ctx, input: { externalUserId: r.externalUserId, ownerStaffId: A.staff.consultant.id, groupName: "祛痘交流群" } });
    expect(join.delivery?.delivered).toBe(true);
    expect(join.chatId).toMatch(/^wr/);
    await expect(simulateGroupJoin({ ctx, input: { externalUserId: r.externalUserId, chatId: "wrNoSuchGroup" } })).rejects.toMatchObject({ code: "PRECONDITION_FAILED" });
    const joined = await waitFor(async () => {
      const page = await listWecomCallbacks({ ctx, input: {} });
      const cb = page.items.find((c) => c.chatId === join.chatId && c.detail === "add_member");
      return cb?.events.length ? cb : null;
    }, { what: "the join to be applied", timeoutMs: 20_000 });
    expect(joined.events).toEqual([expect.objectContaining({ type: "group_joined", contactName: "周小姐" })]);
    expect(joined.userId).toBeNull();

    // Newest first, in pages; another tenant sees none of it.
    const first = await listWecomCallbacks({ ctx, input: { limit: 1 } });
    expect(first.items[0]!.id).toBe(joined.id);
    const second = await listWecomCallbacks({ ctx, input: { limit: 1, cursor: first.nextCursor } });
    expect(second.items[0]!.changeType).toBe("create");
    await expect(listWecomCallbacks({ ctx, input: { cursor: "garbage" } })).rejects.toMatchObject({ code: "VALIDATION_FAILED" });
    expect((await listWecomCallbacks({ ctx: ctxOf(B, "admin"), input: {} })).items).toEqual([]);
  });
});
