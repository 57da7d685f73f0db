import type { MiddlewareHandler } from "hono";
import { routePath } from "hono/route";
import { randomUUID } from "node:crypto";
import type { Logger } from "../../logger";
import { httpDuration, httpRequests } from "../../metrics";
import type { AppEnv } from "../types";

const ID_RE = /^[A-Za-z0-9._-]{8,128}$/;

/** Request id (taken from X-Request-Id when sane), a child logger, metrics and one summary log line per request. */
export function requestContext(logger: Logger): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const incoming = c.req.header("x-request-id");
    const requestId = incoming && ID_RE.test(incoming) ? incoming : randomUUID();
    c.set("requestId", requestId);
    const log = logger.child({ requestId });
    c.set("logger", log);
    const started = performance.now();
    await next();
    c.header("X-Request-Id", requestId);
    const ms = performance.now() - started;
    const route = routePath(c) || "unmatched";
    httpRequests.inc({ method: c.req.method, route, status: String(c.res.status) });
    httpDuration.observe({ method: c.req.method, route }, ms / 1000);
    if (!c.req.path.startsWith("/healthz") && !c.req.path.startsWith("/metrics")) {
      const p = c.get("principal");
      log.info({ method: c.req.method, route, status: c.res.status, ms: Math.round(ms * 10) / 10, tenantId: p?.tenantId, staffId: p?.staffId }, "request");
    }
  };
}
