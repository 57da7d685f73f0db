import { and, eq, inArray } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { auditLog, contactTags, tagGroups, tags } from "../../src/db/schema/index";
import { client, createTestTenant, phone, type ApiResponse, type TestTenant } from "../helpers/factories";
import { createTestRuntime, type TestRuntime } from "../helpers/runtime";

let t: TestRuntime;
let tenant: TestTenant;
let other: TestTenant;

beforeAll(async () => {
  t = await createTestRuntime();
  [tenant, other] = await Promise.all([createTestTenant(t.rt.deps), createTestTenant(t.rt.deps)]);
});
afterAll(async () => t?.close());

const as = (who: keyof TestTenant["tokens"], tn: TestTenant = tenant) => client(t.app, tn.tokens[who]);

/** Field names of a problem+json body. */
const fields = (res: ApiResponse): string[] => ((res.body?.errors ?? []) as { field: string }[]).map((e) => e.field);

/** "13912345678" -> "+86 139-1234-5678" */
const dashed = (p: string) => `+86 ${p.slice(0, 3)}-${p.slice(3, 7)}-${p.slice(7)}`;
/** ASCII digits -> full-width digits, as Chinese IMEs type them. */
const fullWidth = (p: string) => p.replace(/\d/g, (d) => String.fromCharCode(0xff10 + Number(d)));

describe("POST /v1/contacts", () => {
  it("creates a contact (201) and reads it back with the phone in clear for admins", async () => {
    const p = phone();
    const created = await as("admin").post("/v1/contacts", { name: "林小姐", phone: p, source: "wecom", gender: "female" });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ name: "林小姐", phone: `+86${p}`, phoneMasked: false, source: "wecom", gender: "female", ownerStaffId: null });
    const got = await as("admin").get(`/v1/contacts/${created.body.id}`);
    expect(got.status).toBe(200);
    expect(got.body.name).toBe("林小姐");
    // Marketing has no PII rights: masked.
    const masked = await as("marketing").get(`/v1/contacts/${created.body.id}`);
    expect(masked.status).toBe(200);
    expect(masked.body.phone).toBe(`${p.slice(0, 3)}****${p.slice(7)}`);
    expect(masked.body.phoneMasked).toBe(true);
  });

  it("makes the consultant who creates a contact its owner", async () => {
    const res = await as("consultant").post("/v1/contacts", { name: "顾客甲", phone: phone() });
    expect(res.status).toBe(201);
    expect(res.body.ownerStaffId).toBe(tenant.staff.consultant.id);
    // Saying so explicitly is fine too.
    const self = await as("consultant").post("/v1/contacts", { name: "顾客乙", ownerStaffId: tenant.staff.consultant.id });
    expect(self.status).toBe(201);
    expect(self.body.ownerStaffId).toBe(tenant.staff.consultant.id);
  });

  it("refuses a consultant handing a new contact to another consultant (403)", async () => {
    const res = await as("consultant").post("/v1/contacts", { name: "顾客丙", ownerStaffId: tenant.staff.consultant2.id });
    expect(res.status).toBe(403);
    expect(res.headers.get("content-type")).toMatch(/^application\/problem\+json/);
    expect(res.body.code).toBe("FORBIDDEN");
  });

  it("refuses reviewers (403)", async () => {
    const res = await as("reviewer").post("/v1/contacts", { name: "x" });
    expect(res.status).toBe(403);
  });

  it("answers 409 naming phone for a duplicate phone in any format", async () => {
    const p = phone();
    expect((await as("admin").post("/v1/contacts", { name: "原始", phone: p })).status).toBe(201);
    for (const variant of [p, dashed(p), fullWidth(p), `0086${p}`, ` ${p} `]) {
      const res = await as("admin").post("/v1/contacts", { name: "重复", phone: variant });
      expect(res.status, variant).toBe(409);
      expect(res.body.code).toBe("CONFLICT");
      expect(fields(res)).toEqual(["phone"]);
      // The detail never echoes the phone.
      expect(JSON.stringify(res.body)).not.toContain(p);
    }
  });

  it("answers 409 naming externalUserId for a duplicate external id", async () => {
    expect((await as("admin").post("/v1/contacts", { externalUserId: "wmDUPE001" })).status).toBe(201);
    const res = await as("admin").post("/v1/contacts", { externalUserId: "wmDUPE001", name: "另一个" });
    expect(res.status).toBe(409);
    expect(fields(res)).toEqual(["externalUserId"]);
  });

  it("answers 422 naming phone for an invalid phone", async () => {
    for (const bad of ["12345", "1391234567x", "+86 123", "call me"]) {
      const res = await as("admin").post("/v1/contacts", { name: "坏号码", phone: bad });
      expect(res.status, bad).toBe(422);
      expect(res.body.code).toBe("VALIDATION_FAILED");
      expect(fields(res)).toContain("phone");
    }
  });

  it("answers 422 when none of name, phone or externalUserId is given", async () => {
    const res = await as("admin").post("/v1/contacts", { source: "wecom", attributes: { a: 1 } });
    expect(res.status).toBe(422);
    expect(fields(res)).toEqual(["name"]);
    expect(res.body.detail).toMatch(/name, phone or externalUserId/);
  });

  it("answers 422 naming ownerStaffId for a reviewer, another tenant's staff or an unknown id", async () => {
    for (const ownerStaffId of [tenant.staff.reviewer.id, tenant.staff.marketing.id, other.staff.consultant.id, "00000000-0000-4000-8000-000000000000"]) {
      const res = await as("admin").post("/v1/contacts", { name: "无主", ownerStaffId });
      expect(res.status, ownerStaffId).toBe(422);
      expect(fields(res)).toEqual(["ownerStaffId"]);
    }
    const notUuid = await as("admin").post("/v1/contacts", { name: "无主", ownerStaffId: "bob" });
    expect(notUuid.status).toBe(422);
    expect(fields(notUuid)).toEqual(["ownerStaffId"]);
  });

  it("keeps tenants apart: the other tenant may reuse the phone and cannot see the contact", async () => {
    const p = phone();
    const mine = await as("admin").post("/v1/contacts", { name: "本店", phone: p });
    expect(mine.status).toBe(201);
    const theirs = await as("admin", other).post("/v1/contacts", { name: "他店", phone: p });
    expect(theirs.status).toBe(201);
    expect((await as("admin", other).get(`/v1/contacts/${mine.body.id}`)).status).toBe(404);
  });
});

