import { randomBytes } from "node:crypto";
import type { Ctx, ServiceDeps } from "../../src/services/context";
import { systemCtx } from "../../src/services/context";
import { createStaff } from "../../src/services/staff/create";
import { createTenant } from "../../src/services/tenants/create";
import { createToken } from "../../src/services/tokens/tokens";
import type { App } from "../../src/http/app";

export const PASSWORD = "correct-horse-battery";

export type StaffKey = "admin" | "manager" | "marketing" | "consultant" | "consultant2" | "reviewer";

export interface TestTenant {
  id: string;
  slug: string;
  staff: Record<StaffKey, { id: string; email: string }>;
  tokens: Record<StaffKey, string>;
}

const ROLE_OF: Record<StaffKey, "admin" | "manager" | "marketing" | "consultant" | "reviewer"> = {
  admin: "admin",
  manager: "manager",
  marketing: "marketing",
  consultant: "consultant",
  consultant2: "consultant",
  reviewer: "reviewer",
};

/** A service context acting as one of the tenant's staff, signed in through the console (as the console's pages call services). */
export function staffCtx(deps: ServiceDeps, tenant: TestTenant, who: StaffKey): Ctx {
  return { deps, tenantId: tenant.id, actor: { kind: "staff", staffId: tenant.staff[who].id, role: ROLE_OF[who], name: `${who} ${tenant.slug}`, via: "session" }, logger: deps.logger };
}

/** A tenant with one staff member (and API token) of every role, plus a second consultant. */
export async function createTestTenant(deps: ServiceDeps, overrides: { slug?: string } = {}): Promise<TestTenant> {
  const slug = overrides.slug ?? `t-${randomBytes(4).toString("hex")}`;
  const tenant = await createTenant({ deps, input: { slug, name: `Clinic ${slug}` } });
  const ctx = systemCtx(deps, tenant.id, "test");
  const staff = {} as TestTenant["staff"];
  const tokens = {} as TestTenant["tokens"];
  for (const key of Object.keys(ROLE_OF) as StaffKey[]) {
    const email = `${key}@${slug}.test`;
    const s = await createStaff({ ctx, input: { name: `${key} ${slug}`, email, role: ROLE_OF[key], password: PASSWORD, wecomUserId: `${key}-${slug}` } });
    staff[key] = { id: s.id, email };
    tokens[key] = (await createToken({ ctx, input: { staffId: s.id, name: "test" } })).token;
  }
  return { id: tenant.id, slug, staff, tokens };
}

export interface ApiResponse<T = any> {
  status: number;
  body: T;
  headers: Headers;
}

/** JSON calls against the app, as a given token. */
export function client(app: App, token?: string) {
  const call = async (method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<ApiResponse> => {
    const h: Record<string, string> = { ...headers };
    if (token) h.authorization = `Bearer ${token}`;
    let payload: string | undefined;
    if (body !== undefined) {
      payload = typeof body === "string" ? body : JSON.stringify(body);
      h["content-type"] ??= "application/json";
    }
    const res = await app.request(path, { method, headers: h, body: payload });
    const text = await res.text();
    let parsed: unknown = text;
    try {
      parsed = text ? JSON.parse(text) : null;
    } catch {
      // not JSON: keep the text
    }
    return { status: res.status, body: parsed, headers: res.headers };
  };
  return {
    get: (p: string, h?: Record<string, string>) => call("GET", p, undefined, h),
    post: (p: string, b?: unknown, h?: Record<string, string>) => call("POST", p, b, h),
    patch: (p: string, b?: unknown, h?: Record<string, string>) => call("PATCH", p, b, h),
    delete: (p: string, h?: Record<string, string>) => call("DELETE", p, undefined, h),
    call,
  };
}

let seq = 0;
/** A valid mainland mobile number, unique within the run. */
export function phone(): string {
  seq++;
  return `139${String((process.pid * 1000 + seq) % 1e8).padStart(8, "0")}`;
}
