import { OpenAPIHono, z } from "@hono/zod-openapi";
import { listAudit, ListAuditInput } from "../../services/audit/list";
import { createClinic, CreateClinicInput, listClinics } from "../../services/clinics/clinics";
import { json, jsonBody, route, validationHook } from "../openapi";
import { eventStats } from "../../services/events/stats";
import type { AppEnv } from "../types";

const ClinicSchema = z.object({ id: z.string(), name: z.string(), city: z.string().nullable(), address: z.string().nullable(), createdAt: z.string() }).openapi("Clinic");
const AuditSchema = z
  .object({
    id: z.number(),
    at: z.string(),
    actorStaffId: z.string().nullable(),
    actorKind: z.string(),
    action: z.string(),
    entityType: z.string(),
    entityId: z.string(),
    before: z.record(z.string(), z.unknown()).nullable(),
    after: z.record(z.string(), z.unknown()).nullable(),
    requestId: z.string().nullable(),
  })
  .openapi("AuditEntry");

export function clinicRoutes() {
  const app = new OpenAPIHono<AppEnv>({ defaultHook: validationHook });
  app.openapi(
    route("clinics:read", { method: "get", path: "/", tags: ["clinics"], summary: "List clinics", responses: { 200: json(z.object({ items: z.array(ClinicSchema) }), "Clinics of the tenant") } }),
    async (c) => c.json({ items: await listClinics({ ctx: c.get("ctx") }) }, 200),
  );
  app.openapi(
    route("clinics:write", { method: "post", path: "/", tags: ["clinics"], summary: "Add a clinic", request: { body: jsonBody(CreateClinicInput) }, responses: { 201: json(ClinicSchema, "The new clinic") } }),
    async (c) => c.json(await createClinic({ ctx: c.get("ctx"), input: c.req.valid("json") }), 201),
  );
  return app;
}

export function auditRoutes() {
  const app = new OpenAPIHono<AppEnv>({ defaultHook: validationHook });
  app.openapi(
    route("audit:read", {
      method: "get",
      path: "/",
      tags: ["audit"],
      summary: "Audit log: who changed what",
      request: { query: ListAuditInput },
      responses: { 200: json(z.object({ items: z.array(AuditSchema), nextCursor: z.string().nullable() }), "Newest first") },
    }),
    async (c) => c.json(await listAudit({ ctx: c.get("ctx"), input: c.req.valid("query") }), 200),
  );
  return app;
}

export function queueRoutes() {
  const app = new OpenAPIHono<AppEnv>({ defaultHook: validationHook });
  app.openapi(
    route("queues:read", {
      method: "get",
      path: "/",
      tags: ["operations"],
      summary: "This tenant's event pipeline: pending, failing, processed in the last hour",
      description: "Counted from PostgreSQL for the caller's tenant only. Queue-wide figures (all tenants) are for operators, at /metrics.",
      responses: {
        200: json(
          z.object({ events: z.object({ pending: z.number(), failing: z.number(), processedLastHour: z.number(), oldestPendingAt: z.string().nullable(), lastError: z.string().nullable() }) }),
          "Counts",
        ),
      },
    }),
    async (c) => c.json({ events: await eventStats({ ctx: c.get("ctx") }) }, 200),
  );
  return app;
}
