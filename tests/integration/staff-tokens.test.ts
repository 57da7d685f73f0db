/**
 * Staff and API tokens as an admin manages them, and the audit trail those changes leave: who,
 * what, before/after, and the request id the caller saw; never a password hash or a token.
 */
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sha256 } from "../../src/domain/pii/crypto";
import { client, createTestTenant, PASSWORD, type ApiResponse, type TestTenant } from "../helpers/factories";
import { createTestRuntime, type TestRuntime } from "../helpers/runtime";

let t: TestRuntime;
let sql: postgres.Sql;
let A: TestTenant;
let admin: ReturnType<typeof client>;

beforeAll(async () => {
  t = await createTestRuntime();
  sql = postgres(t.databaseUrl, { max: 2, onnotice: () => {} });
  A = await createTestTenant(t.rt.deps);
  admin = client(t.app, A.tokens.admin);
});

afterAll(async () => {
  await sql?.end();
  await t?.close();
});

let seq = 0;
const email = (name: string) => `${name}-${++seq}@${A.slug}.test`;

function expectFieldError(res: ApiResponse, status: number, code: string, field: string) {
  expect(res.status, JSON.stringify(res.body)).toBe(status);
  expect(res.headers.get("content-type")).toMatch(/^application\/problem\+json/);
  expect(res.body.code).toBe(code);
  expect(res.body.errors.map((e: { field: string }) => e.field)).toContain(field);
}