describe("GET/PATCH /v1/contacts/:id", () => {
  it("answers 422 naming id for a path id that is not a uuid", async () => {
    for (const res of [await as("admin").get("/v1/contacts/not-a-uuid"), await as("admin").patch("/v1/contacts/123", { name: "x" }), await as("admin").get("/v1/contacts/xyz/tags")]) {
      expect(res.status).toBe(422);
      expect(fields(res)).toEqual(["id"]);
    }
  });

  it("answers 404 for an unknown id, and for another consultant's contact", async () => {
    expect((await as("admin").get("/v1/contacts/00000000-0000-4000-8000-000000000000")).status).toBe(404);
    const c = await as("consultant").post("/v1/contacts", { name: "我的" });
    expect((await as("consultant2").get(`/v1/contacts/${c.body.id}`)).status).toBe(404);
    expect((await as("consultant2").patch(`/v1/contacts/${c.body.id}`, { name: "抢" })).status).toBe(404);
  });

  it("updates only the fields sent, clears with null and merges attributes", async () => {
    const p = phone();
    const created = await as("admin").post("/v1/contacts", {
      name: "陈女士",
      phone: p,
      gender: "female",
      sourceState: "qr-spring",
      externalUserId: "wmPATCH001",
      attributes: { 会员等级: "金卡", city: "上海" },
    });
    expect(created.status).toBe(201);
    const id = created.body.id as string;

    const renamed = await as("admin").patch(`/v1/contacts/${id}`, { name: "陈小姐" });
    expect(renamed.status).toBe(200);
    expect(renamed.body).toMatchObject({ name: "陈小姐", phone: `+86${p}`, gender: "female", sourceState: "qr-spring", externalUserId: "wmPATCH001" });

    const cleared = await as("admin").patch(`/v1/contacts/${id}`, { gender: null, sourceState: null, attributes: { city: "杭州", 过敏: "无" } });
    expect(cleared.status).toBe(200);
    expect(cleared.body).toMatchObject({ name: "陈小姐", gender: null, sourceState: null, phone: `+86${p}` });
    expect(cleared.body.attributes).toEqual({ 会员等级: "金卡", city: "杭州", 过敏: "无" });

    const owned = await as("admin").patch(`/v1/contacts/${id}`, { ownerStaffId: tenant.staff.consultant2.id });
    expect(owned.status).toBe(200);
    expect(owned.body.ownerStaffId).toBe(tenant.staff.consultant2.id);
    const reviewerOwner = await as("admin").patch(`/v1/contacts/${id}`, { ownerStaffId: tenant.staff.reviewer.id });
    expect(reviewerOwner.status).toBe(422);
    expect(fields(reviewerOwner)).toEqual(["ownerStaffId"]);

    const unowned = await as("admin").patch(`/v1/contacts/${id}`, { ownerStaffId: null, phone: null });
    expect(unowned.status).toBe(200);
    expect(unowned.body).toMatchObject({ ownerStaffId: null, phone: null, phoneMasked: false });
    // The phone is free again.
    expect((await as("admin").post("/v1/contacts", { phone: p })).status).toBe(201);
  });

  it("refuses a phone or external id already used by another contact (409) and a bad value (422)", async () => {
    const p = phone();
    await as("admin").post("/v1/contacts", { name: "甲", phone: p, externalUserId: "wmTAKEN01" });
    const b = await as("admin").post("/v1/contacts", { name: "乙" });
    const samePhone = await as("admin").patch(`/v1/contacts/${b.body.id}`, { phone: dashed(p) });
    expect(samePhone.status).toBe(409);
    expect(fields(samePhone)).toEqual(["phone"]);
    const sameExt = await as("admin").patch(`/v1/contacts/${b.body.id}`, { externalUserId: "wmTAKEN01" });
    expect(sameExt.status).toBe(409);
    expect(fields(sameExt)).toEqual(["externalUserId"]);
    const badPhone = await as("admin").patch(`/v1/contacts/${b.body.id}`, { phone: "12" });
    expect(badPhone.status).toBe(422);
    expect(fields(badPhone)).toEqual(["phone"]);
    const badGender = await as("admin").patch(`/v1/contacts/${b.body.id}`, { gender: "x" });
    expect(badGender.status).toBe(422);
    expect(fields(badGender)).toEqual(["gender"]);
  });

  it("lets a consultant edit their own contact but not reassign it", async () => {
    const c = await as("consultant").post("/v1/contacts", { name: "自己的" });
    expect((await as("consultant").patch(`/v1/contacts/${c.body.id}`, { name: "改名" })).body.name).toBe("改名");
    const moved = await as("consultant").patch(`/v1/contacts/${c.body.id}`, { ownerStaffId: tenant.staff.consultant2.id });
    expect(moved.status).toBe(403);
  });
});

