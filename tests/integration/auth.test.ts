/**
 * Who may call: console sign-in (JSON and form), session cookies and CSRF, API tokens (revoked,
 * expired, of deactivated staff) and the ADMIN_TOKEN granted to the demo admin at start.
 */
import { randomBytes } from "node:crypto";
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sha256 } from "../../src/domain/pii/crypto";
import { systemCtx } from "../../src/services/context";
import { DEMO_SEGMENTS, seedDemo } from "../../src/services/seed/demo";
import { ensureNamedToken } from "../../src/services/tokens/tokens";
import { client, createTestTenant, PASSWORD, phone, type ApiResponse, type TestTenant } from "../helpers/factories";
import { createTestRuntime, type TestRuntime } from "../helpers/runtime";

const ADMIN_TOKEN = `admin-${randomBytes(16).toString("hex")}`;

let t: TestRuntime;
let sql: postgres.Sql;
let A: TestTenant;

beforeAll(async () => {
  t = await createTestRuntime({ ADMIN_TOKEN });
  sql = postgres(t.databaseUrl, { max: 2, onnotice: () => {} });
  A = await createTestTenant(t.rt.deps);
});

afterAll(async () => {
  await sql?.end();
  await t?.close();
});

/** Sign in through the JSON endpoint; returns the response and the session cookie value. */
async function login(email: string, password = PASSWORD, tenant = A.slug): Promise<{ res: ApiResponse; cookie: string | null }> {
  const res = await client(t.app).post("/v1/auth/login", { tenant, email, password });
  const m = /siyu_session=([^;]+)/.exec(res.headers.get("set-cookie") ?? "");
  return { res, cookie: m ? m[1]! : null };
}

/** JSON calls carrying a session cookie (and no bearer token). */
function session(cookie: string) {
  const c = client(t.app);
  const withCookie = (h: Record<string, string> = {}) => ({ cookie: `siyu_session=${cookie}`, ...h });
  return {
    get: (p: string, h?: Record<string, string>) => c.get(p, withCookie(h)),
    post: (p: string, b?: unknown, h?: Record<string, string>) => c.post(p, b, withCookie(h)),
    patch: (p: string, b?: unknown, h?: Record<string, string>) => c.patch(p, b, withCookie(h)),
  };
}

async function sessionCount(staffId: string): Promise<number> {
  const [row] = await sql<{ n: number }[]>`select count(*)::int as n from sessions where staff_id = ${staffId}`;
  return row!.n;
}

function expectUnauthenticated(res: ApiResponse) {
  expect(res.status).toBe(401);
  expect(res.headers.get("content-type")).toMatch(/^application\/problem\+json/);
  expect(res.body.code).toBe("UNAUTHENTICATED");
}

