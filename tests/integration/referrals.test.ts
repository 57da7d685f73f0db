import { serve, type ServerType } from "@hono/node-server";
import { and, eq, inArray } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { contacts, events } from "../../src/db/schema/index";
import { referralState } from "../../src/domain/contacts/referral";
import { startWorkers, type RunningWorker } from "../../src/jobs/workers";
import { startFakeWecom, type RunningFakeWecom } from "../../src/wecom/fake/index";
import { client, createTestTenant, phone, type TestTenant } from "../helpers/factories";
import { createTestRuntime, type TestRuntime } from "../helpers/runtime";
import { waitFor } from "../helpers/wait";
import { testWecomApp } from "../helpers/wecom";

let t: TestRuntime;
let fake: RunningFakeWecom;
let server: ServerType;
let workers: RunningWorker[] = [];
const wecom = testWecomApp();

beforeAll(async () => {
  fake = await startFakeWecom({ corpId: wecom.corpId, agentId: wecom.agentId, secret: wecom.secret, callbackToken: wecom.callbackToken, encodingAesKey: wecom.encodingAesKey });
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

async function contact(tenant: TestTenant, body: Record<string, unknown>, token = tenant.tokens.consultant) {
  const c = await client(t.app, token).post("/v1/contacts", { phone: phone(), ...body });
  expect(c.status, JSON.stringify(c.body)).toBe(201);
  return c.body as { id: string; phone: string };
}

const referralEvents = (referrerId: string, type: string) =>
  t.rt.deps.db.select().from(events).where(and(eq(events.contactId, referrerId), eq(events.type, type)));

async function allProcessed(contactIds: string[]) {
  await waitFor(async () => {
    const evs = await t.rt.deps.db.select({ p: events.processedAt }).from(events).where(inArray(events.contactId, contactIds));
    return evs.length > 0 && evs.every((e) => e.p);
  }, { what: "events processed" });
}

async function referralTag(tenant: TestTenant, contactId: string): Promise<string[]> {
  const res = await client(t.app, tenant.tokens.admin).get(`/v1/contacts/${contactId}/tags`);
  return (res.body.tags as { group: string; name: string }[]).filter((x) => x.group === "referral").map((x) => x.name);
}

describe("referrals (转介绍)", () => {
  it("credits the referrer once per referred contact: 推荐人 at the first friend, 推荐达人 when a friend converts", async () => {
    const tenant = await createTestTenant(t.rt.deps);
    const referrer = await contact(tenant, { name: "老客户王女士" });
    const friend = await contact(tenant, { name: "王女士的朋友", referrerContactId: referrer.id });
    const [joined, ...moreJoined] = await referralEvents(referrer.id, "referral_joined");
    expect(moreJoined).toHaveLength(0);
    expect(joined).toMatchObject({ idempotencyKey: `referral-joined-${friend.id}`, payload: { referredContactId: friend.id } });
    await allProcessed([referrer.id]);
    expect(await referralTag(tenant, referrer.id)).toEqual(["推荐人"]);

    // Linking the same friend again (a patch) credits nothing more.
    expect((await client(t.app, tenant.tokens.consultant).patch(`/v1/contacts/${friend.id}`, { name: "小李" })).status).toBe(200);
    expect(await referralEvents(referrer.id, "referral_joined")).toHaveLength(1);

    const mgr = client(t.app, tenant.tokens.manager);
    const buy = await mgr.post("/v1/purchases", { contactId: friend.id, amount: 3000, items: ["水光针"] });
    const buyAgain = await mgr.post("/v1/purchases", { contactId: friend.id, amount: 5000, items: ["热玛吉"] });
    expect([buy.status, buyAgain.status]).toEqual([201, 201]);
    await allProcessed([friend.id]);
    const converted = await waitFor(async () => {
      const e = await referralEvents(referrer.id, "referral_converted");
      return e.length ? e : null;
    }, { what: "referral_converted on the referrer" });
    expect(converted).toHaveLength(1);
    expect(converted[0]).toMatchObject({ idempotencyKey: `referral-converted-${friend.id}`, payload: { referredContactId: friend.id, amount: 3000 } });
    await allProcessed([referrer.id]);
    expect(await referralTag(tenant, referrer.id)).toEqual(["推荐达人"]);
    // Later conversions of the same friend credit nothing more.
    await mgr.post("/v1/consultations", { contactId: friend.id, outcome: "converted", amount: 100 });
    await allProcessed([friend.id]);
    expect(await referralEvents(referrer.id, "referral_converted")).toHaveLength(1);
  });

  it("lists whom a contact referred with counts (referred, converted, revenue) and phones masked per role", async () => {
    const tenant = await createTestTenant(t.rt.deps);
    const referrer = await contact(tenant, { name: "推荐人" });
    const a = await contact(tenant, { name: "朋友甲", referrerContactId: referrer.id });
    const b = await contact(tenant, { name: "朋友乙", referrerContactId: referrer.id }, tenant.tokens.consultant2);
    // Set afterwards: linked through a patch.
    const c = await contact(tenant, { name: "朋友丙" });
    expect((await client(t.app, tenant.tokens.admin).patch(`/v1/contacts/${c.id}`, { referrerContactId: referrer.id })).status).toBe(200);
    expect(await referralEvents(referrer.id, "referral_joined")).toHaveLength(3);
    const mgr = client(t.app, tenant.tokens.manager);
    const buy = await mgr.post("/v1/purchases", { contactId: a.id, amount: 8000, items: ["热玛吉"] });
    await mgr.post("/v1/refunds", { contactId: a.id, amount: 1000, purchaseEventId: buy.body.eventId });
    await mgr.post("/v1/consultations", { contactId: b.id, outcome: "converted", amount: 2000, items: ["皮秒"] });

    const mine = await client(t.app, tenant.tokens.consultant).get(`/v1/contacts/${referrer.id}/referrals`);
    expect(mine.status).toBe(200);
    expect(mine.body.counts).toEqual({ referred: 3, converted: 2, revenue: 9000 });
    const byName = Object.fromEntries(mine.body.items.map((i: { name: string }) => [i.name, i]));
    expect(byName["朋友甲"]).toMatchObject({ revenue: 7000, phoneMasked: false, phone: a.phone, convertedAt: expect.any(String) });
    // Another consultant's client: listed, phone masked.
    expect(byName["朋友乙"]).toMatchObject({ revenue: 2000, phoneMasked: true, ownerStaffId: tenant.staff.consultant2.id });
    expect(byName["朋友乙"].phone).toMatch(/^\d{3}\*{4}\d{4}$/);
    expect(byName["朋友丙"]).toMatchObject({ revenue: 0, convertedAt: null });
    const marketing = await client(t.app, tenant.tokens.marketing).get(`/v1/contacts/${referrer.id}/referrals`);
    expect(marketing.body.items.every((i: { phoneMasked: boolean }) => i.phoneMasked)).toBe(true);
    expect((await client(t.app, tenant.tokens.consultant2).get(`/v1/contacts/${referrer.id}/referrals`)).status).toBe(404);
    const other = await createTestTenant(t.rt.deps);
    expect((await client(t.app, other.tokens.admin).get(`/v1/contacts/${referrer.id}/referrals`)).status).toBe(404);
  });

  it("credits the referrer for contacts imported with a 推荐人 column", async () => {
    const tenant = await createTestTenant(t.rt.deps);
    const referrer = await contact(tenant, { name: "老客户" });
    const p = phone();
    const csv = `姓名,手机号,推荐人\n新朋友,${p},${referrer.phone.replace("+86", "")}\n查无此人,${phone()},13000000000\n`;
    const res = await client(t.app, tenant.tokens.admin).call("POST", "/v1/contacts/import", csv, { "content-type": "text/csv" });
    expect(res.body).toMatchObject({ created: 1, failed: 1 });
    expect(res.body.errors).toEqual([expect.objectContaining({ row: 3, field: "referrer" })]);
    const [friend] = await t.rt.deps.db.select().from(contacts).where(and(eq(contacts.tenantId, tenant.id), eq(contacts.name, "新朋友")));
    expect(friend!.referrerContactId).toBe(referrer.id);
    expect(await referralEvents(referrer.id, "referral_joined")).toEqual([expect.objectContaining({ payload: { referredContactId: friend!.id } })]);
  });

  it("credits the referrer when a friend adds the consultant through the referrer's WeCom code", async () => {
    const tenant = await createTestTenant(t.rt.deps);
    expect((await client(t.app, tenant.tokens.admin).call("PUT", "/v1/wecom/settings", wecom)).status).toBe(200);
    fake.control.setCallbackUrl(`http://127.0.0.1:${(server.address() as { port: number }).port}/wecom/callback/${tenant.slug}`);
    const userid = `consultant-${tenant.slug}`;
    fake.control.createStaff({ userid, name: "张顾问" });
    const referrer = await contact(tenant, { name: "老客户王女士" });
    const r = await fake.control.customerAddsStaff({ userid, name: "王女士的同事", state: referralState(referrer.id) });
    expect(r.delivery.delivered).toBe(true);
    const friend = await waitFor(async () => (await t.rt.deps.db.select().from(contacts).where(and(eq(contacts.tenantId, tenant.id), eq(contacts.externalUserId, r.externalUserId))))[0], { what: "referred contact" });
    expect(friend.referrerContactId).toBe(referrer.id);
    const joined = await waitFor(async () => {
      const e = await referralEvents(referrer.id, "referral_joined");
      return e.length ? e : null;
    }, { what: "referral_joined" });
    expect(joined).toEqual([expect.objectContaining({ idempotencyKey: `referral-joined-${friend.id}`, source: "system" })]);
    await allProcessed([referrer.id]);
    expect(await referralTag(tenant, referrer.id)).toEqual(["推荐人"]);
  });
});
