import { Hono } from "hono";
import type { AppEnv, HttpDeps } from "../types";

/** Console pages: calendars (/console/calendars), the review queue (/console/reviews) and send reports (/console/sends). */
export function contentPages(deps: HttpDeps) {
  const app = new Hono<AppEnv>();
  void deps;
  return app;
}
