import { Hono } from "hono";
import type { AppEnv, HttpDeps } from "../types";
import { followUpPages } from "./consultant-followups";
import { poolPages } from "./consultant-pool";

/**
 * Console pages of consultants' other work: follow-ups (/console/follow-ups) and the lead pool
 * (/console/pool). The workspace, the team workspace, tasks and the lead page are in leads.ts.
 */
export function consultantPages(deps: HttpDeps) {
  const app = new Hono<AppEnv>();
  const tz = deps.services.config.TIMEZONE;
  app.route("/", followUpPages(tz));
  app.route("/", poolPages(tz));
  return app;
}