describe("console sign-in (JSON)", () => {
  it("signs in with an HttpOnly, SameSite=Lax session cookie that /v1/me accepts", async () => {
    const { res, cookie } = await login(A.staff.marketing.email);
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ staffId: A.staff.marketing.id, name: `marketing ${A.slug}`, role: "marketing", tenantId: A.id, tenant: A.slug, via: "session" });
    const setCookie = res.headers.get("set-cookie") ?? "";
    expect(setCookie).toMatch(/HttpOnly/i);
    expect(setCookie).toMatch(/SameSite=Lax/i);
    expect(setCookie).toMatch(/Path=\//);
    expect(cookie).toMatch(/^[A-Za-z0-9_-]{32,}$/);
    // Stored hashed: the cookie value is nowhere in the sessions table.
    const rows = await sql`select token_hash from sessions where staff_id = ${A.staff.marketing.id}`;
    expect(rows.length).toBeGreaterThan(0);
    for (const r of rows) expect(r.token_hash).not.toBe(cookie);
    expect(rows.map((r) => r.token_hash)).toContain(sha256(cookie!));
    const me = await session(cookie!).get("/v1/me");
    expect(me.status).toBe(200);
    expect(me.body).toMatchObject({ staffId: A.staff.marketing.id, role: "marketing", via: "session" });
    // The session carries the role: marketing may read contacts, not staff.
    expect((await session(cookie!).get("/v1/contacts")).status).toBe(200);
    expect((await session(cookie!).get("/v1/staff")).status).toBe(403);
  });

  it("accepts the email in any case and the tenant with spaces around it", async () => {
    const { res } = await login(A.staff.reviewer.email.toUpperCase(), PASSWORD, ` ${A.slug.toUpperCase()} `);
    expect(res.status).toBe(200);
    expect(res.body.staffId).toBe(A.staff.reviewer.id);
  });

  it("answers a wrong password exactly like an unknown email, tenant or a staff member without a password", async () => {
    const spare = await client(t.app, A.tokens.admin).post("/v1/staff", { name: "无密码", email: `nopass@${A.slug}.test`, role: "consultant" });
    expect(spare.status).toBe(201);
    const attempts = [
      await login(A.staff.admin.email, "wrong-password"),
      await login(`nobody@${A.slug}.test`),
      await login(A.staff.admin.email, PASSWORD, "no-such-clinic"),
      await login(`nopass@${A.slug}.test`, "anything-at-all"),
    ];
    for (const { res, cookie } of attempts) {
      expectUnauthenticated(res);
      expect(cookie).toBeNull();
    }
    const details = new Set(attempts.map((a) => `${a.res.body.title}|${a.res.body.detail}`));
    expect(details.size).toBe(1);
    expect(attempts[0]!.res.body.detail).not.toContain(A.staff.admin.email);
  });

  it("refuses a malformed login body with 422 naming the field", async () => {
    const res = await client(t.app).post("/v1/auth/login", { tenant: A.slug, email: A.staff.admin.email });
    expect(res.status).toBe(422);
    expect(res.body.errors.map((e: { field: string }) => e.field)).toContain("password");
  });

  it("ends the session on logout: the old cookie is refused and the row is gone", async () => {
    const { cookie } = await login(A.staff.consultant.email);
    const s = session(cookie!);
    expect((await s.get("/v1/me")).status).toBe(200);
    const before = await sessionCount(A.staff.consultant.id);
    const out = await client(t.app).post("/v1/auth/logout", undefined, { cookie: `siyu_session=${cookie}` });
    expect(out.status).toBe(204);
    expect(out.headers.get("set-cookie") ?? "").toMatch(/siyu_session=;.*Max-Age=0/i);
    expectUnauthenticated(await s.get("/v1/me"));
    expect(await sessionCount(A.staff.consultant.id)).toBe(before - 1);
    const [row] = await sql`select count(*)::int as n from sessions where token_hash = ${sha256(cookie!)}`;
    expect(row!.n).toBe(0);
  });

  it("refuses an unknown cookie and an expired session", async () => {
    expectUnauthenticated(await session("not-a-session").get("/v1/me"));
    const { cookie } = await login(A.staff.consultant2.email);
    expect((await session(cookie!).get("/v1/me")).status).toBe(200);
    await sql`update sessions set expires_at = now() - interval '1 minute' where staff_id = ${A.staff.consultant2.id}`;
    expectUnauthenticated(await session(cookie!).get("/v1/me"));
  });
});

describe("cross-site requests with a session cookie", () => {
  let cookie: string;
  beforeAll(async () => {
    cookie = (await login(A.staff.admin.email)).cookie!;
  });

  it("refuses cookie-authenticated writes from a foreign Origin with 403, and stores nothing", async () => {
    const s = session(cookie);
    const p = phone();
    for (const origin of ["https://evil.example", "null", "http://localhost.evil.example", "http://localhost:9999"]) {
      const res = await s.post("/v1/contacts", { name: "跨站", phone: p }, { origin });
      expect(res.status, origin).toBe(403);
      expect(res.body.code).toBe("FORBIDDEN");
      const patch = await s.patch(`/v1/staff/${A.staff.reviewer.id}`, { active: false }, { origin });
      expect(patch.status, origin).toBe(403);
    }
    const found = await client(t.app, A.tokens.admin).get(`/v1/contacts?q=${p}`);
    expect(found.body.items).toEqual([]);
    expect((await client(t.app, A.tokens.admin).get(`/v1/staff/${A.staff.reviewer.id}`)).body.active).toBe(true);
  });

  it("refuses cookie-authenticated writes that carry neither Origin nor Referer, and accepts a same-origin Referer", async () => {
    const s = session(cookie);
    const bare = await s.post("/v1/contacts", { name: "无来源" });
    expect(bare.status).toBe(403);
    const viaReferer = await s.post("/v1/contacts", { name: "有来源" }, { referer: "http://localhost/console" });
    expect(viaReferer.status).toBe(201);
  });

  it("accepts writes from the same origin or the public URL, and reads from anywhere", async () => {
    const s = session(cookie);
    const same = await s.post("/v1/contacts", { name: "同源" }, { origin: "http://localhost" });
    expect(same.status).toBe(201);
    const viaPublic = await s.post("/v1/contacts", { name: "公开地址" }, { origin: t.rt.config.publicUrl });
    expect(viaPublic.status).toBe(201);
    const read = await s.get("/v1/contacts", { origin: "https://evil.example" });
    expect(read.status).toBe(200);
  });

  it("does not apply the Origin check to bearer tokens (they are never sent by a browser on its own)", async () => {
    const res = await client(t.app, A.tokens.admin).post("/v1/contacts", { name: "带令牌" }, { origin: "https://evil.example" });
    expect(res.status).toBe(201);
  });

  it("does not fall back to the cookie when a bad bearer token is sent", async () => {
    expectUnauthenticated(await session(cookie).get("/v1/me", { authorization: "Bearer sy_nope" }));
  });
});

