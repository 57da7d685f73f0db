import { OpenAPIHono, z } from "@hono/zod-openapi";
import { acknowledgeAlert, listAlerts, ListAlertsInput } from "../../services/alerts/episodes";
import { AlertRuleInput, AlertRulePatch, createAlertRule, deleteAlertRule, listAlertRules, updateAlertRule } from "../../services/alerts/rules";
import { IdParam, json, jsonBody, problemResponse, route, validationHook } from "../openapi";
import type { AppEnv } from "../types";

const Rule = z
  .object({
    id: z.string(),
    name: z.string(),
    metric: z.string(),
    condition: z.record(z.string(), z.unknown()),
    scope: z.record(z.string(), z.unknown()),
    enabled: z.boolean(),
    openEpisodes: z.number(),
    createdByStaffId: z.string().nullable(),
    createdAt: z.string(),
    updatedAt: z.string(),
  })
  .openapi("AlertRule");
const Episode = z
  .object({
    id: z.string(),
    ruleId: z.string(),
    ruleName: z.string(),
    metric: z.string(),
    status: z.enum(["open", "closed"]),
    scopeKey: z.string(),
    clinicId: z.string().nullable(),
    clinicName: z.string().nullable(),
    openedAt: z.string(),
    lastSeenAt: z.string(),
    closedAt: z.string().nullable(),
    value: z.number().nullable(),
    baseline: z.number().nullable(),
    detail: z.record(z.string(), z.unknown()),
    notifiedAt: z.string().nullable(),
    acknowledgedAt: z.string().nullable(),
    acknowledgedByStaffId: z.string().nullable(),
  })
  .openapi("AlertEpisode");

/** Anomaly alerts (数据异常预警): rules (managers, admins) and their episodes (the dashboard). */
export function alertRoutes() {
  const app = new OpenAPIHono<AppEnv>({ defaultHook: validationHook });
  app.openapi(
    route("metrics:read", {
      method: "get",
      path: "/",
      tags: ["alerts"],
      summary: "Alert episodes: open ones first, then closed, newest first (cursor-paged), with the number open",
      request: { query: ListAlertsInput },
      responses: { 200: json(z.object({ items: z.array(Episode), nextCursor: z.string().nullable(), openCount: z.number() }), "A page of episodes") },
    }),
    async (c) => c.json(await listAlerts({ ctx: c.get("ctx"), input: c.req.valid("query") }), 200),
  );
  app.openapi(
    route("analytics:manage", {
      method: "post",
      path: "/{id}/ack",
      tags: ["alerts"],
      summary: "Acknowledge an alert episode (seen, being handled); it still closes by itself when the metric recovers",
      request: { params: IdParam },
      responses: { 200: json(Episode, "The episode"), 404: problemResponse("No such alert") },
    }),
    async (c) => c.json(await acknowledgeAlert({ ctx: c.get("ctx"), id: c.req.valid("param").id }), 200),
  );
  app.openapi(
    route("analytics:manage", { method: "get", path: "/rules", tags: ["alerts"], summary: "Alert rules, oldest first, with their open episodes", responses: { 200: json(z.object({ items: z.array(Rule) }), "Rules") } }),
    async (c) => c.json(await listAlertRules({ ctx: c.get("ctx") }), 200),
  );
  app.openapi(
    route("analytics:manage", {
      method: "post",
      path: "/rules",
      tags: ["alerts"],
      summary: "Add an alert rule",
      description: "Evaluated every 15 minutes; when it fails, managers and admins get one WeCom app message per episode. 422 names each failing field (condition.pct, scope.clinicId, …).",
      request: { body: jsonBody(AlertRuleInput) },
      responses: { 201: json(Rule, "The new rule") },
    }),
    async (c) => c.json(await createAlertRule({ ctx: c.get("ctx"), input: c.req.valid("json") }), 201),
  );
  app.openapi(
    route("analytics:manage", {
      method: "patch",
      path: "/rules/{id}",
      tags: ["alerts"],
      summary: "Change an alert rule (fields left out stay); a changed metric, condition or scope, or switching it off, closes its open episodes",
      request: { params: IdParam, body: jsonBody(AlertRulePatch) },
      responses: { 200: json(Rule, "The rule"), 404: problemResponse("No such rule") },
    }),
    async (c) => c.json(await updateAlertRule({ ctx: c.get("ctx"), id: c.req.valid("param").id, input: c.req.valid("json") }), 200),
  );
  app.openapi(
    route("analytics:manage", {
      method: "delete",
      path: "/rules/{id}",
      tags: ["alerts"],
      summary: "Delete an alert rule and its episodes (switch it off with PATCH to keep the history)",
      request: { params: IdParam },
      responses: { 200: json(Rule, "The deleted rule"), 404: problemResponse("No such rule") },
    }),
    async (c) => c.json(await deleteAlertRule({ ctx: c.get("ctx"), id: c.req.valid("param").id }), 200),
  );
  return app;
}