describe("GET /v1/contacts filters", () => {
  let lt: TestTenant;
  const ids: Record<string, string> = {};
  const listIds = async (query: string, who: keyof TestTenant["tokens"] = "admin") => {
    const res = await client(t.app, lt.tokens[who]).get(`/v1/contacts?${query}`);
    expect(res.status, query).toBe(200);
    return new Set((res.body.items as { id: string }[]).map((c) => c.id));
  };
  const p1 = phone();

  beforeAll(async () => {
    lt = await createTestTenant(t.rt.deps);
    const admin = client(t.app, lt.tokens.admin);
    const make = async (key: string, body: Record<string, unknown>, c = admin) => {
      const res = await c.post("/v1/contacts", body);
      expect(res.status, key).toBe(201);
      ids[key] = res.body.id as string;
    };
    await make("mine", { name: "王美丽", phone: p1, source: "douyin", ownerStaffId: lt.staff.admin.id });
    await make("c1", { name: "李美玲", source: "douyin" }, client(t.app, lt.tokens.consultant));
    await make("c2", { name: "赵敏", source: "xiaohongshu", ownerStaffId: lt.staff.consultant2.id, externalUserId: "wmFILTER42" });
    await make("none", { name: "孙悟空", source: "xiaohongshu" });
    await make("pct", { name: "100%_满意" });
  });

  it("filters by owner = me, none or a staff id", async () => {
    expect(await listIds("owner=me")).toEqual(new Set([ids.mine]));
    expect(await listIds("owner=none")).toEqual(new Set([ids.none, ids.pct]));
    expect(await listIds(`owner=${lt.staff.consultant2.id}`)).toEqual(new Set([ids.c2]));
    expect(await listIds("owner=me", "consultant")).toEqual(new Set([ids.c1]));
    // Consultants see only their own book, whatever they ask.
    expect(await listIds("", "consultant")).toEqual(new Set([ids.c1]));
    expect(await listIds("owner=none", "consultant")).toEqual(new Set());
    const bad = await client(t.app, lt.tokens.admin).get("/v1/contacts?owner=bob");
    expect(bad.status).toBe(422);
    expect(fields(bad)).toEqual(["owner"]);
  });

  it("filters by source", async () => {
    expect(await listIds("source=douyin")).toEqual(new Set([ids.mine, ids.c1]));
    expect(await listIds("source=xiaohongshu")).toEqual(new Set([ids.c2, ids.none]));
    expect(await listIds("source=nowhere")).toEqual(new Set());
  });

  it("searches by name substring, phone in another format and exact external id", async () => {
    expect(await listIds(`q=${encodeURIComponent("美")}`)).toEqual(new Set([ids.mine, ids.c1]));
    expect(await listIds(`q=${encodeURIComponent("美丽")}`)).toEqual(new Set([ids.mine]));
    expect(await listIds(`q=${encodeURIComponent(dashed(p1))}`)).toEqual(new Set([ids.mine]));
    expect(await listIds(`q=${encodeURIComponent(fullWidth(p1))}`)).toEqual(new Set([ids.mine]));
    expect(await listIds("q=wmFILTER42")).toEqual(new Set([ids.c2]));
    // Exact, not contains, for external ids; LIKE wildcards are literal.
    expect(await listIds("q=wmFILTER4")).toEqual(new Set());
    expect(await listIds(`q=${encodeURIComponent("%")}`)).toEqual(new Set([ids.pct]));
    expect(await listIds(`q=${encodeURIComponent("_")}`)).toEqual(new Set([ids.pct]));
    // Part of a phone is not a match (phones are stored hashed).
    expect(await listIds(`q=${p1.slice(0, 7)}`)).toEqual(new Set());
  });

  it("filters by tag, as group:name or as tag id", async () => {
    const db = t.rt.deps.db;
    const tagRows = await db
      .select({ id: tags.id, name: tags.name })
      .from(tags)
      .innerJoin(tagGroups, eq(tagGroups.id, tags.groupId))
      .where(and(eq(tags.tenantId, lt.id), eq(tagGroups.key, "need"), inArray(tags.name, ["祛痘", "抗衰"])));
    const acne = tagRows.find((r) => r.name === "祛痘")!.id;
    const age = tagRows.find((r) => r.name === "抗衰")!.id;
    await db.insert(contactTags).values([
      { tenantId: lt.id, contactId: ids.mine!, tagId: acne, source: "manual" },
      { tenantId: lt.id, contactId: ids.c1!, tagId: acne, source: "rule", ruleId: "need-acne", ruleVersion: 1 },
      { tenantId: lt.id, contactId: ids.c2!, tagId: age, source: "manual" },
    ]);
    expect(await listIds(`tag=${encodeURIComponent("need:祛痘")}`)).toEqual(new Set([ids.mine, ids.c1]));
    expect(await listIds(`tag=${acne}`)).toEqual(new Set([ids.mine, ids.c1]));
    expect(await listIds(`tag=${encodeURIComponent("need:抗衰")}`)).toEqual(new Set([ids.c2]));
    expect(await listIds(`tag=${encodeURIComponent("need:祛痘")}&source=douyin&owner=me`)).toEqual(new Set([ids.mine]));
    expect(await listIds(`tag=${encodeURIComponent("need:祛痘")}`, "consultant")).toEqual(new Set([ids.c1]));
    // Nobody holds this one.
    expect(await listIds(`tag=${encodeURIComponent("visit:复诊")}`)).toEqual(new Set());
    const bad = await client(t.app, lt.tokens.admin).get(`/v1/contacts?tag=${encodeURIComponent("祛痘")}`);
    expect(bad.status).toBe(422);
    expect(fields(bad)).toEqual(["tag"]);

    const tagsOf = await client(t.app, lt.tokens.admin).get(`/v1/contacts/${ids.c1}/tags`);
    expect(tagsOf.status).toBe(200);
    expect(tagsOf.body.tags).toEqual([expect.objectContaining({ group: "need", name: "祛痘", reason: { ruleId: "need-acne", ruleVersion: 1, eventId: null } })]);
  });
});