describe("API tokens", () => {
  it("refuses a revoked token from the next request on", async () => {
    const admin = client(t.app, A.tokens.admin);
    const created = await admin.post("/v1/tokens", { staffId: A.staff.marketing.id, name: "to revoke" });
    expect(created.status).toBe(201);
    const token = client(t.app, created.body.token);
    expect((await token.get("/v1/me")).body.staffId).toBe(A.staff.marketing.id);
    const revoked = await admin.delete(`/v1/tokens/${created.body.id}`);
    expect(revoked.status).toBe(200);
    expect(revoked.body.revokedAt).not.toBeNull();
    expectUnauthenticated(await token.get("/v1/me"));
    expectUnauthenticated(await token.get("/v1/contacts"));
    // Revoking again is harmless and keeps the first revocation time.
    const again = await admin.delete(`/v1/tokens/${created.body.id}`);
    expect(again.status).toBe(200);
    expect(again.body.revokedAt).toBe(revoked.body.revokedAt);
  });

  it("refuses an expired token", async () => {
    const admin = client(t.app, A.tokens.admin);
    const created = await admin.post("/v1/tokens", { staffId: A.staff.reviewer.id, name: "short-lived", expiresInDays: 1 });
    expect(created.status).toBe(201);
    const expires = Date.parse(created.body.expiresAt);
    expect(expires - Date.now()).toBeGreaterThan(23 * 3600_000);
    expect(expires - Date.now()).toBeLessThanOrEqual(24 * 3600_000);
    const token = client(t.app, created.body.token);
    expect((await token.get("/v1/me")).status).toBe(200);
    await sql`update api_tokens set expires_at = now() - interval '1 second' where id = ${created.body.id}`;
    expectUnauthenticated(await token.get("/v1/me"));
  });

  it("records when a token was last used", async () => {
    const admin = client(t.app, A.tokens.admin);
    const created = await admin.post("/v1/tokens", { staffId: A.staff.reviewer.id, name: "touch" });
    expect(created.body.lastUsedAt).toBeNull();
    await client(t.app, created.body.token).get("/v1/me");
    const list = await admin.get(`/v1/tokens?staffId=${A.staff.reviewer.id}`);
    const row = list.body.items.find((x: { id: string }) => x.id === created.body.id);
    expect(row.lastUsedAt).not.toBeNull();
  });
});

