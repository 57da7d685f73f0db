import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createApp } from "../../src/http/app";
import { createLogger } from "../../src/logger";
import { httpDeps } from "../../src/server";
import { client, createTestTenant, phone, type ApiResponse, type TestTenant } from "../helpers/factories";
import { createTestRuntime, type TestRuntime } from "../helpers/runtime";

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const METRICS_TOKEN = "metrics-secret-123";

let t: TestRuntime;
let tenant: TestTenant;

beforeAll(async () => {
  t = await createTestRuntime();
  tenant = await createTestTenant(t.rt.deps);
});
afterAll(async () => t?.close());

const admin = () => client(t.app, tenant.tokens.admin);
const fields = (res: ApiResponse): string[] => ((res.body?.errors ?? []) as { field: string }[]).map((e) => e.field);

/** The problem+json shape every error shares. */
function expectProblem(res: ApiResponse, status: number, code: string) {
  expect(res.status).toBe(status);
  expect(res.headers.get("content-type")).toMatch(/^application\/problem\+json/);
  expect(res.body).toMatchObject({ status, code, type: expect.stringMatching(/^https:\/\//), title: expect.any(String), detail: expect.any(String) });
  expect(res.body.requestId).toBe(res.headers.get("x-request-id"));
}

/** A pino destination that keeps each line. */
function capture() {
  const lines: string[] = [];
  return { lines, destination: { write: (s: string) => void lines.push(s) }, parsed: () => lines.map((l) => JSON.parse(l) as Record<string, unknown>) };
}

describe("errors are application/problem+json", () => {
  it("404 for an unknown route, signed in or not", async () => {
    expectProblem(await client(t.app).get("/no-such-page"), 404, "NOT_FOUND");
    expectProblem(await admin().get("/v1/no-such-resource"), 404, "NOT_FOUND");
    const del = await admin().delete("/v1/contacts");
    expect([404, 405]).toContain(del.status);
  });

  it("401 without or with a bad token", async () => {
    const none = await client(t.app).get("/v1/contacts");
    expectProblem(none, 401, "UNAUTHENTICATED");
    expect(none.headers.get("www-authenticate")).toMatch(/^Bearer/);
    expectProblem(await client(t.app, "sy_not_a_token").get("/v1/contacts"), 401, "UNAUTHENTICATED");
    expectProblem(await client(t.app).get("/v1/contacts", { authorization: "Basic abc" }), 401, "UNAUTHENTICATED");
  });

  it("400 MALFORMED_REQUEST naming (body) for malformed JSON", async () => {
    for (const body of ['{"name": "x"', "{name: 'x'}", "[1,"]) {
      const res = await admin().post("/v1/contacts", body);
      expectProblem(res, 400, "MALFORMED_REQUEST");
      expect(res.body.errors[0].field).toBe("(body)");
    }
  });

  it("415 naming content-type for a non-JSON body on a JSON route", async () => {
    const form = await admin().post("/v1/contacts", "name=x", { "content-type": "application/x-www-form-urlencoded" });
    expectProblem(form, 415, "UNSUPPORTED_MEDIA_TYPE");
    expect(fields(form)).toEqual(["content-type"]);
    const text = await admin().call("PATCH", "/v1/contacts/00000000-0000-4000-8000-000000000000", '{"name":"x"}', { "content-type": "text/plain" });
    expectProblem(text, 415, "UNSUPPORTED_MEDIA_TYPE");
    // application/*+json and a charset are fine.
    const ok = await admin().post("/v1/contacts", { name: "媒体类型" }, { "content-type": "application/json; charset=utf-8" });
    expect(ok.status).toBe(201);
    const vnd = await admin().post("/v1/contacts", { name: "媒体类型2" }, { "content-type": "application/merge-patch+json" });
    expect(vnd.status).toBe(201);
  });

  it("422 VALIDATION_FAILED names nested field paths", async () => {
    const occurredAt = new Date().toISOString();
    const res = await admin().post("/v1/events", {
      events: [
        { type: "purchase", phone: phone(), occurredAt, idempotencyKey: "http-422-a", data: { amount: "lots", items: ["水光针"] } },
        { type: "article_read", phone: phone(), occurredAt, idempotencyKey: "http-422-b", data: { articleId: "a1" } },
        { type: "consultation_outcome", phone: phone(), occurredAt, idempotencyKey: "http-422-c", data: { outcome: "lost" } },
        { type: "purchase", phone: phone(), occurredAt, idempotencyKey: "http-422-d", data: { amount: 10, items: [""] } },
      ],
    });
    expectProblem(res, 422, "VALIDATION_FAILED");
    expect(fields(res)).toEqual(expect.arrayContaining(["events[0].data.amount", "events[2].data.lostReason", "events[3].data.items[0]"]));
    expect(fields(res).some((f) => f.startsWith("events[1]"))).toBe(false);
    expect(res.body.detail).toContain("events[0].data.amount");

    const shape = await admin().post("/v1/events", { events: "nope" });
    expectProblem(shape, 422, "VALIDATION_FAILED");
    expect(fields(shape)).toEqual(["events"]);
    const attrs = await admin().post("/v1/contacts", { name: "x", attributes: "not an object" });
    expect(fields(attrs)).toEqual(["attributes"]);
  });
});

describe("X-Request-Id", () => {
  it("is generated for every response, errors included", async () => {
    for (const res of [await client(t.app).get("/healthz"), await admin().get("/v1/contacts"), await client(t.app).get("/v1/contacts"), await client(t.app).get("/nope")]) {
      expect(res.headers.get("x-request-id")).toMatch(UUID_RE);
    }
    const a = await client(t.app).get("/healthz");
    const b = await client(t.app).get("/healthz");
    expect(a.headers.get("x-request-id")).not.toBe(b.headers.get("x-request-id"));
  });

  it("echoes a sane incoming id and replaces an unsafe one", async () => {
    const echoed = await admin().get("/v1/contacts", { "x-request-id": "lb-7f3a.9c_01" });
    expect(echoed.headers.get("x-request-id")).toBe("lb-7f3a.9c_01");
    const problem = await client(t.app).get("/v1/contacts", { "x-request-id": "trace-abcdef12" });
    expect(problem.body.requestId).toBe("trace-abcdef12");
    for (const bad of ["short", "has spaces in it", "<script>alert(1)</script>", "x".repeat(200)]) {
      const res = await client(t.app).get("/healthz", { "x-request-id": bad });
      expect(res.headers.get("x-request-id"), bad).toMatch(UUID_RE);
    }
  });
});

describe("operations endpoints", () => {
  it("/healthz answers ok without auth", async () => {
    const res = await client(t.app).get("/healthz");
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ status: "ok" });
  });

  it("/readyz checks the database and Redis", async () => {
    const res = await client(t.app).get("/readyz");
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ status: "ready", checks: { database: { ok: true }, redis: { ok: true } } });
  });

  it("/metrics is Prometheus text with request counters", async () => {
    await admin().get("/v1/contacts");
    const res = await client(t.app).get("/metrics");
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^text\/plain/);
    const text = res.body as string;
    expect(text).toContain("# TYPE siyu_http_requests_total counter");
    expect(text).toMatch(/siyu_http_requests_total\{method="GET",route="\/v1\/contacts",status="200"\} \d+/);
    expect(text).toContain("siyu_http_request_duration_seconds_bucket");
    expect(text).toContain("siyu_process_cpu_user_seconds_total");
  });

  it("/openapi.json is an OpenAPI 3.1 document of the API", async () => {
    const res = await client(t.app).get("/openapi.json");
    expect(res.status).toBe(200);
    const doc = res.body as { openapi: string; info: { title: string }; paths: Record<string, Record<string, { "x-roles"?: string[]; responses?: Record<string, unknown> }>>; components: { securitySchemes: Record<string, { type: string; scheme?: string }>; schemas: Record<string, unknown> } };
    expect(doc.openapi).toMatch(/^3\.1\./);
    expect(doc.info.title).toBeTruthy();
    expect(Object.keys(doc.paths["/v1/contacts"] ?? {})).toEqual(expect.arrayContaining(["get", "post"]));
    expect(Object.keys(doc.paths["/v1/contacts/{id}"] ?? {})).toEqual(expect.arrayContaining(["get", "patch"]));
    expect(doc.paths["/v1/contacts/import"]?.post).toBeDefined();
    expect(doc.paths["/v1/events"]?.post).toBeDefined();
    expect(doc.paths["/v1/contacts"]?.post?.["x-roles"]).toEqual(["admin", "manager", "marketing", "consultant"]);
    expect(Object.keys(doc.paths["/v1/contacts"]?.post?.responses ?? {})).toEqual(expect.arrayContaining(["201", "401", "403", "422"]));
    expect(doc.components.securitySchemes.bearer).toMatchObject({ type: "http", scheme: "bearer" });
    expect(doc.components.schemas).toHaveProperty("Problem");
    expect(doc.components.schemas).toHaveProperty("Contact");
  });

  it("/docs serves Swagger UI and its assets locally", async () => {
    const html = await t.app.request("/docs");
    expect(html.status).toBe(200);
    expect(html.headers.get("content-type")).toMatch(/^text\/html/);
    const page = await html.text();
    expect(page).toContain("/docs/swagger-ui-bundle.js");
    expect(page).toContain("/openapi.json");
    const js = await t.app.request("/docs/swagger-ui-bundle.js");
    expect(js.status).toBe(200);
    expect(js.headers.get("content-type")).toMatch(/javascript/);
    expect((await js.text()).length).toBeGreaterThan(100_000);
    const css = await t.app.request("/docs/swagger-ui.css");
    expect(css.status).toBe(200);
    expect(css.headers.get("content-type")).toMatch(/^text\/css/);
  });
});

