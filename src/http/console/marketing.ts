import { Hono } from "hono";
import type { AppEnv, HttpDeps } from "../types";

/** Console pages: tag rules (/console/rules) and segments (/console/segments). */
export function marketingPages(deps: HttpDeps) {
  const app = new Hono<AppEnv>();
  void deps;
  return app;
}
