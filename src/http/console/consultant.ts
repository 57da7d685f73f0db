import { Hono } from "hono";
import type { AppEnv, HttpDeps } from "../types";

/** Console pages: follow-ups (/console/follow-ups) and the lead pool (/console/pool). */
export function consultantPages(deps: HttpDeps) {
  const app = new Hono<AppEnv>();
  void deps;
  return app;
}