describe("a runtime with BODY_LIMIT_BYTES=2048 and METRICS_TOKEN", () => {
  let lt: TestRuntime;
  let ltTenant: TestTenant;

  beforeAll(async () => {
    lt = await createTestRuntime({ BODY_LIMIT_BYTES: "2048", METRICS_TOKEN });
    ltTenant = await createTestTenant(lt.rt.deps);
  });
  afterAll(async () => lt?.close());

  it("413 for a JSON body over the limit; smaller bodies and CSV imports pass", async () => {
    const c = client(lt.app, ltTenant.tokens.admin);
    const big = await c.post("/v1/contacts", { name: "大", attributes: { blob: "a".repeat(5000) } });
    expectProblem(big, 413, "PAYLOAD_TOO_LARGE");
    const bigWithLength = await c.post("/v1/contacts", JSON.stringify({ name: "大", attributes: { blob: "b".repeat(5000) } }), { "content-length": "5040" });
    expect(bigWithLength.status).toBe(413);
    expect((await c.post("/v1/contacts", { name: "小", attributes: { blob: "a".repeat(500) } })).status).toBe(201);
    // The CSV import has its own (larger) limit.
    const csv = ["name,note", ...Array.from({ length: 60 }, (_, i) => `大批${i},${"x".repeat(80)}`)].join("\n");
    expect(Buffer.byteLength(csv)).toBeGreaterThan(5000);
    const imp = await c.post("/v1/contacts/import", csv, { "content-type": "text/csv" });
    expect(imp.status).toBe(200);
    expect(imp.body.created).toBe(60);
  });

  it("/metrics requires the METRICS_TOKEN as a bearer token", async () => {
    expectProblem(await client(lt.app).get("/metrics"), 401, "UNAUTHENTICATED");
    expectProblem(await client(lt.app, "wrong-token-123").get("/metrics"), 401, "UNAUTHENTICATED");
    // An API token is not the metrics token.
    expect((await client(lt.app, ltTenant.tokens.admin).get("/metrics")).status).toBe(401);
    const ok = await client(lt.app, METRICS_TOKEN).get("/metrics");
    expect(ok.status).toBe(200);
    expect(ok.body).toContain("siyu_http_requests_total");
  });

  it("/readyz answers 503 naming redis once Redis is gone (last: it breaks this runtime)", async () => {
    expect((await client(lt.app).get("/readyz")).status).toBe(200);
    lt.rt.redis.disconnect();
    const res = await client(lt.app).get("/readyz");
    expect(res.status).toBe(503);
    expect(res.body.status).toBe("not ready");
    expect(res.body.checks.database).toEqual({ ok: true });
    expect(res.body.checks.redis.ok).toBe(false);
    expect(res.body.checks.redis.error).toEqual(expect.any(String));
    // Liveness does not depend on Redis.
    expect((await client(lt.app).get("/healthz")).status).toBe(200);
  });
});

