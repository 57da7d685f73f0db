import { Hono } from "hono";
import type { AppEnv, HttpDeps } from "../types";
import { assignmentPages } from "./admin-assignment";
import { opsPages } from "./admin-ops";
import { sandboxPages } from "./admin-sandbox";
import { staffPages } from "./admin-staff";
import { wecomPages } from "./admin-wecom";

/**
 * Console pages of managers and admins: staff and roles (/console/staff), the lead settings
 * (/console/assignment), WeCom settings (/console/wecom), the sandbox (/console/sandbox), the
 * queue dashboard (/console/queues) and the audit log (/console/audit).
 */
export function adminPages(deps: HttpDeps) {
  const app = new Hono<AppEnv>();
  const tz = deps.services.config.TIMEZONE;
  app.route("/", staffPages(tz));
  app.route("/", assignmentPages(tz));
  app.route("/", wecomPages(tz));
  app.route("/", sandboxPages(tz));
  app.route("/", opsPages(tz));
  return app;
}
