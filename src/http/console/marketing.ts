import { Hono } from "hono";
import type { AppEnv, HttpDeps } from "../types";
import { rulePages } from "./marketing-rules";
import { segmentPages } from "./marketing-segments";

/** Console pages: tag rules (/console/rules, marketing-rules.ts) and segments (/console/segments, marketing-segments.ts). */
export function marketingPages(deps: HttpDeps) {
  const app = new Hono<AppEnv>();
  const tz = deps.services.config.TIMEZONE;
  app.route("/", rulePages(tz));
  app.route("/", segmentPages(tz));
  return app;
}
