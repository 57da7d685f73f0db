import { OpenAPIHono, z } from "@hono/zod-openapi";
import { enrollByHand, EnrollInput, listEnrollments, ListEnrollmentsInput, unenrollByHand, UnenrollInput } from "../../services/calendars/enrollment";
import { calendarReport, CalendarReportInput } from "../../services/calendars/report";
import { IdParam, json, jsonBody, problemResponse, route, validationHook } from "../openapi";
import type { AppEnv } from "../types";

const Enrollment = z
  .object({ id: z.string(), calendarId: z.string(), contactId: z.string(), contactName: z.string().nullable(), enrolledAt: z.string(), source: z.string(), sourceRef: z.string().nullable(), endedAt: z.string().nullable(), endReason: z.string().nullable() })
  .openapi("CalendarEnrollment");
const EntryReport = z
  .object({
    entryId: z.string(),
    key: z.string(),
    postId: z.string().nullable(),
    removed: z.boolean(),
    planned: z.number(),
    byStatus: z.record(z.string(), z.number()),
    skipped: z.array(z.object({ reason: z.string(), n: z.number() })),
    sent: z.number(),
    failed: z.number(),
    clickedRecipients: z.number(),
    clicks: z.number(),
    conversions: z.number(),
    revenue: z.number(),
    lastTouchConversions: z.number().openapi({ description: "Conversions credited to the entry's link clicks by last touch over all content touches, within the tenant's attribution window (touchWindowDays)" }),
    linearConversions: z.number().openapi({ description: "The same, credited linearly (equal shares of each conversion across its touches)" }),
    attributedRevenue: z.number().openapi({ description: "Revenue credited by last touch" }),
    linearRevenue: z.number().openapi({ description: "Revenue credited linearly" }),
  })
  .openapi("CalendarEntryReport");

/** Enrollment in relative calendars and calendar reports, under /v1/calendars/{id}. */
export function calendarEnrollmentRoutes() {
  const app = new OpenAPIHono<AppEnv>({ defaultHook: validationHook });
  app.openapi(
    route("calendars:read", {
      method: "get",
      path: "/{id}/enrollments",
      tags: ["calendars"],
      summary: "Contacts enrolled in a relative calendar, newest first (active=true|false to filter)",
      request: { params: IdParam, query: ListEnrollmentsInput },
      responses: { 200: json(z.object({ items: z.array(Enrollment) }), "Enrollments"), 404: problemResponse("No such calendar") },
    }),
    async (c) => c.json(await listEnrollments({ ctx: c.get("ctx"), id: c.req.valid("param").id, input: c.req.valid("query") }), 200),
  );
  app.openapi(
    route("calendars:enroll", {
      method: "post",
      path: "/{id}/enrollments",
      tags: ["calendars"],
      summary: "Enroll a contact in a relative calendar (day N after now), e.g. aftercare the patient asked for",
      request: { params: IdParam, body: jsonBody(EnrollInput) },
      responses: { 201: json(Enrollment, "The enrollment"), 404: problemResponse("No such calendar"), 409: problemResponse("Already enrolled") },
    }),
    async (c) => c.json(await enrollByHand({ ctx: c.get("ctx"), id: c.req.valid("param").id, input: c.req.valid("json") }), 201),
  );
  app.openapi(
    route("calendars:enroll", {
      method: "post",
      path: "/{id}/enrollments/end",
      tags: ["calendars"],
      summary: "End a contact's enrollment early, with a reason: sends still planned are cancelled",
      request: { params: IdParam, body: jsonBody(UnenrollInput) },
      responses: { 200: json(z.object({ ended: z.number() }), "How many ended"), 404: problemResponse("No such calendar or enrollment") },
    }),
    async (c) => c.json(await unenrollByHand({ ctx: c.get("ctx"), id: c.req.valid("param").id, input: c.req.valid("json") }), 200),
  );
  app.openapi(
    route("calendars:read", {
      method: "get",
      path: "/{id}/report",
      tags: ["calendars"],
      summary: "Per entry: recipients planned, sent, failed and skipped (with reasons), clicked, conversions after the send (last send), and content attribution (last touch and linear)",
      request: { params: IdParam, query: CalendarReportInput },
      responses: { 200: json(z.object({ calendarId: z.string(), attributionDays: z.number(), touchWindowDays: z.number(), entries: z.array(EntryReport) }), "One row per entry"), 404: problemResponse("No such calendar") },
    }),
    async (c) => c.json(await calendarReport({ ctx: c.get("ctx"), id: c.req.valid("param").id, input: c.req.valid("query") }), 200),
  );
  return app;
}