describe("deactivating, demoting and re-keying staff", () => {
  it("refuses a deactivated person's tokens, ends their sessions and refuses their sign-in", async () => {
    const admin = client(t.app, A.tokens.admin);
    const created = await admin.post("/v1/staff", { name: "将离职", email: `leaving@${A.slug}.test`, role: "consultant", password: PASSWORD });
    expect(created.status).toBe(201);
    const id = created.body.id as string;
    const token = (await admin.post("/v1/tokens", { staffId: id, name: "laptop" })).body.token as string;
    const { cookie } = await login(`leaving@${A.slug}.test`);
    expect((await client(t.app, token).get("/v1/me")).status).toBe(200);
    expect((await session(cookie!).get("/v1/me")).status).toBe(200);
    expect(await sessionCount(id)).toBe(1);

    const off = await admin.patch(`/v1/staff/${id}`, { active: false });
    expect(off.status).toBe(200);
    expect(off.body.active).toBe(false);
    expectUnauthenticated(await client(t.app, token).get("/v1/me"));
    expectUnauthenticated(await session(cookie!).get("/v1/me"));
    expect(await sessionCount(id)).toBe(0);
    const again = await login(`leaving@${A.slug}.test`);
    expectUnauthenticated(again.res);
    expect(again.cookie).toBeNull();
    // The tokens are revoked, not just suspended: reactivating the person does not revive them.
    const tokens = await admin.get(`/v1/tokens?staffId=${id}`);
    expect(tokens.body.items.every((x: { revokedAt: string | null }) => x.revokedAt !== null)).toBe(true);
    expect((await admin.patch(`/v1/staff/${id}`, { active: true })).status).toBe(200);
    expectUnauthenticated(await client(t.app, token).get("/v1/me"));
  });

  it("ends sessions on a role change and on a new password; the old password stops working", async () => {
    const admin = client(t.app, A.tokens.admin);
    const email = `rotating@${A.slug}.test`;
    const created = await admin.post("/v1/staff", { name: "换岗", email, role: "marketing", password: PASSWORD });
    const id = created.body.id as string;
    const first = (await login(email)).cookie!;
    expect((await admin.patch(`/v1/staff/${id}`, { role: "reviewer" })).status).toBe(200);
    expectUnauthenticated(await session(first).get("/v1/me"));

    const second = (await login(email)).cookie!;
    expect((await session(second).get("/v1/me")).body.role).toBe("reviewer");
    expect((await admin.patch(`/v1/staff/${id}`, { password: "a-brand-new-secret" })).status).toBe(200);
    expectUnauthenticated(await session(second).get("/v1/me"));
    expectUnauthenticated((await login(email)).res);
    expect((await login(email, "a-brand-new-secret")).res.status).toBe(200);
  });

  it("keeps sessions when nothing about access changes", async () => {
    const { cookie } = await login(A.staff.marketing.email);
    const res = await client(t.app, A.tokens.admin).patch(`/v1/staff/${A.staff.marketing.id}`, { skills: ["祛痘"], capacity: 10 });
    expect(res.status).toBe(200);
    expect((await session(cookie!).get("/v1/me")).status).toBe(200);
  });

  it("does not let an admin lock themselves out", async () => {
    const admin = client(t.app, A.tokens.admin);
    const off = await admin.patch(`/v1/staff/${A.staff.admin.id}`, { active: false });
    expect(off.status).toBe(422);
    expect(off.body.errors[0].field).toBe("active");
    const demote = await admin.patch(`/v1/staff/${A.staff.admin.id}`, { role: "marketing" });
    expect(demote.status).toBe(422);
    expect(demote.body.errors[0].field).toBe("role");
    expect((await admin.get("/v1/me")).body.role).toBe("admin");
  });
});

describe("ADMIN_TOKEN", () => {
  it("is granted the demo admin at start, survives a restart and is replaced when it changes", async () => {
    const config = t.rt.config;
    expect(config.ADMIN_TOKEN).toBe(ADMIN_TOKEN);
    // What src/cli/start.ts does at start: seed the demo tenant, then grant ADMIN_TOKEN its admin.
    const seeded = await seedDemo({ deps: t.rt.deps, slug: config.TENANT_SLUG, password: config.DEMO_PASSWORD, contactCount: 3 });
    const grant = (token: string) =>
      ensureNamedToken({ ctx: systemCtx(t.rt.deps, seeded.tenantId, "start"), staffId: seeded.adminStaffId, name: "ADMIN_TOKEN", token });
    await grant(config.ADMIN_TOKEN!);

    const admin = client(t.app, ADMIN_TOKEN);
    const me = await admin.get("/v1/me");
    expect(me.status).toBe(200);
    expect(me.body).toMatchObject({ staffId: seeded.adminStaffId, role: "admin", tenant: config.TENANT_SLUG, tenantId: seeded.tenantId, via: "token" });
    expect((await admin.get("/v1/staff")).status).toBe(200);
    // The demo clinic starts with the shipped calendars as drafts, ready to preview and publish.
    const cals = await admin.get("/v1/calendars");
    expect(cals.body.items.map((c: { key: string; status: string }) => [c.key, c.status]).sort()).toEqual([
      ["acne-community-7d", "draft"],
      ["appointment-reminders", "draft"],
      ["member-day-monthly", "draft"],
      ["post-treatment-care-30d", "draft"],
    ]);
    // And with saved segments over the default tags, each compiling (a count, not an error).
    const segs = await admin.get("/v1/segments");
    expect(segs.body.items.map((g: { name: string; expression: string }) => [g.name, g.expression])).toEqual(
      expect.arrayContaining(DEMO_SEGMENTS.map((g) => [g.name, g.expression])),
    );
    expect(segs.body.items).toHaveLength(DEMO_SEGMENTS.length);
    for (const g of segs.body.items) expect(typeof g.count).toBe("number");
    // It is the demo tenant's admin, not another tenant's.
    expect((await admin.get(`/v1/staff/${A.staff.admin.id}`)).status).toBe(404);

    // A second start with the same value keeps exactly one live ADMIN_TOKEN row.
    await grant(config.ADMIN_TOKEN!);
    expect((await admin.get("/v1/me")).status).toBe(200);
    const live = await sql`select id from api_tokens where tenant_id = ${seeded.tenantId} and name = 'ADMIN_TOKEN' and revoked_at is null`;
    expect(live.length).toBe(1);
    const stored = await sql`select token_hash, prefix from api_tokens where id = ${live[0]!.id}`;
    expect(stored[0]!.token_hash).not.toContain(ADMIN_TOKEN);
    expect(ADMIN_TOKEN.startsWith(String(stored[0]!.prefix).replace("…", ""))).toBe(true);

    // Rotating the env value revokes the old token.
    const rotated = `admin-${randomBytes(16).toString("hex")}`;
    await grant(rotated);
    expectUnauthenticated(await admin.get("/v1/me"));
    expect((await client(t.app, rotated).get("/v1/me")).body.staffId).toBe(seeded.adminStaffId);
  });
});

