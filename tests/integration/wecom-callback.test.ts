import { and, eq, sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { contacts, events, wecomCallbacks } from "../../src/db/schema/index";
import { startWorkers, type RunningWorker } from "../../src/jobs/workers";
import { client, createTestTenant, type TestTenant } from "../helpers/factories";
import { createTestRuntime, type TestRuntime } from "../helpers/runtime";
import { waitFor } from "../helpers/wait";
import { chatEventXml, contactEventXml, signedCallback, testWecomApp, urlVerification, type TestWecomApp } from "../helpers/wecom";

let t: TestRuntime;
let tenant: TestTenant;
let app: TestWecomApp;
let workers: RunningWorker[] = [];

beforeAll(async () => {
  t = await createTestRuntime();
  tenant = await createTestTenant(t.rt.deps);
  app = testWecomApp();
  const put = await client(t.app, tenant.tokens.admin).call("PUT", "/v1/wecom/settings", app);
  expect(put.status).toBe(200);
  workers = startWorkers(t.rt.deps, t.rt.redisUrl, ["events", "wecom"]);
});
afterAll(async () => {
  await Promise.all(workers.map((w) => w.close()));
  await t?.close();
});

/** The query with msg_signature's first hex digit changed (never to itself). */
const badSignature = (query: string) => query.replace(/msg_signature=(\w)/, (_m, d: string) => `msg_signature=${d === "0" ? "1" : "0"}`);
const post = (path: string, body: string, headers: Record<string, string> = {}) => t.app.request(path, { method: "POST", body, headers: { "content-type": "text/xml", ...headers } });
const stored = () => t.rt.deps.db.select().from(wecomCallbacks).where(eq(wecomCallbacks.tenantId, tenant.id));

describe("WeCom settings", () => {
  it("never returns the secrets and stores them sealed", async () => {
    const res = await client(t.app, tenant.tokens.admin).get("/v1/wecom/settings");
    expect(res.body).toMatchObject({ corpId: app.corpId, agentId: app.agentId, secretSet: true, callbackUrl: expect.stringMatching(new RegExp(`/wecom/callback/${tenant.slug}$`)) });
    const text = JSON.stringify(res.body);
    for (const secret of [app.secret, app.callbackToken, app.encodingAesKey]) expect(text).not.toContain(secret);
    const raw = await t.rt.deps.db.execute(sql`select * from wecom_settings`);
    const dump = JSON.stringify(raw);
    for (const secret of [app.secret, app.callbackToken, app.encodingAesKey]) expect(dump).not.toContain(secret);
  });

  it("requires every secret the first time and names the missing ones", async () => {
    const other = await createTestTenant(t.rt.deps);
    const res = await client(t.app, other.tokens.admin).call("PUT", "/v1/wecom/settings", { corpId: app.corpId, agentId: 1 });
    expect(res.status).toBe(422);
    expect(res.body.errors.map((e: { field: string }) => e.field).sort()).toEqual(["callbackToken", "encodingAesKey", "secret"]);
  });
});

describe("GET /wecom/callback/:tenant (URL verification)", () => {
  it("answers the exact decrypted plaintext, even when echostr has '+' sent raw", async () => {
    for (let i = 0; i < 20; i++) {
      const echo = String(Math.floor(Math.random() * 1e18));
      const v = urlVerification(app, echo);
      const res = await t.app.request(`/wecom/callback/${tenant.slug}?${v.query}`);
      expect(res.status).toBe(200);
      expect(await res.text()).toBe(echo);
      if (v.encrypt.includes("+")) {
        // The same request with '+' left unencoded in the query, as some proxies forward it.
        const rawQuery = v.query.replace(/echostr=[^&]*/, `echostr=${v.encrypt.replace(/\//g, "%2F").replace(/=/g, "%3D")}`);
        const again = await t.app.request(`/wecom/callback/${tenant.slug}?${rawQuery}`);
        expect(await again.text()).toBe(echo);
      }
    }
  });

  it("refuses a bad signature and an unknown tenant", async () => {
    const v = urlVerification(app, "123");
    const bad = await t.app.request(`/wecom/callback/${tenant.slug}?${badSignature(v.query)}`);
    expect(bad.status).toBe(401);
    const unknown = await t.app.request(`/wecom/callback/no-such-clinic?${v.query}`);
    expect(unknown.status).toBe(404);
  });
});

describe("POST /wecom/callback/:tenant", () => {
  it("refuses bad signature, stale timestamp, wrong corp, tampered ciphertext, malformed XML and oversized bodies, storing nothing", async () => {
    const xml = contactEventXml(app.corpId, "del_follow_user", { userId: "consultant-x", externalUserId: "wmRefused" });
    const before = (await stored()).length;
    const good = signedCallback(app, xml);
    const cases: [string, Response][] = [
      ["bad signature", await post(`/wecom/callback/${tenant.slug}?${badSignature(good.query)}`, good.body)],
      ["stale timestamp", await (async () => { const s = signedCallback(app, xml, { timestamp: Math.floor(Date.now() / 1000) - 3600 }); return post(`/wecom/callback/${tenant.slug}?${s.query}`, s.body); })()],
      ["wrong corp", await (async () => { const s = signedCallback(app, xml, { corpId: "wwffffffffffffffff" }); return post(`/wecom/callback/${tenant.slug}?${s.query}`, s.body); })()],
      ["tampered", await (async () => { const s = signedCallback(app, xml, { tamper: true }); return post(`/wecom/callback/${tenant.slug}?${s.query}`, s.body); })()],
      ["malformed envelope", await post(`/wecom/callback/${tenant.slug}?${good.query}`, "<xml><Encrypt>")],
      ["malformed event", await (async () => { const s = signedCallback(app, "<xml><MsgType>event</MsgType"); return post(`/wecom/callback/${tenant.slug}?${s.query}`, s.body); })()],
      ["entity expansion", await post(`/wecom/callback/${tenant.slug}?${good.query}`, `<!DOCTYPE x [<!ENTITY a "aaaa">]><xml><Encrypt>&a;</Encrypt></xml>`)],
      ["oversized", await post(`/wecom/callback/${tenant.slug}?${good.query}`, `<xml><Encrypt>${"A".repeat(70_000)}</Encrypt></xml>`)],
      ["missing params", await post(`/wecom/callback/${tenant.slug}`, good.body)],
    ];
    const statuses = Object.fromEntries(cases.map(([k, r]) => [k, r.status]));
    expect(statuses).toEqual({
      "bad signature": 401,
      "stale timestamp": 401,
      "wrong corp": 403,
      tampered: 400,
      "malformed envelope": 400,
      "malformed event": 400,
      "entity expansion": 400,
      oversized: 413,
      "missing params": 400,
    });
    for (const [, r] of cases) expect(r.headers.get("content-type")).toContain("application/problem+json");
    expect((await stored()).length).toBe(before);
  });

  it("stores a retried callback once, counts the deliveries and applies it once (del_follow_user = churn)", async () => {
    const ext = `wmChurn${Date.now()}`;
    const xml = contactEventXml(app.corpId, "del_follow_user", { userId: `consultant-${tenant.slug}`, externalUserId: ext });
    // WeCom retries with the same plaintext and a fresh ciphertext.
    for (let i = 0; i < 3; i++) {
      const s = signedCallback(app, xml);
      const res = await post(`/wecom/callback/${tenant.slug}?${s.query}`, s.body);
      expect(res.status).toBe(200);
      expect(await res.text()).toBe("");
    }
    const rows = (await stored()).filter((r) => r.plaintext.includes(ext));
    expect(rows).toHaveLength(1);
    expect(rows[0]!.deliveries).toBe(3);
    const ev = await waitFor(async () => {
      const [c] = await t.rt.deps.db.select().from(contacts).where(and(eq(contacts.tenantId, tenant.id), eq(contacts.externalUserId, ext)));
      if (!c?.deletedAt) return null;
      return t.rt.deps.db.select().from(events).where(eq(events.contactId, c.id));
    }, { what: "churn applied" });
    expect(ev).toHaveLength(1);
    expect(ev[0]).toMatchObject({ type: "contact_deleted", source: "wecom", payload: { by: "contact", staffUserId: `consultant-${tenant.slug}` } });
    await waitFor(async () => (await stored()).find((r) => r.id === rows[0]!.id)?.processedAt, { what: "callback marked processed" });
  });

  it("turns customers joining and leaving a group into group events, in any delivery order", async () => {
    const a = `wmGroupA${Date.now()}`;
    const b = `woGroupB${Date.now()}`;
    const now = Math.floor(Date.now() / 1000);
    const leave = chatEventXml(app.corpId, { chatId: "wrClinicGroup01", changeType: "update", updateDetail: "del_member", quitScene: 0, members: [a], createTime: now + 5, curMemVer: "v2" });
    const join = chatEventXml(app.corpId, { chatId: "wrClinicGroup01", changeType: "update", updateDetail: "add_member", joinScene: 3, members: [a, b, "staffUser"], createTime: now, curMemVer: "v1" });
    for (const xml of [leave, join]) {
      const s = signedCallback(app, xml);
      expect((await post(`/wecom/callback/${tenant.slug}?${s.query}`, s.body)).status).toBe(200);
    }
    const rows = await waitFor(async () => {
      const r = await t.rt.deps.db.select({ type: events.type, payload: events.payload, ext: contacts.externalUserId, at: events.occurredAt }).from(events).innerJoin(contacts, eq(contacts.id, events.contactId)).where(and(eq(events.tenantId, tenant.id), eq(events.source, "wecom")));
      const mine = r.filter((x) => x.ext === a || x.ext === b);
      return mine.length === 3 ? mine : null;
    }, { what: "group events" });
    const summary = rows.map((r) => `${r.ext === a ? "a" : "b"}:${r.type}`).sort();
    expect(summary).toEqual(["a:group_joined", "a:group_left", "b:group_joined"]);
    // Timeline order follows WeCom's CreateTime, not delivery order.
    const aRows = rows.filter((r) => r.ext === a).sort((x, y) => x.at.getTime() - y.at.getTime());
    expect(aRows.map((r) => r.type)).toEqual(["group_joined", "group_left"]);
    expect(rows.find((r) => r.type === "group_joined")!.payload).toMatchObject({ chatId: "wrClinicGroup01", joinScene: 3 });
  });
});
