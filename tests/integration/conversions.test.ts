import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { serve, type ServerType } from "@hono/node-server";
import { and, eq, sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { auditLog, events, leads } from "../../src/db/schema/index";
import { startWorkers, type RunningWorker } from "../../src/jobs/workers";
import { client, createTestTenant, phone, type TestTenant } from "../helpers/factories";
import { ROOT, runSiyu } from "../helpers/cli";
import { createTestRuntime, type TestRuntime } from "../helpers/runtime";
import { waitFor } from "../helpers/wait";

let t: TestRuntime;
let workers: RunningWorker[] = [];
beforeAll(async () => {
  t = await createTestRuntime();
  workers = startWorkers(t.rt.deps, t.rt.redisUrl, ["events"]);
});
afterAll(async () => {
  await Promise.all(workers.map((w) => w.close()));
  await t?.close();
});

const hoursAgo = (h: number) => new Date(Date.now() - h * 3_600_000).toISOString();
/** The Shanghai date `days` ago as a spreadsheet writes it (YYYY-MM-DD). */
const localDay = (days: number) => new Intl.DateTimeFormat("en-CA", { timeZone: "Asia/Shanghai", year: "numeric", month: "2-digit", day: "2-digit" }).format(new Date(Date.now() - days * 86_400_000));

async function ownContact(tenant: TestTenant, name = "王女士") {
  const c = await client(t.app, tenant.tokens.consultant).post("/v1/contacts", { name, phone: phone() });
  expect(c.status).toBe(201);
  return { id: c.body.id as string, phone: (c.body.phone as string).replace("+86", "") };
}

async function processed(eventId: string) {
  return waitFor(async () => (await t.rt.deps.db.select().from(events).where(eq(events.id, eventId)))[0]?.processedAt, { what: `event ${eventId} processed` });
}

async function tagsIn(tenant: TestTenant, contactId: string, group: string): Promise<string[]> {
  const res = await client(t.app, tenant.tokens.admin).get(`/v1/contacts/${contactId}/tags`);
  return (res.body.tags as { group: string; name: string }[]).filter((x) => x.group === group).map((x) => x.name).sort();
}

describe("recording conversions through the API", () => {
  it("records visits for a consultant's own contact: an event crediting them, visit status advancing, stored once per key", async () => {
    const tenant = await createTestTenant(t.rt.deps);
    const me = client(t.app, tenant.tokens.consultant);
    const { id } = await ownContact(tenant);
    const first = await me.post("/v1/visits", { contactId: id, occurredAt: hoursAgo(48), item: "光子嫩肤" });
    expect(first.status, JSON.stringify(first.body)).toBe(201);
    expect(first.body).toMatchObject({ type: "visit", contactId: id, duplicate: false, data: { item: "光子嫩肤", staffId: tenant.staff.consultant.id } });
    const [ev] = await t.rt.deps.db.select().from(events).where(eq(events.id, first.body.eventId));
    expect(ev).toMatchObject({ type: "visit", contactId: id, source: "workspace" });
    await processed(first.body.eventId);
    expect(await tagsIn(tenant, id, "visit")).toEqual(["首诊"]);

    // The same body again (a client retry): the first record, nothing new.
    const again = await me.post("/v1/visits", { contactId: id, occurredAt: first.body.occurredAt, item: "光子嫩肤" });
    expect(again.status).toBe(200);
    expect(again.body).toMatchObject({ eventId: first.body.eventId, duplicate: true });
    const keyed = await me.post("/v1/visits", { contactId: id, occurredAt: hoursAgo(1), idempotencyKey: "his-visit-1" });
    expect(keyed.status).toBe(201);
    await processed(keyed.body.eventId);
    expect(await tagsIn(tenant, id, "visit")).toEqual(["复诊"]);
    expect((await me.post("/v1/visits", { contactId: id, idempotencyKey: "his-visit-1" })).body).toMatchObject({ eventId: keyed.body.eventId, duplicate: true });
    // A key used for another record is refused, naming it.
    const { id: other } = await ownContact(tenant, "李先生");
    const clash = await me.post("/v1/visits", { contactId: other, idempotencyKey: "his-visit-1" });
    expect(clash.status).toBe(409);
    expect(clash.body.errors[0].field).toBe("idempotencyKey");

    const visits = await t.rt.deps.db.select().from(events).where(and(eq(events.contactId, id), eq(events.type, "visit")));
    expect(visits).toHaveLength(2);
    const audits = await t.rt.deps.db.select().from(auditLog).where(and(eq(auditLog.tenantId, tenant.id), eq(auditLog.action, "conversion.visit")));
    expect(audits).toHaveLength(2);
    expect(audits.every((a) => a.actorStaffId === tenant.staff.consultant.id)).toBe(true);
    // The metric fact credits the consultant.
    const facts = await t.rt.deps.db.execute(sql`select staff_id from metric_facts where event_id = ${first.body.eventId}::uuid`);
    expect(JSON.stringify(facts)).toContain(tenant.staff.consultant.id);
  });

  it("keeps consultants to their own contacts and themselves; managers credit a consultant; staff and clinic must be the tenant's", async () => {
    const tenant = await createTestTenant(t.rt.deps);
    const other = await createTestTenant(t.rt.deps);
    const { id } = await ownContact(tenant);
    const body = { contactId: id, amount: 1000, items: ["水光针"] };
    expect((await client(t.app, tenant.tokens.consultant2).post("/v1/purchases", body)).status).toBe(404);
    expect((await client(t.app, tenant.tokens.reviewer).post("/v1/purchases", body)).status).toBe(403);
    const forOther = await client(t.app, tenant.tokens.consultant).post("/v1/purchases", { ...body, staffId: tenant.staff.consultant2.id });
    expect(forOther.status).toBe(403);
    const mgr = client(t.app, tenant.tokens.manager);
    const foreign = await mgr.post("/v1/purchases", { ...body, staffId: other.staff.consultant.id, clinicId: "0b7e7c1e-7a55-4a7c-9a55-1c1e7a554a7c" });
    expect(foreign.status).toBe(422);
    expect(foreign.body.errors.map((e: { field: string }) => e.field).sort()).toEqual(["clinicId", "staffId"]);
    const clinic = await client(t.app, tenant.tokens.admin).post("/v1/clinics", { name: "静安店", city: "上海" });
    const ok = await mgr.post("/v1/purchases", { ...body, staffId: tenant.staff.consultant.id, clinicId: clinic.body.id });
    expect(ok.status).toBe(201);
    expect(ok.body.data).toMatchObject({ amount: 1000, items: ["水光针"], staffId: tenant.staff.consultant.id, clinicId: clinic.body.id });
    expect((await client(t.app, other.tokens.admin).post("/v1/purchases", body)).status).toBe(404);
    // Problem+json naming the fields.
    const bad = await mgr.post("/v1/purchases", { contactId: id, amount: -1, items: "水光针" });
    expect(bad.status).toBe(422);
    expect(bad.headers.get("content-type")).toContain("application/problem+json");
    expect(bad.body.errors.map((e: { field: string }) => e.field).sort()).toEqual(["amount", "items"]);
    const future = await mgr.post("/v1/visits", { contactId: id, occurredAt: new Date(Date.now() + 3_600_000).toISOString() });
    expect(future.status).toBe(422);
    expect(future.body.errors[0].field).toBe("occurredAt");
    const noAt = await mgr.post("/v1/appointments", { contactId: id });
    expect(noAt.status).toBe(422);
    expect(noAt.body.errors[0].field).toBe("at");
    const appt = await client(t.app, tenant.tokens.consultant).post("/v1/appointments", { contactId: id, at: new Date(Date.now() + 2 * 86_400_000).toISOString(), item: "热玛吉" });
    expect(appt.status).toBe(201);
    expect(appt.body).toMatchObject({ type: "appointment_booked", data: { item: "热玛吉", staffId: tenant.staff.consultant.id } });
  });

  it("recomputes the spending tier after a refund, and checks refunds against their purchase", async () => {
    const tenant = await createTestTenant(t.rt.deps);
    const mgr = client(t.app, tenant.tokens.manager);
    const { id } = await ownContact(tenant);
    const { id: someoneElse } = await ownContact(tenant, "赵女士");
    const buy = await mgr.post("/v1/purchases", { contactId: id, amount: 25000, items: ["热玛吉", "水光针"], occurredAt: hoursAgo(5) });
    expect(buy.status).toBe(201);
    await processed(buy.body.eventId);
    expect(await tagsIn(tenant, id, "spending")).toEqual(["高消费"]);
    const tooMuch = await mgr.post("/v1/refunds", { contactId: id, amount: 25001, purchaseEventId: buy.body.eventId });
    expect(tooMuch.status).toBe(422);
    expect(tooMuch.body.errors[0].field).toBe("amount");
    const wrongContact = await mgr.post("/v1/refunds", { contactId: someoneElse, amount: 100, purchaseEventId: buy.body.eventId });
    expect(wrongContact.status).toBe(422);
    expect(wrongContact.body.errors[0].field).toBe("purchaseEventId");
    const refund = await mgr.post("/v1/refunds", { contactId: id, amount: 22000, items: ["热玛吉"], purchaseEventId: buy.body.eventId, reason: "未做项目退款" });
    expect(refund.status).toBe(201);
    await processed(refund.body.eventId);
    expect(await tagsIn(tenant, id, "spending")).toEqual(["低消费"]);
    // 3,000 left of the purchase.
    expect((await mgr.post("/v1/refunds", { contactId: id, amount: 3000.01, purchaseEventId: buy.body.eventId })).status).toBe(422);
    const restBody = { contactId: id, amount: 3000, purchaseEventId: buy.body.eventId, idempotencyKey: "pos-refund-2" };
    const rest = await mgr.post("/v1/refunds", restBody);
    expect(rest.status).toBe(201);
    // Retried after it used up the purchase: the first record, not a refusal.
    expect((await mgr.post("/v1/refunds", restBody)).body).toMatchObject({ eventId: rest.body.eventId, duplicate: true });
    await processed(rest.body.eventId);
    expect(await tagsIn(tenant, id, "spending")).toEqual([]);
  });

  it("turns a lost consultation's reason (from the lead settings) into a tag, and a converted one closes the open lead", async () => {
    const tenant = await createTestTenant(t.rt.deps);
    const me = client(t.app, tenant.tokens.consultant);
    const { id } = await ownContact(tenant);
    const unknown = await me.post("/v1/consultations", { contactId: id, outcome: "lost", lostReason: "天气不好" });
    expect(unknown.status).toBe(422);
    expect(unknown.body.errors[0].field).toBe("lostReason");
    expect(unknown.body.errors[0].message).toContain("价格敏感");
    const noAmount = await me.post("/v1/consultations", { contactId: id, outcome: "converted" });
    expect(noAmount.body.errors[0].field).toBe("amount");
    const lost = await me.post("/v1/consultations", { contactId: id, outcome: "lost", lostReason: "恐惧疼痛", mode: "online", occurredAt: hoursAgo(3) });
    expect(lost.status).toBe(201);
    expect(lost.body.data).toMatchObject({ outcome: "lost", lostReason: "恐惧疼痛", mode: "online", staffId: tenant.staff.consultant.id });
    await processed(lost.body.eventId);
    expect(await tagsIn(tenant, id, "lost_reason")).toEqual(["恐惧疼痛"]);
    const fact = await t.rt.deps.db.execute(sql`select mode, reason, outcome from metric_facts where event_id = ${lost.body.eventId}::uuid`);
    expect(JSON.stringify(fact)).toContain("online");

    // A tenant's own list of reasons counts.
    const settings = await client(t.app, tenant.tokens.manager).call("PUT", "/v1/lead-settings", { outcomes: { lostReasons: ["价格敏感", "想再比较"] } });
    expect(settings.status).toBe(200);
    expect((await me.post("/v1/consultations", { contactId: id, outcome: "lost", lostReason: "恐惧疼痛" })).status).toBe(422);

    const lead = await me.post("/v1/leads", { contactId: id, source: "api" });
    expect(lead.status).toBe(201);
    const won = await me.post("/v1/consultations", { contactId: id, outcome: "converted", amount: 6800, items: ["光子嫩肤"] });
    expect(won.status).toBe(201);
    expect(won.body.data.leadId).toBe(lead.body.id);
    const closed = await waitFor(async () => {
      const [l] = await t.rt.deps.db.select().from(leads).where(eq(leads.id, lead.body.id));
      return l?.status === "converted" ? l : null;
    }, { what: "the lead converted" });
    expect(closed.closedReason).toBe("converted");
    // Converted since: the lost reason is history.
    await processed(won.body.eventId);
    expect(await tagsIn(tenant, id, "lost_reason")).toEqual([]);
  });
});

describe("POST /v1/conversions/import", () => {
  it("imports good rows, reports each bad one by line and column, and adds nothing when the file comes again", async () => {
    const tenant = await createTestTenant(t.rt.deps);
    const admin = client(t.app, tenant.tokens.admin);
    await admin.post("/v1/clinics", { name: "静安店", city: "上海" });
    const a = await ownContact(tenant, "甲");
    const b = await ownContact(tenant, "乙");
    const csv = [
      "类型,手机号,时间,金额,项目,结果,未成交原因,门店,顾问,方式,备注",
      `到诊,${a.phone},${localDay(5)} 10:00,,光子嫩肤,,,静安店,consultant@${tenant.slug}.test,,`,
      `消费,${a.phone},${localDay(5)} 11:00,"6,800",光子嫩肤、水光针,,,静安店,,,`,
      `咨询,${b.phone},${localDay(4)} 15:00,,,未成交,担心效果,,,线上,考虑中`,
      `咨询,${b.phone},${localDay(4)} 16:00,,,未成交,天气不好,,,,`,
      `消费,13900000000,${localDay(4)} 16:00,100,,,,,,,`,
      `退款,${a.phone},${localDay(3)} 10:00,,,,,,,,`,
      `到诊,${a.phone},${localDay(3)} 10:00,,,,,不存在的店,,,`,
      `预约,${b.phone},,,,,,,,,`,
      `到诊,${b.phone},2099-01-01 10:00,,,,,,,,`,
    ].join("\n");
    const res = await admin.call("POST", "/v1/conversions/import", csv, { "content-type": "text/csv" });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body).toMatchObject({ total: 9, imported: 3, duplicates: 0, failed: 6, byType: { visit: 1, purchase: 1, consultation_outcome: 1 } });
    expect(res.body.errors.map((e: { row: number; field: string }) => [e.row, e.field])).toEqual([
      [5, "lostReason"],
      [6, "contact"],
      [7, "amount"],
      [8, "clinic"],
      [9, "at"],
      [10, "occurredAt"],
    ]);
    const evs = await t.rt.deps.db.select().from(events).where(and(eq(events.tenantId, tenant.id), eq(events.source, "import")));
    expect(evs.map((e) => e.type).sort()).toEqual(["consultation_outcome", "purchase", "visit"]);
    const visit = evs.find((e) => e.type === "visit")!;
    expect(visit.occurredAt.toISOString()).toBe(new Date(`${localDay(5)}T10:00:00+08:00`).toISOString());
    expect(visit.payload).toMatchObject({ item: "光子嫩肤", staffId: tenant.staff.consultant.id, clinicId: expect.any(String) });
    expect(evs.find((e) => e.type === "purchase")!.payload).toMatchObject({ amount: 6800, items: ["光子嫩肤", "水光针"] });
    expect(evs.find((e) => e.type === "consultation_outcome")!.payload).toMatchObject({ outcome: "lost", lostReason: "担心效果", mode: "online", note: "考虑中" });
    await Promise.all(evs.map((e) => processed(e.id)));
    expect(await tagsIn(tenant, b.id, "lost_reason")).toEqual(["担心效果"]);

    const again = await admin.call("POST", "/v1/conversions/import", csv, { "content-type": "text/csv" });
    expect(again.body).toMatchObject({ total: 9, imported: 0, duplicates: 3, failed: 6 });
    expect(await t.rt.deps.db.select().from(events).where(and(eq(events.tenantId, tenant.id), eq(events.source, "import")))).toHaveLength(3);
  });

  it("reads GBK (as Excel saves it) with Chinese headers and 单号 keys; refuses a file without type or contact columns; only importers may", async () => {
    const tenant = await createTestTenant(t.rt.deps);
    const c = await client(t.app, tenant.tokens.consultant).post("/v1/contacts", { name: "丙", phone: "13700001111" });
    expect(c.status).toBe(201);
    const body = readFileSync(path.join(ROOT, "tests/fixtures/conversions-gbk.csv"));
    const res = await t.app.request("/v1/conversions/import", { method: "POST", body, headers: { authorization: `Bearer ${tenant.tokens.marketing}`, "content-type": "text/csv" } });
    const report = await res.json();
    expect(res.status, JSON.stringify(report)).toBe(200);
    expect(report).toMatchObject({ imported: 1, failed: 0, ignoredColumns: ["会员等级"] });
    const [ev] = await t.rt.deps.db.select().from(events).where(and(eq(events.tenantId, tenant.id), eq(events.idempotencyKey, "import-purchase-POS-0001")));
    expect(ev).toMatchObject({ type: "purchase", contactId: c.body.id, payload: { amount: 1200, items: ["皮秒", "洁牙"] } });
    // The same 单号 again, in English headers this time: already there.
    const english = `type,contact,occurredAt,amount,items,idempotency key\npurchase,13700001111,2026-02-01 12:00,1200,皮秒,POS-0001\n`;
    const again = await client(t.app, tenant.tokens.manager).call("POST", "/v1/conversions/import", english, { "content-type": "text/csv" });
    expect(again.body).toMatchObject({ imported: 0, duplicates: 1 });
    const noType = await client(t.app, tenant.tokens.admin).call("POST", "/v1/conversions/import", "contact,amount\n13700001111,1\n", { "content-type": "text/csv" });
    expect(noType.status).toBe(422);
    expect(noType.body.errors[0].field).toBe("csv");
    const consultant = await client(t.app, tenant.tokens.consultant).call("POST", "/v1/conversions/import", english, { "content-type": "text/csv" });
    expect(consultant.status).toBe(403);
  });
});

