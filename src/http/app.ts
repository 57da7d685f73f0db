import { OpenAPIHono } from "@hono/zod-openapi";
import { bodyLimit } from "hono/body-limit";
import { constantTimeEqual } from "../domain/pii/crypto";
import { registry } from "../metrics";
import { consolePages } from "./console/pages";
import { docsRoutes } from "./docs";
import { authenticate } from "./middleware/auth";
import { LoginThrottle } from "./middleware/login-throttle";
import { requestContext } from "./middleware/request";
import { problem, renderError } from "./problem";
import { auditRoutes, clinicRoutes, queueRoutes } from "./routes/admin";
import { authRoutes, meRoutes } from "./routes/auth";
import { contactRoutes } from "./routes/contacts";
import { consentRoutes } from "./routes/consent";
import { linkRoutes } from "./routes/links";
import { eventRoutes } from "./routes/events";
import { staffRoutes, tokenRoutes } from "./routes/staff";
import { wecomCallbackRoutes, wecomRoutes } from "./routes/wecom";
import { segmentRoutes } from "./routes/segments";
import { tagRuleRoutes } from "./routes/tag-rules";
import { complianceRoutes } from "./routes/compliance";
import { postRoutes, reviewRoutes } from "./routes/posts";
import { deliveryRoutes } from "./routes/delivery";
import { calendarEnrollmentRoutes } from "./routes/calendar-enrollment";
import { calendarRoutes } from "./routes/calendars";
import { leadRoutes, leadSettingsRoutes, offboardRoutes, sopTemplateRoutes, taskRoutes, workspaceRoutes } from "./routes/leads";
import { analyticsSettingsRoutes, contactConversionRoutes, conversionRoutes, followUpRoutes } from "./routes/conversions";
import { surveyRoutes } from "./routes/surveys";
import { metricRoutes } from "./routes/metrics";
import { attributionRoutes } from "./routes/attribution";
import { alertRoutes } from "./routes/alerts";
import type { AppEnv, HttpDeps } from "./types";
import { validationHook } from "./openapi";

export interface AppOptions {
  /** Shown under the console sign-in form (the demo's credentials). */
  demoHint?: string | undefined;
}

