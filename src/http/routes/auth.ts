import { OpenAPIHono, z } from "@hono/zod-openapi";
import type { Context } from "hono";
import { deleteCookie, getCookie, setCookie } from "hono/cookie";
import { AppError } from "../../errors";
import type { LoginThrottle } from "../middleware/login-throttle";
import { signIn, signOut } from "../../services/auth/authenticate";
import { SESSION_COOKIE } from "../middleware/auth";
import { json, jsonBody, problemResponse, validationHook } from "../openapi";
import type { AppEnv, HttpDeps } from "../types";

export const LoginInput = z.object({
  tenant: z.string().min(1).max(64).openapi({ example: "demo" }),
  email: z.string().min(3).max(200).openapi({ example: "admin@demo.siyu.local" }),
  password: z.string().min(1).max(200),
});

const Me = z.object({ staffId: z.string(), name: z.string(), role: z.string(), tenantId: z.string(), tenant: z.string(), via: z.string() }).openapi("Me");

/** Session cookies: HttpOnly, SameSite=Lax, Secure when served over https. */
export function setSessionCookie(c: Parameters<typeof setCookie>[0], deps: HttpDeps, value: string, expires: Date) {
  setCookie(c, SESSION_COOKIE, value, {
    httpOnly: true,
    sameSite: "Lax",
    secure: deps.services.config.publicUrl.startsWith("https://"),
    path: "/",
    expires,
  });
}

/** Sign in, counting failures per account and per address; throws 429 when throttled. */
export async function throttledSignIn(c: Context, deps: HttpDeps, throttle: LoginThrottle, input: Parameters<typeof signIn>[1]) {
  const account = `${input.tenant.trim().toLowerCase()}/${input.email.trim().toLowerCase()}`;
  const address = clientAddress(c);
  const wait = throttle.retryAfter(account, address);
  if (wait > 0) {
    c.header("Retry-After", String(wait));
    throw new AppError("TOO_MANY_REQUESTS", `too many failed sign-ins; try again in ${Math.ceil(wait / 60)} minutes`);
  }
  try {
    const s = await signIn(deps.services.db, input, { now: deps.services.now(), ttlHours: deps.services.config.SESSION_TTL_HOURS });
    throttle.succeed(account);
    return s;
  } catch (err) {
    if (err instanceof AppError && err.code === "UNAUTHENTICATED") throttle.fail(account, address);
    throw err;
  }
}

function clientAddress(c: Context): string {
  const info = (c.env as { incoming?: { socket?: { remoteAddress?: string } } } | undefined)?.incoming?.socket?.remoteAddress;
  return info ?? "unknown";
}

/** Sign-in and sign-out, open to anonymous callers. */
export function authRoutes(deps: HttpDeps, throttle: LoginThrottle) {
  const app = new OpenAPIHono<AppEnv>({ defaultHook: validationHook });
  app.openapi(
    {
      method: "post",
      path: "/login",
      tags: ["auth"],
      summary: "Console sign-in: sets a session cookie",
      request: { body: jsonBody(LoginInput) },
      responses: { 200: json(Me, "Signed in"), 401: problemResponse("Wrong clinic, email or password"), 429: problemResponse("Too many failed attempts; Retry-After says when to try again") },
    },
    async (c) => {
      const input = c.req.valid("json");
      const s = await throttledSignIn(c, deps, throttle, { ...input, userAgent: c.req.header("user-agent") });
      setSessionCookie(c, deps, s.cookie, s.expiresAt);
      const p = s.principal;
      return c.json({ staffId: p.staffId, name: p.name, role: p.role, tenantId: p.tenantId, tenant: p.tenantSlug, via: p.via }, 200);
    },
  );
  app.openapi(
    { method: "post", path: "/logout", tags: ["auth"], summary: "End the console session", responses: { 204: { description: "Signed out" } } },
    async (c) => {
      const cookie = getCookie(c, SESSION_COOKIE);
      if (cookie) await signOut(deps.services.db, cookie);
      deleteCookie(c, SESSION_COOKIE, { path: "/" });
      return c.body(null, 204);
    },
  );
  return app;
}

export function meRoutes() {
  const app = new OpenAPIHono<AppEnv>({ defaultHook: validationHook });
  app.openapi(
    {
      method: "get",
      path: "/",
      tags: ["auth"],
      summary: "Who am I",
      security: [{ bearer: [] }, { session: [] }],
      responses: { 200: json(Me, "The caller") },
    },
    (c) => {
      const p = c.get("principal");
      return c.json({ staffId: p.staffId, name: p.name, role: p.role, tenantId: p.tenantId, tenant: p.tenantSlug, via: p.via }, 200);
    },
  );
  return app;
}
