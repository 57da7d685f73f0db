import { Hono } from "hono";
import type { AppEnv, HttpDeps } from "../types";
import { calendarPages } from "./content-calendars";
import { reviewPages } from "./content-reviews";
import { sendPages } from "./content-sends";

/** Console pages: calendars (/console/calendars), the review queue (/console/reviews) and send reports (/console/sends). */
export function contentPages(deps: HttpDeps) {
  const app = new Hono<AppEnv>();
  const tz = deps.services.config.TIMEZONE;
  app.route("/", calendarPages(tz));
  app.route("/", reviewPages(tz));
  app.route("/", sendPages(tz));
  return app;
}