export function createApp(deps: HttpDeps, opts: AppOptions = {}) {
  const config = deps.services.config;
  const app = new OpenAPIHono<AppEnv>({ defaultHook: validationHook });
  app.use("*", requestContext(deps.services.logger));

  app.get("/healthz", (c) => c.json({ status: "ok" }));
  app.get("/readyz", async (c) => {
    const checks = await deps.checkReady();
    const ok = Object.values(checks).every((x) => x.ok);
    return c.json({ status: ok ? "ready" : "not ready", checks }, ok ? 200 : 503);
  });
  app.get("/metrics", async (c) => {
    if (config.METRICS_TOKEN) {
      const auth = c.req.header("authorization") ?? "";
      if (!constantTimeEqual(auth, `Bearer ${config.METRICS_TOKEN}`)) return problem(c, 401, "UNAUTHENTICATED", "send the METRICS_TOKEN as a bearer token");
    }
    await deps.sampleMetrics?.().catch(() => {});
    return c.body(await registry.metrics(), 200, { "content-type": registry.contentType });
  });

  // Body limits: JSON bodies are small; CSV imports get their own larger limit.
  const csvImports = new Set(["/v1/contacts/import", "/v1/conversions/import"]);
  const tooLarge = (max: number) => (c: Parameters<typeof problem>[0]) => problem(c, 413, "PAYLOAD_TOO_LARGE", `the body is over the ${max}-byte limit`);
  app.use("/v1/*", async (c, next) => {
    const max = csvImports.has(c.req.path) ? config.IMPORT_LIMIT_BYTES : config.BODY_LIMIT_BYTES;
    return bodyLimit({ maxSize: max, onError: tooLarge(max) })(c, next);
  });
  // JSON everywhere except the CSV imports: refuse other media types with a clear 415.
  app.use("/v1/*", async (c, next) => {
    // Body-less POSTs (e.g. creating a referral code) need no content type.
    const length = c.req.header("content-length");
    const hasBody = length !== undefined ? Number(length) > 0 : c.req.header("transfer-encoding") !== undefined || (c.req.raw.body !== null && c.req.header("content-type") !== undefined);
    if (hasBody && ["POST", "PUT", "PATCH"].includes(c.req.method) && !csvImports.has(c.req.path)) {
      const type = c.req.header("content-type") ?? "";
      if (!/^application\/(.+\+)?json\b/i.test(type)) {
        return problem(c, 415, "UNSUPPORTED_MEDIA_TYPE", "send the body as application/json", [{ field: "content-type", message: "must be application/json" }]);
      }
    }
    return next();
  });

  const throttle = new LoginThrottle(() => deps.services.now().getTime());
  app.route("/v1/auth", authRoutes(deps, throttle));
  app.use("/v1/*", async (c, next) => (c.req.path.startsWith("/v1/auth/") ? next() : authenticate(deps)(c, next)));
  app.route("/v1/me", meRoutes());
  app.route("/v1/contacts", contactRoutes(config.IMPORT_LIMIT_BYTES));
  app.route("/v1/contacts", consentRoutes());
  app.route("/v1/events", eventRoutes());
  app.route("/v1/staff", staffRoutes());
  app.route("/v1/tokens", tokenRoutes());
  app.route("/v1/clinics", clinicRoutes());
  app.route("/v1/audit", auditRoutes());
  app.route("/v1/queues", queueRoutes());
  app.route("/v1/wecom", wecomRoutes());
  app.route("/v1/segments", segmentRoutes());
  app.route("/v1/tag-rules", tagRuleRoutes());
  app.route("/v1/compliance", complianceRoutes());
  app.route("/v1/posts", postRoutes());
  app.route("/v1/reviews", reviewRoutes());
  app.route("/v1/leads", leadRoutes());
  app.route("/v1/lead-settings", leadSettingsRoutes());
  app.route("/v1/workspace", workspaceRoutes());
  app.route("/v1/staff", offboardRoutes());
  app.route("/v1/tasks", taskRoutes());
  app.route("/v1/sop-templates", sopTemplateRoutes());
  app.route("/v1/calendars", calendarRoutes());
  app.route("/v1/calendars", calendarEnrollmentRoutes());
  app.route("/v1", deliveryRoutes());
  app.route("/v1", conversionRoutes(config.IMPORT_LIMIT_BYTES));
  app.route("/v1/follow-ups", followUpRoutes());
  app.route("/v1/contacts", contactConversionRoutes());
  app.route("/v1/analytics/settings", analyticsSettingsRoutes());
  app.route("/v1/metrics", metricRoutes());
  app.route("/v1/attribution", attributionRoutes());
  app.route("/v1/alerts", alertRoutes());
  app.route("/wecom/callback", wecomCallbackRoutes(deps));
  // Tracked links: public (patients click them in WeChat), so outside /v1 and its auth.
  app.route("/l", linkRoutes(deps));
  // Satisfaction surveys (NPS) after a visit: public too, the link's token is the key.
  app.route("/s", surveyRoutes(deps));

  app.openAPIRegistry.registerComponent("securitySchemes", "bearer", { type: "http", scheme: "bearer", description: "An API token (sy_…) or ADMIN_TOKEN" });
  app.openAPIRegistry.registerComponent("securitySchemes", "session", { type: "apiKey", in: "cookie", name: "siyu_session" });
  app.doc31("/openapi.json", {
    openapi: "3.1.0",
    info: {
      title: "Siyu API",
      version: "1",
      description:
        "私域 Siyu: contacts, events and the private-domain loop. Errors are application/problem+json with `errors[].field` naming each failing field. Each operation lists the roles allowed in `x-roles`.",
    },
    servers: [{ url: config.publicUrl }],
  });
  app.route("/docs", docsRoutes());
  app.route("/", consolePages(deps, throttle, { demoHint: opts.demoHint }));

  app.notFound((c) => problem(c, 404, "NOT_FOUND", `no route for ${c.req.method} ${c.req.path}`));
  app.onError((err, c) => {
    const { response, serverError } = renderError(c, err);
    if (serverError) c.get("logger")?.error({ err, route: c.req.path }, "request failed");
    return response;
  });
  return app;
}

export type App = ReturnType<typeof createApp>;