describe("GET /v1/contacts pagination", () => {
  let pt: TestTenant;

  beforeAll(async () => {
    pt = await createTestTenant(t.rt.deps);
    const admin = client(t.app, pt.tokens.admin);
    // 60 one by one (distinct timestamps) and 60 in one import (one transaction: identical created_at).
    for (let i = 0; i < 60; i++) {
      const res = await admin.post("/v1/contacts", { name: `分页${i}` });
      expect(res.status).toBe(201);
    }
    const csv = ["name", ...Array.from({ length: 60 }, (_, i) => `批量${i}`)].join("\n");
    const imp = await admin.post("/v1/contacts/import", csv, { "content-type": "text/csv" });
    expect(imp.status).toBe(200);
    expect(imp.body.created).toBe(60);
  });

  it("walks 120 contacts in 3 pages of at most 50: no duplicates, no gaps, newest first, stable", async () => {
    const admin = client(t.app, pt.tokens.admin);
    const walk = async () => {
      const pages: { id: string; createdAt: string }[][] = [];
      let cursor: string | null = null;
      do {
        const res: ApiResponse = await admin.get(`/v1/contacts?limit=50${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`);
        expect(res.status).toBe(200);
        pages.push(res.body.items);
        cursor = res.body.nextCursor;
        expect(pages.length).toBeLessThanOrEqual(3);
      } while (cursor);
      return pages;
    };
    const pages = await walk();
    expect(pages.map((p) => p.length)).toEqual([50, 50, 20]);
    const all = pages.flat();
    expect(new Set(all.map((c) => c.id)).size).toBe(120);
    const times = all.map((c) => Date.parse(c.createdAt));
    expect(times).toEqual([...times].sort((a, b) => b - a));
    // The same walk again gives the same order.
    expect((await walk()).flat().map((c) => c.id)).toEqual(all.map((c) => c.id));
    // And one page of 200 agrees with the three pages.
    const one = await admin.get("/v1/contacts?limit=200");
    expect(one.body.nextCursor).toBeNull();
    expect((one.body.items as { id: string }[]).map((c) => c.id)).toEqual(all.map((c) => c.id));
  });

  it("answers 422 naming cursor for a cursor it did not issue", async () => {
    const admin = client(t.app, pt.tokens.admin);
    const forged = Buffer.from(JSON.stringify({ at: "2026-01-01T00:00:00.000Z", id: "not-a-uuid" })).toString("base64url");
    const oddDate = Buffer.from(JSON.stringify({ at: "2026", id: "00000000-0000-4000-8000-000000000000" })).toString("base64url");
    for (const cursor of ["garbage", "eyJ4IjoxfQ", forged, oddDate]) {
      const res = await admin.get(`/v1/contacts?cursor=${cursor}`);
      expect(res.status, cursor).toBe(422);
      expect(fields(res)).toEqual(["cursor"]);
    }
    const limit = await admin.get("/v1/contacts?limit=0");
    expect(limit.status).toBe(422);
    expect(fields(limit)).toEqual(["limit"]);
  });
});