describe("staff", () => {
  it("creates a staff member (201) who can sign in when given a password, without exposing the hash", async () => {
    const res = await admin.post("/v1/staff", { name: "周顾问", email: email("Zhou").toUpperCase(), role: "consultant", password: PASSWORD, wecomUserId: "zhou-1", skills: ["祛痘", "美白"], capacity: 30, shift: { mon: ["09:00", "18:00"] } });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    expect(res.body).toMatchObject({ name: "周顾问", role: "consultant", wecomUserId: "zhou-1", skills: ["祛痘", "美白"], capacity: 30, shift: { mon: ["09:00", "18:00"] }, active: true, canSignIn: true, clinicId: null });
    expect(res.body.email).toBe(res.body.email.toLowerCase());
    expect(Object.keys(res.body)).not.toContain("passwordHash");
    expect(JSON.stringify(res.body)).not.toMatch(/scrypt|correct-horse/);
    const login = await client(t.app).post("/v1/auth/login", { tenant: A.slug, email: res.body.email, password: PASSWORD });
    expect(login.status).toBe(200);
    const noPassword = await admin.post("/v1/staff", { name: "无密码", email: email("nopw"), role: "marketing" });
    expect(noPassword.status).toBe(201);
    expect(noPassword.body).toMatchObject({ canSignIn: false, skills: [], capacity: 50, shift: null });
  });

  it("refuses a duplicate email (any case) or WeCom userid with 409 naming the field", async () => {
    const first = await admin.post("/v1/staff", { name: "甲", email: email("dup"), role: "marketing", wecomUserId: "dup-wecom" });
    expect(first.status).toBe(201);
    expectFieldError(await admin.post("/v1/staff", { name: "乙", email: first.body.email.toUpperCase(), role: "marketing" }), 409, "CONFLICT", "email");
    expectFieldError(await admin.post("/v1/staff", { name: "丙", email: email("other"), role: "marketing", wecomUserId: "dup-wecom" }), 409, "CONFLICT", "wecomUserId");
    // The same email in another tenant is fine.
    const B = await createTestTenant(t.rt.deps);
    expect((await client(t.app, B.tokens.admin).post("/v1/staff", { name: "丁", email: first.body.email, role: "marketing" })).status).toBe(201);
  });

  it("refuses invalid fields with 422 naming each one", async () => {
    expectFieldError(await admin.post("/v1/staff", { name: "x", email: email("r"), role: "superuser" }), 422, "VALIDATION_FAILED", "role");
    expectFieldError(await admin.post("/v1/staff", { name: "x", email: "not-an-email", role: "marketing" }), 422, "VALIDATION_FAILED", "email");
    expectFieldError(await admin.post("/v1/staff", { name: "x", email: email("p"), role: "marketing", password: "short" }), 422, "VALIDATION_FAILED", "password");
    expectFieldError(await admin.post("/v1/staff", { name: "x", email: email("s"), role: "marketing", shift: { mon: ["9am", "18:00"] } }), 422, "VALIDATION_FAILED", "shift.mon[0]");
    expectFieldError(await admin.post("/v1/staff", { name: "x", email: email("c"), role: "marketing", clinicId: "00000000-0000-4000-8000-000000000000" }), 422, "VALIDATION_FAILED", "clinicId");
    expectFieldError(await admin.patch(`/v1/staff/${A.staff.reviewer.id}`, { role: "owner" }), 422, "VALIDATION_FAILED", "role");
    expectFieldError(await admin.patch("/v1/staff/not-a-uuid", { skills: [] }), 422, "VALIDATION_FAILED", "id");
  });

  it("updates role, skills and capacity, and lists staff", async () => {
    const created = await admin.post("/v1/staff", { name: "调岗", email: email("move"), role: "marketing" });
    const id = created.body.id as string;
    const updated = await admin.patch(`/v1/staff/${id}`, { role: "consultant", skills: ["抗衰"], capacity: 12 });
    expect(updated.status).toBe(200);
    expect(updated.body).toMatchObject({ id, role: "consultant", skills: ["抗衰"], capacity: 12, name: "调岗" });
    expect((await admin.get(`/v1/staff/${id}`)).body).toEqual(updated.body);
    const list = await admin.get("/v1/staff");
    expect(list.status).toBe(200);
    const ids = list.body.items.map((s: { id: string }) => s.id);
    for (const s of Object.values(A.staff)) expect(ids).toContain(s.id);
    expect(ids).toContain(id);
    expect(list.body.items.find((s: { id: string }) => s.id === id)).toEqual(updated.body);
    for (const s of list.body.items) expect(Object.keys(s)).not.toContain("passwordHash");
    expect(JSON.stringify(list.body)).not.toContain("scrypt");
  });

  it("refuses an update that takes another person's email or WeCom userid with 409 naming that field", async () => {
    const a = await admin.post("/v1/staff", { name: "甲", email: email("ua"), role: "consultant", wecomUserId: "ua-wecom" });
    const b = await admin.post("/v1/staff", { name: "乙", email: email("ub"), role: "consultant", wecomUserId: "ub-wecom" });
    expectFieldError(await admin.patch(`/v1/staff/${b.body.id}`, { email: a.body.email }), 409, "CONFLICT", "email");
    expectFieldError(await admin.patch(`/v1/staff/${b.body.id}`, { wecomUserId: "ua-wecom" }), 409, "CONFLICT", "wecomUserId");
    // Re-sending one's own email alongside: the conflict is still the WeCom userid.
    expectFieldError(await admin.patch(`/v1/staff/${b.body.id}`, { email: b.body.email, wecomUserId: "ua-wecom" }), 409, "CONFLICT", "wecomUserId");
    expect((await admin.get(`/v1/staff/${b.body.id}`)).body).toMatchObject({ email: b.body.email, wecomUserId: "ub-wecom" });
  });

  it("answers 404 for an unknown staff member", async () => {
    const id = "00000000-0000-4000-8000-000000000001";
    expect((await admin.get(`/v1/staff/${id}`)).status).toBe(404);
    expect((await admin.patch(`/v1/staff/${id}`, { skills: [] })).status).toBe(404);
  });
});

