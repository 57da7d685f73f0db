import { serve, type ServerType } from "@hono/node-server";
import { and, eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { contactFollows, contacts, contactTags, events, leadAssignments, leads, tagGroups, tags, wecomCallbacks } from "../../src/db/schema/index";
import { referralState } from "../../src/domain/contacts/referral";
import { startWorkers, type RunningWorker } from "../../src/jobs/workers";
import { startFakeWecom, type RunningFakeWecom } from "../../src/wecom/fake/index";
import { client, createTestTenant, type TestTenant } from "../helpers/factories";
import { createTestRuntime, type TestRuntime } from "../helpers/runtime";
import { waitFor } from "../helpers/wait";
import { testWecomApp } from "../helpers/wecom";

/** WeCom end to end: the fake sends real encrypted callbacks over HTTP; Siyu fetches details from the fake. */
let t: TestRuntime;
let fake: RunningFakeWecom;
let server: ServerType;
let tenant: TestTenant;
let workers: RunningWorker[] = [];
const app = testWecomApp();
/** The fake's clock runs ahead by this much, so tests can space events apart in WeCom's CreateTime. */
let skewMs = 0;
let consultant: string;
let consultant2: string;

beforeAll(async () => {
  fake = await startFakeWecom({ corpId: app.corpId, agentId: app.agentId, secret: app.secret, callbackToken: app.callbackToken, encodingAesKey: app.encodingAesKey, now: () => new Date(Date.now() + skewMs) });
  t = await createTestRuntime({}, { wecomBaseUrl: fake.url });
  tenant = await createTestTenant(t.rt.deps);
  expect((await client(t.app, tenant.tokens.admin).call("PUT", "/v1/wecom/settings", app)).status).toBe(200);
  server = await new Promise<ServerType>((resolve) => {
    const s = serve({ fetch: t.app.fetch, port: 0, hostname: "127.0.0.1" }, () => resolve(s));
  });
  const port = (server.address() as { port: number }).port;
  fake.control.setCallbackUrl(`http://127.0.0.1:${port}/wecom/callback/${tenant.slug}`);
  consultant = `consultant-${tenant.slug}`;
  consultant2 = `consultant2-${tenant.slug}`;
  fake.control.createStaff({ userid: consultant, name: "张顾问" });
  fake.control.createStaff({ userid: consultant2, name: "刘顾问" });
  workers = startWorkers(t.rt.deps, t.rt.redisUrl, ["events", "wecom"]);
});
afterAll(async () => {
  await Promise.all(workers.map((w) => w.close()));
  await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
  await fake?.close();
  await t?.close();
});

async function contactByExt(ext: string) {
  const [c] = await t.rt.deps.db.select().from(contacts).where(and(eq(contacts.tenantId, tenant.id), eq(contacts.externalUserId, ext)));
  return c;
}

async function eventsOf(ext: string) {
  const c = await contactByExt(ext);
  if (!c) return [];
  return t.rt.deps.db.select().from(events).where(eq(events.contactId, c.id));
}

describe("WeCom end to end through the fake", () => {
  it("passes WeCom's URL verification", async () => {
    const report = await fake.control.verifyUrl();
    expect(report.ok).toBe(true);
  });

  it("a patient scans a consultant's channel code: contact created with WeCom's details, owner and channel", async () => {
    const r = await fake.control.customerAddsStaff({ userid: consultant, name: "周小姐", gender: 2, state: "qr_store_a" });
    expect(r.delivery.delivered).toBe(true);
    const c = await waitFor(() => contactByExt(r.externalUserId), { what: "contact created" });
    expect(c).toMatchObject({ name: "周小姐", gender: "female", source: "wecom", sourceState: "qr_store_a", ownerStaffId: tenant.staff.consultant.id });
    expect(c.unionId).toBeTruthy();
    const evs = await waitFor(async () => {
      const e = await eventsOf(r.externalUserId);
      return e.length && e.every((x) => x.processedAt) ? e : null;
    }, { what: "contact_added processed" });
    expect(evs.map((e) => e.type)).toEqual(["contact_added"]);
    expect(evs[0]!.payload).toMatchObject({ state: "qr_store_a", staffUserId: consultant });
  });

  it("links a referred patient to the referrer through the referrer's personal code (转介绍)", async () => {
    const referrer = await client(t.app, tenant.tokens.admin).post("/v1/contacts", { name: "老客户王女士" });
    const r = await fake.control.customerAddsStaff({ userid: consultant, name: "王女士的朋友", state: referralState(referrer.body.id) });
    const c = await waitFor(() => contactByExt(r.externalUserId), { what: "referred contact" });
    expect(c).toMatchObject({ referrerContactId: referrer.body.id, source: "referral" });
  });

  it("keeps the existing owner when an owned patient adds a second consultant (no 撞单)", async () => {
    const first = await fake.control.customerAddsStaff({ userid: consultant2, name: "陈先生" });
    const owned = await waitFor(() => contactByExt(first.externalUserId), { what: "first add" });
    expect(owned.ownerStaffId).toBe(tenant.staff.consultant2.id);
    const second = await fake.control.customerAddsStaff({ userid: consultant, externalUserId: first.externalUserId });
    expect(second.delivery.delivered).toBe(true);
    await waitFor(async () => (await eventsOf(first.externalUserId)).filter((e) => e.type === "contact_added" && e.processedAt).length === 2, { what: "second add applied" });
    expect((await contactByExt(first.externalUserId))!.ownerStaffId).toBe(tenant.staff.consultant2.id);
    // Both consultants are told by WeCom app message: the owner that the patient added a colleague, the colleague whose patient it is.
    const told = await waitFor(async () => {
      const m = fake.state.appMessages.filter((x) => JSON.stringify(x.body).includes("撞单提醒") && JSON.stringify(x.body).includes("陈先生"));
      return m.length >= 2 ? m : null;
    }, { what: "owner-conflict app messages" });
    expect(told.flatMap((m) => m.delivered).sort()).toEqual([consultant, consultant2].sort());
    expect(JSON.stringify(told.find((m) => m.delivered.includes(consultant2))!.body)).toContain("客户仍归属于您");
    expect(JSON.stringify(told.find((m) => m.delivered.includes(consultant))!.body)).toContain("请勿重复跟进");
    expect(await t.rt.deps.db.select().from(leads).where(eq(leads.contactId, owned.id))).toHaveLength(0);
  });

  it("applies a redelivered callback once", async () => {
    const r = await fake.control.customerAddsStaff({ userid: consultant, name: "重复投递" });
    await fake.control.redeliver(r.plaintext);
    await fake.control.redeliver(r.plaintext);
    const rows = await waitFor(async () => {
      const all = await t.rt.deps.db.select().from(wecomCallbacks).where(eq(wecomCallbacks.tenantId, tenant.id));
      const mine = all.filter((x) => x.plaintext === r.plaintext);
      return mine.length === 1 && mine[0]!.deliveries === 3 && mine[0]!.processedAt ? mine : null;
    }, { what: "one stored callback with 3 deliveries" });
    expect(rows).toHaveLength(1);
    const evs = await eventsOf(r.externalUserId);
    expect(evs.filter((e) => e.type === "contact_added")).toHaveLength(1);
  });

  it("ends in the right state when callbacks arrive in reverse order", async () => {
    const added = await fake.control.customerAddsStaff({ userid: consultant, name: "乱序" });
    await waitFor(() => contactByExt(added.externalUserId), { what: "added" });
    fake.control.holdCallbacks();
    // The patient deletes the consultant, then adds them again a few seconds later; WeCom delivers newest first.
    skewMs += 3000;
    await fake.control.customerDeletesStaff({ userid: consultant, externalUserId: added.externalUserId });
    skewMs += 3000;
    await fake.control.customerAddsStaff({ userid: consultant, externalUserId: added.externalUserId });
    const reports = await fake.control.releaseCallbacks("reverse");
    expect(reports.every((r) => r.delivered)).toBe(true);
    await waitFor(async () => (await eventsOf(added.externalUserId)).filter((e) => e.processedAt).length === 3, { what: "all three applied" });
    expect((await contactByExt(added.externalUserId))!.deletedAt).toBeNull();

    // And the other way round: added, then deleted for good, delivered newest first.
    fake.control.holdCallbacks();
    skewMs += 3000;
    await fake.control.customerDeletesStaff({ userid: consultant, externalUserId: added.externalUserId });
    await fake.control.releaseCallbacks("reverse");
    await waitFor(async () => (await eventsOf(added.externalUserId)).filter((e) => e.processedAt).length === 4, { what: "deletion applied" });
    expect((await contactByExt(added.externalUserId))!.deletedAt).not.toBeNull();
  });

  it("a consultant removing a patient is recorded as deleted by staff", async () => {
    const r = await fake.control.customerAddsStaff({ userid: consultant, name: "被删除" });
    await waitFor(() => contactByExt(r.externalUserId), { what: "added" });
    await fake.control.staffDeletesCustomer({ userid: consultant, externalUserId: r.externalUserId });
    const evs = await waitFor(async () => {
      const e = await eventsOf(r.externalUserId);
      return e.find((x) => x.type === "contact_deleted" && x.processedAt) ? e : null;
    }, { what: "deletion" });
    expect(evs.find((e) => e.type === "contact_deleted")!.payload).toMatchObject({ by: "staff", staffUserId: consultant });
  });

  it("applies the other contact events: half add, edit (re-reads details), transfer_fail", async () => {
    const half = await fake.control.customerAddsStaff({ userid: consultant, name: "半添加", halfAdd: true });
    await waitFor(async () => (await eventsOf(half.externalUserId)).find((e) => e.processedAt), { what: "half add" });
    expect((await eventsOf(half.externalUserId))[0]!.payload).toMatchObject({ half: true });

    // The patient renamed themselves in WeChat; the consultant edits the remark; Siyu re-reads the details.
    fake.state.contacts.get(half.externalUserId)!.name = "改名后";
    await fake.control.staffEditsCustomer({ userid: consultant, externalUserId: half.externalUserId, remark: "VIP" });
    await waitFor(async () => (await contactByExt(half.externalUserId))?.name === "改名后", { what: "edit applied" });

    const wecom = t.rt.deps.wecomClient({ corpId: app.corpId, secret: app.secret, agentId: app.agentId });
    const started = await wecom.transferCustomer({ handoverUserId: consultant, takeoverUserId: consultant2, externalUserIds: [half.externalUserId] });
    expect(started.customer[0]!.errcode).toBe(0);
    await fake.control.customerRefusesTransfer({ externalUserId: half.externalUserId });
    const audit = await waitFor(async () => {
      const r = await client(t.app, tenant.tokens.admin).get(`/v1/audit?action=wecom.transfer_fail`);
      return r.body.items.length ? r.body.items : null;
    }, { what: "transfer_fail audited" });
    expect(audit[0]).toMatchObject({ entityId: half.externalUserId, after: { takeoverUserId: consultant2, reason: "customer_refused" } });
  });

  it("mirrors a tag group created in WeCom's admin console when WeCom reports it", async () => {
    await fake.control.adminCreatesTags({ groupName: "会员等级", tags: [{ name: "金卡" }, { name: "银卡" }] });
    const group = await waitFor(async () => {
      const r = await t.rt.deps.db.select().from(tagGroups).where(and(eq(tagGroups.tenantId, tenant.id), eq(tagGroups.name, "会员等级")));
      return r[0];
    }, { what: "tag group mirrored" });
    expect(group.key).toMatch(/^wecom_/);
    const local = await t.rt.deps.db.select({ id: tags.id, name: tags.name, wecomTagId: tags.wecomTagId }).from(tags).where(eq(tags.groupId, group.id));
    expect(local.map((x) => x.name).sort()).toEqual(["金卡", "银卡"]);

    // A consultant tags a patient 金卡 in the WeCom client (edit_external_contact): the local tag follows, and its removal too.
    const gold = local.find((x) => x.name === "金卡")!;
    const r = await fake.control.customerAddsStaff({ userid: consultant, name: "会员客户" });
    const c = await waitFor(() => contactByExt(r.externalUserId), { what: "member added" });
    const tagsOf = async () => (await t.rt.deps.db.select({ tagId: contactTags.tagId, source: contactTags.source }).from(contactTags).where(eq(contactTags.contactId, c.id)));
    await fake.control.staffEditsCustomer({ userid: consultant, externalUserId: r.externalUserId, addTags: [gold.wecomTagId!] });
    await waitFor(async () => (await tagsOf()).some((x) => x.tagId === gold.id), { what: "tag pulled" });
    expect((await tagsOf()).filter((x) => x.tagId === gold.id)).toEqual([{ tagId: gold.id, source: "wecom" }]);
    await fake.control.staffEditsCustomer({ userid: consultant, externalUserId: r.externalUserId, removeTags: [gold.wecomTagId!] });
    await waitFor(async () => !(await tagsOf()).some((x) => x.tagId === gold.id), { what: "tag removal pulled" });
  });

  it("creates a channel QR code in WeCom; patients who scan it carry the channel and are counted", async () => {
    const api = client(t.app, tenant.tokens.marketing);
    const ch = await api.post("/v1/wecom/channels", { name: "门店海报", staffIds: [tenant.staff.consultant.id, tenant.staff.consultant2.id] });
    expect(ch.status).toBe(201);
    expect(ch.body.qrCode).toMatch(/^https?:\/\//);
    expect(fake.state.contactWays.get(ch.body.configId)?.state).toBe(ch.body.state);
    const r = await fake.control.customerAddsStaff({ configId: ch.body.configId, name: "扫码客户" });
    const c = await waitFor(() => contactByExt(r.externalUserId), { what: "contact from channel" });
    expect(c.sourceState).toBe(ch.body.state);
    const list = await api.get("/v1/wecom/channels");
    expect(list.body.items.find((x: { id: string }) => x.id === ch.body.id).contacts).toBe(1);
    // The patient becomes a lead of the consultant they added, directly (not by the strategy chain).
    const [lead] = await t.rt.deps.db.select().from(leads).where(eq(leads.contactId, c.id));
    expect(lead).toMatchObject({ status: "open", source: "wecom_qr", sourceRef: `channel:${ch.body.id}`, activeOwnerStaffId: c.ownerStaffId });
    const [move] = await t.rt.deps.db.select().from(leadAssignments).where(eq(leadAssignments.leadId, lead!.id));
    expect(move).toMatchObject({ kind: "direct", toStaffId: c.ownerStaffId });
    const dup = await api.post("/v1/wecom/channels", { name: "重复", staffIds: [tenant.staff.consultant.id], state: ch.body.state });
    expect(dup.status).toBe(409);
  });

  it("greets patients from a channel with its welcome message only once the message is approved, and never an edited one", async () => {
    const mk = client(t.app, tenant.tokens.marketing);
    const post = await mk.post("/v1/posts", { kind: "welcome_message", body: "{{name}}您好，欢迎关注示例门诊部，有问题随时咨询。" });
    expect(post.status).toBe(201);
    const wrongKind = await mk.post("/v1/posts", { kind: "moments", body: "朋友圈文案" });
    expect((await mk.post("/v1/wecom/channels", { name: "错误欢迎语", staffIds: [tenant.staff.consultant.id], welcomePostId: wrongKind.body.id })).body.errors[0].field).toBe("welcomePostId");
    const ch = await mk.post("/v1/wecom/channels", { name: "欢迎语渠道", staffIds: [tenant.staff.consultant.id], welcomePostId: post.body.id });
    expect(ch.body.welcomePostId).toBe(post.body.id);
    const welcomed = (ext: string) => fake.state.welcomeMessages.filter((m) => m.externalUserId === ext);
    const processed = async (ext: string) => waitFor(async () => ((await eventsOf(ext)).some((e) => e.type === "contact_added") ? true : null), { what: "contact_added stored" });

    // A draft is never sent.
    const first = await fake.control.customerAddsStaff({ configId: ch.body.configId, name: "林女士" });
    await processed(first.externalUserId);
    expect(welcomed(first.externalUserId)).toEqual([]);

    // Approved: sent, filled with the patient's name.
    await mk.post(`/v1/posts/${post.body.id}/submit`);
    expect((await client(t.app, tenant.tokens.reviewer).post(`/v1/posts/${post.body.id}/reviews`, { decision: "approve", contentHash: post.body.contentHash })).body.status).toBe("approved");
    const second = await fake.control.customerAddsStaff({ configId: ch.body.configId, name: "郑女士" });
    await waitFor(async () => (welcomed(second.externalUserId).length ? true : null), { what: "welcome message sent" });
    expect(welcomed(second.externalUserId)[0]!.text).toEqual({ content: "郑女士您好，欢迎关注示例门诊部，有问题随时咨询。" });

    // Edited after approval: a draft again, so the next patient gets nothing and the refusal is logged.
    await mk.patch(`/v1/posts/${post.body.id}`, { body: "{{name}}您好，全城最低价等你来！" });
    const third = await fake.control.customerAddsStaff({ configId: ch.body.configId, name: "吴先生" });
    await processed(third.externalUserId);
    expect(welcomed(third.externalUserId)).toEqual([]);
    const audit = await client(t.app, tenant.tokens.admin).get(`/v1/audit?entityId=${post.body.id}`);
    expect(audit.body.items.map((a: { action: string }) => a.action)).toEqual(expect.arrayContaining(["post.send", "post.send.refused"]));
  });

  it("gives a patient a personal referral code; friends who scan it are linked to them (转介绍)", async () => {
    const api = client(t.app, tenant.tokens.consultant);
    const referrer = await api.post("/v1/contacts", { name: "推荐人" });
    const code = await api.post(`/v1/contacts/${referrer.body.id}/referral-code`);
    expect(code.status).toBe(200);
    expect(code.body).toMatchObject({ kind: "referral", contactId: referrer.body.id, staffUserIds: [consultant] });
    expect((await api.post(`/v1/contacts/${referrer.body.id}/referral-code`)).body.id).toBe(code.body.id);
    const friend = await fake.control.customerAddsStaff({ configId: code.body.configId, name: "被推荐的朋友" });
    const c = await waitFor(() => contactByExt(friend.externalUserId), { what: "referred friend" });
    expect(c).toMatchObject({ referrerContactId: referrer.body.id, source: "referral", ownerStaffId: tenant.staff.consultant.id });
  });

  it("a patient who deletes one of two consultants is still a contact; deleting the last one is churn", async () => {
    const r = await fake.control.customerAddsStaff({ userid: consultant, name: "两位顾问" });
    await fake.control.customerAddsStaff({ userid: consultant2, externalUserId: r.externalUserId });
    await waitFor(async () => (await eventsOf(r.externalUserId)).filter((e) => e.type === "contact_added" && e.processedAt).length === 2, { what: "both adds" });
    await fake.control.customerDeletesStaff({ userid: consultant2, externalUserId: r.externalUserId });
    await waitFor(async () => (await eventsOf(r.externalUserId)).find((e) => e.type === "contact_deleted" && e.processedAt), { what: "first deletion" });
    expect((await contactByExt(r.externalUserId))!.deletedAt).toBeNull();
    const follows = await t.rt.deps.db.select().from(contactFollows).where(eq(contactFollows.contactId, (await contactByExt(r.externalUserId))!.id));
    expect(follows.map((f) => `${f.userId}:${f.removedBy ?? "active"}`).sort()).toEqual([`${consultant2.toLowerCase()}:contact`, `${consultant.toLowerCase()}:active`].sort());
    skewMs += 2000;
    await fake.control.customerDeletesStaff({ userid: consultant, externalUserId: r.externalUserId });
    await waitFor(async () => (await eventsOf(r.externalUserId)).filter((e) => e.type === "contact_deleted" && e.processedAt).length === 2, { what: "second deletion" });
    expect((await contactByExt(r.externalUserId))!.deletedAt).not.toBeNull();
  });
});