describe("logging", () => {
  it("redacts phone, name, text, tokens and authorization headers, also when nested", () => {
    const cap = capture();
    const log = createLogger({ level: "info", destination: cap.destination });
    const secrets = {
      phone: "13912345678",
      name: "隐私姓名甲",
      text: "我想咨询祛痘疗程",
      token: "sy_supersecrettoken",
      auth: "Bearer sy_headertoken",
      cookie: "siyu_session=abcdef",
      password: "hunter2-password",
    };
    log.info({ phone: secrets.phone, name: secrets.name, text: secrets.text, token: secrets.token, headers: { authorization: secrets.auth, cookie: secrets.cookie } }, "top level");
    log.info({ contact: { phone: secrets.phone, name: secrets.name }, message: { text: secrets.text }, staff: { password: secrets.password, token: secrets.token } }, "one level down");
    log.info({ event: { data: { text: secrets.text } }, job: { contact: { phone: secrets.phone, name: secrets.name } }, req: { headers: { authorization: secrets.auth, cookie: secrets.cookie } } }, "two levels down");
    log.child({ requestId: "r-12345678" }).info({ contact: { phone: secrets.phone } }, "from a child");
    expect(cap.lines).toHaveLength(4);
    const all = cap.lines.join("\n");
    for (const [k, v] of Object.entries(secrets)) expect(all, k).not.toContain(v);
    const [top, one, two] = cap.parsed();
    expect(top).toMatchObject({ phone: "[redacted]", name: "[redacted]", text: "[redacted]", token: "[redacted]", headers: { authorization: "[redacted]", cookie: "[redacted]" }, service: "siyu", level: "info" });
    expect(one).toMatchObject({ contact: { phone: "[redacted]", name: "[redacted]" }, message: { text: "[redacted]" } });
    expect(two).toMatchObject({ event: { data: { text: "[redacted]" } }, job: { contact: { phone: "[redacted]" } } });
  });

  it("writes one summary line per request with route and status, and no patient data", async () => {
    const cap = capture();
    const logger = createLogger({ level: "info", destination: cap.destination });
    // Same database and Redis as the shared runtime, but a capturing logger.
    const rt = { ...t.rt, logger, deps: { ...t.rt.deps, logger } };
    const app = createApp(httpDeps(rt));
    const c = client(app, tenant.tokens.admin);
    const p = phone();
    const name = "日志不该出现";

    const created = await c.post("/v1/contacts", { name, phone: p, attributes: { 备注: "敏感备注内容" } }, { "x-request-id": "log-test-0001" });
    expect(created.status).toBe(201);
    const got = await c.get(`/v1/contacts/${created.body.id}`, { "x-request-id": "log-test-0002" });
    expect(got.status).toBe(200);
    const dup = await c.post("/v1/contacts", { name, phone: p }, { "x-request-id": "log-test-0003" });
    expect(dup.status).toBe(409);
    const listed = await c.get(`/v1/contacts?q=${p}`, { "x-request-id": "log-test-0004" });
    expect(listed.status).toBe(200);
    await client(app).get("/healthz");

    const entries = cap.parsed();
    const requests = entries.filter((e) => e.msg === "request");
    expect(requests.map((e) => [e.requestId, e.method, e.route, e.status])).toEqual([
      ["log-test-0001", "POST", "/v1/contacts", 201],
      ["log-test-0002", "GET", "/v1/contacts/:id", 200],
      ["log-test-0003", "POST", "/v1/contacts", 409],
      ["log-test-0004", "GET", "/v1/contacts", 200],
    ]);
    for (const e of requests) {
      expect(e).toMatchObject({ tenantId: tenant.id, staffId: tenant.staff.admin.id, level: "info", service: "siyu" });
      expect(e.ms).toEqual(expect.any(Number));
    }
    // 4xx are not logged as errors; nothing else was logged.
    expect(entries.filter((e) => e.msg !== "request")).toEqual([]);
    const all = cap.lines.join("\n");
    for (const secret of [p, p.slice(3), name, "敏感备注内容"]) expect(all).not.toContain(secret);
  });
});
