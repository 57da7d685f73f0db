import type { MiddlewareHandler } from "hono";
import { getCookie } from "hono/cookie";
import { authenticateSession, authenticateToken } from "../../services/auth/authenticate";
import { problem } from "../problem";
import type { AppEnv, HttpDeps } from "../types";

export const SESSION_COOKIE = "siyu_session";

/**
 * Who is calling: a bearer API token, or a console session cookie. Sets `principal` and a
 * tenant-scoped service `ctx`. Cookie-authenticated writes must come from our own origin (CSRF).
 */
export function authenticate(deps: HttpDeps, opts: { allowAnonymous?: boolean } = {}): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const now = deps.services.now();
    const header = c.req.header("authorization");
    const unauthenticated = (detail: string) => {
      c.header("WWW-Authenticate", 'Bearer realm="siyu"');
      return problem(c, 401, "UNAUTHENTICATED", detail);
    };
    let principal = null;
    if (header !== undefined) {
      const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
      if (!m) return unauthenticated("the Authorization header must be `Bearer <token>`");
      principal = await authenticateToken(deps.services.db, m[1]!, now);
      if (!principal) return unauthenticated("the bearer token is unknown, revoked or expired");
    } else {
      const cookie = getCookie(c, SESSION_COOKIE);
      if (cookie) {
        principal = await authenticateSession(deps.services.db, cookie, now);
        if (principal && !["GET", "HEAD", "OPTIONS"].includes(c.req.method) && !sameOrigin(c.req.header("origin") ?? refererOrigin(c.req.header("referer")), c.req.url, deps.services.config.publicUrl)) {
          // Browsers send Origin on every cross-site and same-site POST; no Origin and no Referer
          // on a cookie-authenticated write means we cannot tell where it came from.
          return problem(c, 403, "FORBIDDEN", "cross-site request refused");
        }
      }
    }
    if (!principal) {
      if (opts.allowAnonymous) return next();
      return unauthenticated("sign in or send `Authorization: Bearer <token>`");
    }
    c.set("principal", principal);
    c.set("ctx", {
      deps: deps.services,
      tenantId: principal.tenantId,
      actor: { kind: "staff", staffId: principal.staffId, role: principal.role, name: principal.name, via: principal.via },
      requestId: c.get("requestId"),
      logger: c.get("logger"),
    });
    return next();
  };
}

function refererOrigin(referer: string | undefined): string | undefined {
  if (!referer) return undefined;
  try {
    return new URL(referer).origin;
  } catch {
    return undefined;
  }
}

function sameOrigin(origin: string | undefined, requestUrl: string, publicUrl: string): boolean {
  if (!origin) return false;
  return origin === new URL(requestUrl).origin || origin === new URL(publicUrl).origin;
}
