import { Hono } from "hono";
import type { AppEnv, HttpDeps } from "../types";

/** Console pages: staff and roles, assignment strategy, WeCom settings, the sandbox, queues and the audit log (/console/staff, /assignment, /wecom, /sandbox, /queues, /audit). */
export function adminPages(deps: HttpDeps) {
  const app = new Hono<AppEnv>();
  void deps;
  return app;
}