describe("siyu import-conversions (CLI against a real HTTP server)", () => {
  let server: ServerType;
  let base: string;
  let dir: string;
  beforeAll(async () => {
    server = await new Promise<ServerType>((resolve) => {
      const s = serve({ fetch: t.app.fetch, port: 0, hostname: "127.0.0.1" }, () => resolve(s));
    });
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    dir = mkdtempSync(path.join(tmpdir(), "siyu-conv-"));
  });
  afterAll(async () => {
    await new Promise<void>((resolve) => {
      server?.close(() => resolve());
      (server as unknown as { closeAllConnections?: () => void })?.closeAllConnections?.();
    });
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("imports in chunks with file line numbers, writes FILE.errors.csv, and adds nothing the second time", async () => {
    const tenant = await createTestTenant(t.rt.deps);
    const a = await ownContact(tenant, "丁");
    const file = path.join(dir, "visits.csv");
    writeFileSync(
      file,
      ["type,phone,occurredAt,amount,items", `visit,${a.phone},2026-02-01 10:00,,`, `purchase,${a.phone},2026-02-01 11:00,500,洁牙`, `purchase,${a.phone},2026-02-01 12:00,,洁牙`, `refund,${a.phone},2026-02-02 12:00,100,`, `到诊,${a.phone},2026-02-03 09:00,,`].join("\n") + "\n",
    );
    const r = await runSiyu(["import-conversions", file, "--url", base, "--token", tenant.tokens.admin, "--batch", "2"], t.env);
    expect(r.code, r.stderr).toBe(1);
    expect(r.stdout).toMatch(/^5 rows in [\d.]+ s: 4 imported \(.*\), 0 already there, 1 failed$/m);
    expect(r.stdout).toContain("line 4: amount");
    expect(readFileSync(`${file}.errors.csv`, "utf8")).toContain("4,amount,");
    const again = await runSiyu(["import-conversions", file, "--url", base, "--token", tenant.tokens.admin], t.env);
    expect(again.stdout).toMatch(/^5 rows in [\d.]+ s: 0 imported, 4 already there, 1 failed$/m);
  });
});
