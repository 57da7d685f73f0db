import { serve, type ServerType } from "@hono/node-server";
import { and, eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { auditLog, contacts, leadAssignments, leads, staff, wecomTransfers } from "../../src/db/schema/index";
import { startWorkers, type RunningWorker } from "../../src/jobs/workers";
import { runWecomTransfers } from "../../src/services/leads/transfers";
import { startFakeWecom, type RunningFakeWecom } from "../../src/wecom/fake/index";
import { client, createTestTenant, phone, type TestTenant } from "../helpers/factories";
import { createTestRuntime, type TestRuntime } from "../helpers/runtime";
import { waitFor } from "../helpers/wait";
import { testWecomApp } from "../helpers/wecom";

/** 离职继承 end to end: Siyu hands the book over and WeCom (the fake, over HTTP) transfers the customers. */
let t: TestRuntime;
let fake: RunningFakeWecom;
let server: ServerType;
let workers: RunningWorker[] = [];
const app = testWecomApp();
/** The fake's clock runs ahead by this much (WeCom completes a transfer 24 h after it starts). */
let skewMs = 0;

beforeAll(async () => {
  fake = await startFakeWecom({ corpId: app.corpId, agentId: app.agentId, secret: app.secret, callbackToken: app.callbackToken, encodingAesKey: app.encodingAesKey, now: () => new Date(Date.now() + skewMs) });
  t = await createTestRuntime({}, { wecomBaseUrl: fake.url });
  server = await new Promise<ServerType>((resolve) => {
    const s = serve({ fetch: t.app.fetch, port: 0, hostname: "127.0.0.1" }, () => resolve(s));
  });
  workers = startWorkers(t.rt.deps, t.rt.redisUrl, ["events", "wecom"]);
});
afterAll(async () => {
  await Promise.all(workers.map((w) => w.close()));
  await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
  await fake?.close();
  await t?.close();
});

/** A tenant on the fake corp whose consultants are `consultant` and `consultant2`, with WeCom set up. */
async function wecomTenant(): Promise<TestTenant> {
  skewMs = 0; // callbacks dated a day ahead would be refused by the timestamp check
  const tenant = await createTestTenant(t.rt.deps);
  expect((await client(t.app, tenant.tokens.admin).call("PUT", "/v1/wecom/settings", app)).status).toBe(200);
  fake.control.setCallbackUrl(`http://127.0.0.1:${(server.address() as { port: number }).port}/wecom/callback/${tenant.slug}`);
  for (const key of ["consultant", "consultant2", "manager"]) fake.control.createStaff({ userid: `${key}-${tenant.slug}`, name: key });
  return tenant;
}

/** Patients who add the consultant in WeCom (contacts with external ids, owned by them). */
async function patientsOf(tenant: TestTenant, n: number): Promise<{ id: string; externalUserId: string }[]> {
  const out: { id: string; externalUserId: string }[] = [];
  for (let i = 0; i < n; i++) {
    const r = await fake.control.customerAddsStaff({ userid: `consultant-${tenant.slug}`, name: `患者${i}` });
    const c = await waitFor(async () => (await t.rt.deps.db.select().from(contacts).where(and(eq(contacts.tenantId, tenant.id), eq(contacts.externalUserId, r.externalUserId))))[0], { what: "contact from WeCom" });
    out.push({ id: c.id, externalUserId: r.externalUserId });
  }
  return out;
}

describe("离职继承: a consultant leaves", () => {
  it("hands every contact and open lead to the remaining consultants, transfers the customers in WeCom, and records it all", async () => {
    const tenant = await wecomTenant();
    const patients = await patientsOf(tenant, 3);
    const mgr = client(t.app, tenant.tokens.manager);
    // Two of them are open leads (with an SOP task each); a third contact has no lead; one contact has no WeCom id.
    for (const p of patients.slice(0, 2)) expect((await client(t.app, tenant.tokens.consultant).post("/v1/leads", { contactId: p.id, source: "api" })).status).toBe(201);
    const offline = await client(t.app, tenant.tokens.consultant).post("/v1/contacts", { name: "线下客户", phone: phone() });
    expect(offline.status).toBe(201);
    fake.control.resignStaff({ userid: `consultant-${tenant.slug}` });

    const bad = await mgr.post(`/v1/staff/${tenant.staff.consultant.id}/offboard`, { reason: "离职", toStaffId: tenant.staff.consultant.id });
    expect(bad.status).toBe(422);
    expect(bad.body.errors[0].field).toBe("toStaffId");
    expect((await mgr.post(`/v1/staff/${tenant.staff.consultant.id}/offboard`, {})).body.errors[0].field).toBe("reason");

    const res = await mgr.post(`/v1/staff/${tenant.staff.consultant.id}/offboard`, { reason: "离职交接" });
    expect(res.status).toBe(200);
    // consultant2 is the only active consultant left: the chain gives them everything.
    expect(res.body).toMatchObject({ contacts: 4, leads: 2, toPool: 0, bySuccessor: { [tenant.staff.consultant2.id]: 4 }, wecomQueued: 3 });
    const [leaver] = await t.rt.deps.db.select().from(staff).where(eq(staff.id, tenant.staff.consultant.id));
    expect(leaver!.active).toBe(false);
    const owners = await t.rt.deps.db.select({ owner: contacts.ownerStaffId }).from(contacts).where(eq(contacts.tenantId, tenant.id));
    expect(owners.every((o) => o.owner === tenant.staff.consultant2.id)).toBe(true);
    const moved = await t.rt.deps.db.select().from(leads).where(eq(leads.tenantId, tenant.id));
    expect(moved.every((l) => l.activeOwnerStaffId === tenant.staff.consultant2.id)).toBe(true);
    const history = await t.rt.deps.db.select().from(leadAssignments).where(and(eq(leadAssignments.tenantId, tenant.id), eq(leadAssignments.kind, "resign")));
    expect(history).toHaveLength(2);
    expect(history.every((h) => h.reason === "离职交接" && h.fromStaffId === tenant.staff.consultant.id && h.actorStaffId === tenant.staff.manager.id)).toBe(true);
    const audits = await t.rt.deps.db.select().from(auditLog).where(and(eq(auditLog.tenantId, tenant.id), eq(auditLog.action, "contact.reassign")));
    expect(audits).toHaveLength(4);
    expect(audits.every((a) => a.actorStaffId === tenant.staff.manager.id)).toBe(true);

    // The transfers job sends them to WeCom's resigned transfer; WeCom completes them after 24 h.
    await waitFor(async () => {
      const rows = await t.rt.deps.db.select().from(wecomTransfers).where(eq(wecomTransfers.tenantId, tenant.id));
      return rows.length === 3 && rows.every((r) => r.status === "requested") ? rows : null;
    }, { what: "transfers requested from WeCom" });
    expect(fake.state.transfers.filter((x) => x.kind === "resigned" && patients.some((p) => p.externalUserId === x.externalUserId))).toHaveLength(3);
    skewMs += 25 * 3600_000;
    // (The worker's own run may be the one that sees them complete: either way they end done.)
    await runWecomTransfers(t.rt.deps, tenant.id);
    const list = await mgr.get(`/v1/staff/${tenant.staff.consultant.id}/transfers`);
    expect(list.status).toBe(200);
    expect(list.body.counts).toEqual({ done: 3 });
    // The successor was told.
    await waitFor(async () => fake.state.appMessages.some((m) => m.delivered.includes(`consultant2-${tenant.slug}`) && JSON.stringify(m.body).includes("4 位客户")), { what: "the successor's app message" });
  });

  it("records WeCom's refusal per customer: a consultant who has not left in WeCom cannot be resigned-transferred", async () => {
    const tenant = await wecomTenant();
    await patientsOf(tenant, 2);
    const res = await client(t.app, tenant.tokens.admin).post(`/v1/staff/${tenant.staff.consultant.id}/offboard`, { reason: "调岗", toStaffId: tenant.staff.consultant2.id });
    expect(res.status).toBe(200);
    const rows = await waitFor(async () => {
      const all = await t.rt.deps.db.select().from(wecomTransfers).where(eq(wecomTransfers.tenantId, tenant.id));
      return all.length === 2 && all.every((x) => x.status === "failed") ? all : null;
    }, { what: "transfers refused by WeCom" });
    expect(rows.every((x) => x.errcode === 40097 && x.detail!.includes("has not left in WeCom"))).toBe(true);
    // Siyu's side still moved: the successor owns the contacts.
    const owned = await t.rt.deps.db.select().from(contacts).where(and(eq(contacts.tenantId, tenant.id), eq(contacts.ownerStaffId, tenant.staff.consultant2.id)));
    expect(owned).toHaveLength(2);
  });

  it("sends leads to the pool when no consultant is left to take them", async () => {
    const tenant = await createTestTenant(t.rt.deps);
    const c = await client(t.app, tenant.tokens.consultant).post("/v1/contacts", { name: "无人接手", phone: phone() });
    expect((await client(t.app, tenant.tokens.consultant).post("/v1/leads", { contactId: c.body.id, source: "api" })).status).toBe(201);
    await t.rt.deps.db.update(staff).set({ active: false }).where(eq(staff.id, tenant.staff.consultant2.id));
    const res = await client(t.app, tenant.tokens.admin).post(`/v1/staff/${tenant.staff.consultant.id}/offboard`, { reason: "离职", wecom: "none" });
    expect(res.body).toMatchObject({ contacts: 1, leads: 1, toPool: 1, wecomQueued: 0 });
    const pool = await client(t.app, tenant.tokens.manager).get("/v1/leads?view=pool");
    expect(pool.body.items.map((l: { contactId: string }) => l.contactId)).toEqual([c.body.id]);
  });
});