describe("API tokens", () => {
  it("shows the token once, on create; lists show only the prefix; the database keeps only a hash", async () => {
    const created = await admin.post("/v1/tokens", { staffId: A.staff.marketing.id, name: "crm sync" });
    expect(created.status).toBe(201);
    const { token, prefix, id } = created.body as { token: string; prefix: string; id: string };
    expect(created.body).toMatchObject({ staffId: A.staff.marketing.id, name: "crm sync", revokedAt: null, expiresAt: null, lastUsedAt: null });
    expect(prefix).toMatch(/^sy_[A-Za-z0-9_-]{8}$/);
    expect(token.startsWith(`${prefix}_`)).toBe(true);
    expect(token.length).toBeGreaterThan(prefix.length + 24);

    const list = await admin.get("/v1/tokens");
    expect(list.status).toBe(200);
    const item = list.body.items.find((x: { id: string }) => x.id === id);
    expect(item).toBeDefined();
    expect(Object.keys(item).sort()).toEqual(["createdAt", "expiresAt", "id", "lastUsedAt", "name", "prefix", "revokedAt", "staffId"]);
    for (const x of list.body.items) expect(x).not.toHaveProperty("token");
    const secret = token.slice(prefix.length + 1);
    expect(JSON.stringify(list.body)).not.toContain(secret);

    const [row] = await sql`select * from api_tokens where id = ${id}`;
    expect(row!.token_hash).not.toBe(token);
    expect(row!.token_hash).toBe(sha256(token));
    expect(JSON.stringify(row)).not.toContain(secret);

    const me = await client(t.app, token).get("/v1/me");
    expect(me.body).toMatchObject({ staffId: A.staff.marketing.id, role: "marketing", via: "token" });
  });

  it("filters the list by staff member", async () => {
    const created = await admin.post("/v1/tokens", { staffId: A.staff.reviewer.id, name: "reviewer bot" });
    const list = await admin.get(`/v1/tokens?staffId=${A.staff.reviewer.id}`);
    expect(list.body.items.length).toBeGreaterThanOrEqual(2);
    expect(list.body.items.map((x: { id: string }) => x.id)).toContain(created.body.id);
    for (const x of list.body.items) expect(x.staffId).toBe(A.staff.reviewer.id);
  });

  it("refuses invalid token requests with 422 naming the field, and unknown ids with 404", async () => {
    expectFieldError(await admin.post("/v1/tokens", { staffId: "00000000-0000-4000-8000-000000000002", name: "x" }), 422, "VALIDATION_FAILED", "staffId");
    expectFieldError(await admin.post("/v1/tokens", { staffId: A.staff.marketing.id }), 422, "VALIDATION_FAILED", "name");
    expectFieldError(await admin.post("/v1/tokens", { staffId: A.staff.marketing.id, name: "x", expiresInDays: 0 }), 422, "VALIDATION_FAILED", "expiresInDays");
    const gone = await admin.delete("/v1/tokens/00000000-0000-4000-8000-000000000003");
    expect(gone.status).toBe(404);
    expect(gone.body.code).toBe("NOT_FOUND");
  });
});