describe("audit", () => {
  it("writes contact.create and contact.update rows with before/after but never the clear phone or name", async () => {
    const p = phone();
    const name = "审计专用姓名";
    const created = await as("admin").post("/v1/contacts", { name, phone: p, source: "wecom" }, { "x-request-id": "audit-req-0001" });
    expect(created.status).toBe(201);
    const id = created.body.id as string;
    const p2 = phone();
    const updated = await as("admin").patch(`/v1/contacts/${id}`, { name: "审计改名", phone: p2, ownerStaffId: tenant.staff.consultant.id });
    expect(updated.status).toBe(200);

    const rows = await t.rt.deps.db
      .select()
      .from(auditLog)
      .where(and(eq(auditLog.tenantId, tenant.id), eq(auditLog.entityType, "contact"), eq(auditLog.entityId, id)))
      .orderBy(auditLog.id);
    expect(rows.map((r) => r.action)).toEqual(["contact.create", "contact.update"]);
    const [create, update] = rows;
    expect(create).toMatchObject({ actorKind: "staff", actorStaffId: tenant.staff.admin.id, requestId: "audit-req-0001", before: null });
    expect(create!.after).toMatchObject({ source: "wecom", phone: `${p.slice(0, 3)}****${p.slice(7)}`, nameSet: true });
    expect(update!.before).toMatchObject({ ownerStaffId: null, phone: `${p.slice(0, 3)}****${p.slice(7)}` });
    expect(update!.after).toMatchObject({ ownerStaffId: tenant.staff.consultant.id, phone: `${p2.slice(0, 3)}****${p2.slice(7)}` });

    const text = JSON.stringify(rows);
    for (const secret of [p, p2, p.slice(3), p2.slice(3), name, "审计改名"]) expect(text).not.toContain(secret);

    // Admins read the same rows through the API.
    const api = await as("admin").get(`/v1/audit?entityType=contact&entityId=${id}`);
    expect(api.status).toBe(200);
    expect((api.body.items as { action: string }[]).map((r) => r.action)).toEqual(["contact.update", "contact.create"]);
  });
});