describe("console sign-in (form)", () => {
  async function formLogin(fields: Record<string, string>) {
    return t.app.request("/login", {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams(fields).toString(),
    });
  }

  it("redirects to /console with a session cookie, and the console greets the person by name", async () => {
    const res = await formLogin({ tenant: A.slug, email: A.staff.consultant.email, password: PASSWORD });
    expect(res.status).toBe(303);
    expect(res.headers.get("location")).toBe("/console");
    const setCookie = res.headers.get("set-cookie") ?? "";
    expect(setCookie).toMatch(/HttpOnly/i);
    expect(setCookie).toMatch(/SameSite=Lax/i);
    const cookie = /siyu_session=([^;]+)/.exec(setCookie)![1]!;
    const page = await t.app.request("/console", { headers: { cookie: `siyu_session=${cookie}` } });
    expect(page.status).toBe(200);
    expect(page.headers.get("content-type")).toMatch(/text\/html/);
    const html = await page.text();
    expect(html).toContain(`consultant ${A.slug}`);
    expect(html).toContain("我的客户");
  });

  it("sends anonymous visitors of /console to /login", async () => {
    const res = await t.app.request("/console");
    expect(res.status).toBe(303);
    expect(res.headers.get("location")).toBe("/login");
  });

  it("re-renders the form with 401 on a wrong password, keeping the email, and sets no cookie", async () => {
    const res = await formLogin({ tenant: A.slug, email: A.staff.consultant.email, password: "wrong-password" });
    expect(res.status).toBe(401);
    expect(res.headers.get("set-cookie")).toBeNull();
    const html = await res.text();
    expect(html).toContain("机构代码、邮箱或密码不正确");
    expect(html).toContain(`value="${A.staff.consultant.email}"`);
    expect(html).not.toContain("wrong-password");
  });
});

describe("password guessing", () => {
  it("throttles an account after 10 failed sign-ins with 429 and Retry-After, even for the right password; others are unaffected", async () => {
    const email = `guessed@${A.slug}.test`;
    expect((await client(t.app, A.tokens.admin).post("/v1/staff", { name: "被猜", email, role: "reviewer", password: PASSWORD })).status).toBe(201);
    for (let i = 0; i < 10; i++) expectUnauthenticated((await login(email, `guess-${i}-wrong`)).res);
    const blocked = await login(email);
    expect(blocked.res.status).toBe(429);
    expect(blocked.res.headers.get("content-type")).toMatch(/^application\/problem\+json/);
    expect(blocked.res.body.code).toBe("TOO_MANY_REQUESTS");
    expect(Number(blocked.res.headers.get("retry-after"))).toBeGreaterThan(0);
    expect(blocked.cookie).toBeNull();
    expect((await login(A.staff.admin.email)).res.status).toBe(200);
  });
});