describe("audit log", () => {
  const adminId = () => A.staff.admin.id;

  /** The X-Request-Id header the caller saw. */
  const rid = (res: ApiResponse) => {
    const id = res.headers.get("x-request-id");
    expect(id).toBeTruthy();
    return id!;
  };

  it("records staff.create, staff.update, token.create and token.revoke with the admin and the request id", async () => {
    const pw = "a-password-for-audit";
    const create = await admin.post("/v1/staff", { name: "审计对象", email: email("audited"), role: "marketing", password: PASSWORD }, { "x-request-id": "req-staff-create-0001" });
    expect(create.status).toBe(201);
    expect(rid(create)).toBe("req-staff-create-0001");
    const staffId = create.body.id as string;
    const update = await admin.patch(`/v1/staff/${staffId}`, { role: "consultant", password: pw, skills: ["正畸"] });
    expect(update.status).toBe(200);
    // An unusable incoming id is replaced by a fresh one, which is what the audit row carries.
    const tokenCreate = await admin.post("/v1/tokens", { staffId, name: "audit" }, { "x-request-id": "bad id" });
    expect(tokenCreate.status).toBe(201);
    expect(rid(tokenCreate)).not.toBe("bad id");
    const tokenId = tokenCreate.body.id as string;
    const revoke = await admin.delete(`/v1/tokens/${tokenId}`);
    expect(revoke.status).toBe(200);

    const expected = [
      { action: "staff.create", entityType: "staff", entityId: staffId, requestId: rid(create) },
      { action: "staff.update", entityType: "staff", entityId: staffId, requestId: rid(update) },
      { action: "token.create", entityType: "api_token", entityId: tokenId, requestId: rid(tokenCreate) },
      { action: "token.revoke", entityType: "api_token", entityId: tokenId, requestId: rid(revoke) },
    ];
    for (const e of expected) {
      // Through the API...
      const res = await admin.get(`/v1/audit?action=${e.action}&entityId=${e.entityId}`);
      expect(res.status).toBe(200);
      expect(res.body.items, e.action).toEqual([expect.objectContaining({ ...e, actorKind: "staff", actorStaffId: adminId() })]);
      // ...and in the table itself.
      const rows = await sql`select actor_staff_id, actor_kind, request_id, tenant_id from audit_log where action = ${e.action} and entity_id = ${e.entityId}`;
      expect(rows.length, e.action).toBe(1);
      expect(rows[0]).toEqual({ actor_staff_id: adminId(), actor_kind: "staff", request_id: e.requestId, tenant_id: A.id });
    }

    const [upd] = (await admin.get(`/v1/audit?action=staff.update&entityId=${staffId}`)).body.items;
    expect(upd.before).toMatchObject({ role: "marketing", passwordSet: true });
    expect(upd.after).toMatchObject({ role: "consultant", passwordSet: true, skills: ["正畸"] });
    const [revoked] = (await admin.get(`/v1/audit?action=token.revoke&entityId=${tokenId}`)).body.items;
    expect(revoked.before).toEqual({ revokedAt: null });
    expect(revoked.after.revokedAt).toBe(revoke.body.revokedAt);
    const [tc] = (await admin.get(`/v1/audit?action=token.create&entityId=${tokenId}`)).body.items;
    expect(tc.after).toEqual({ staffId, name: "audit", prefix: tokenCreate.body.prefix });
  });

  it("never stores a password, a password hash or a token secret", async () => {
    const secretPw = "never-in-the-audit-log";
    const created = await admin.post("/v1/staff", { name: "保密", email: email("secret"), role: "reviewer", password: secretPw });
    await admin.patch(`/v1/staff/${created.body.id}`, { password: `${secretPw}-2` });
    const token = (await admin.post("/v1/tokens", { staffId: created.body.id, name: "secret" })).body.token as string;
    const hashes = (await sql<{ password_hash: string }[]>`select password_hash from staff where tenant_id = ${A.id} and password_hash is not null`).map((r) => r.password_hash);
    expect(hashes.length).toBeGreaterThan(1);
    const rows = await sql<{ doc: string }[]>`select coalesce(before::text, '') || ' ' || coalesce(after::text, '') as doc from audit_log where tenant_id = ${A.id}`;
    expect(rows.length).toBeGreaterThan(10);
    for (const { doc } of rows) {
      expect(doc).not.toMatch(/passwordHash|password_hash|scrypt\$/);
      expect(doc).not.toContain(secretPw);
      expect(doc).not.toContain(PASSWORD);
      expect(doc).not.toContain(token);
      for (const h of hashes) expect(doc).not.toContain(h.split("$").at(-1)!);
    }
    const api = await admin.get("/v1/audit?limit=500");
    expect(JSON.stringify(api.body)).not.toMatch(/scrypt\$|passwordHash/);
  });

  it("pages newest first with a cursor", async () => {
    const first = await admin.get("/v1/audit?limit=2");
    expect(first.body.items).toHaveLength(2);
    expect(first.body.items[0].id).toBeGreaterThan(first.body.items[1].id);
    expect(first.body.nextCursor).toBe(String(first.body.items[1].id));
    const second = await admin.get(`/v1/audit?limit=2&cursor=${first.body.nextCursor}`);
    expect(second.body.items[0].id).toBeLessThan(first.body.items[1].id);
  });
});
