import { OpenAPIHono, z } from "@hono/zod-openapi";
import { planCalendar } from "../../services/delivery/plan-entry";
import { previewCalendar, PreviewInput } from "../../services/delivery/preview";
import { cancelSends, CancelSendsInput, listSends, ListSendsInput, SendView } from "../../services/delivery/sends";
import { IdParam, json, jsonBody, problemResponse, route, validationHook } from "../openapi";
import type { AppEnv } from "../types";

const Stats = z.object({
  candidates: z.number(),
  planned: z.number(),
  skipped: z.number(),
  reasons: z.array(z.object({ reason: z.string(), n: z.number() })),
  movedQuiet: z.number().openapi({ description: "Planned sends moved out of the quiet hours" }),
  late: z.number().openapi({ description: "Planned sends whose time had passed: sent at once" }),
  firstAt: z.string().nullable(),
  lastAt: z.string().nullable(),
  already: z.number().openapi({ description: "Recipients that already have a send of this post" }),
});
const Sample = z.object({
  contactId: z.string().nullable(),
  contactName: z.string().nullable(),
  chatId: z.string().nullable(),
  senderStaffId: z.string().nullable(),
  senderName: z.string().nullable(),
  scheduledAt: z.string(),
  status: z.string(),
  reason: z.string().nullable(),
  moved: z.string().nullable(),
});
const Preview = z
  .object({
    calendarId: z.string(),
    status: z.string(),
    timeZone: z.string(),
    quietHours: z.object({ start: z.string(), end: z.string() }),
    entries: z.array(
      z.object({ key: z.string(), entryId: z.string().nullable(), postId: z.string().nullable(), postStatus: z.string().nullable(), channel: z.enum(["single", "group"]), service: z.boolean(), when: z.unknown(), stats: Stats, sample: z.array(Sample) }),
    ),
    totals: z.object({ planned: z.number(), skipped: z.number(), already: z.number() }),
    conflicts: z.array(z.object({ entry: z.string(), kind: z.string(), n: z.number(), detail: z.string() })),
  })
  .openapi("DeliveryPreview");
const PlanOutcome = z.object({ entryId: z.string().nullable(), key: z.string(), postId: z.string().nullable(), outcome: z.enum(["planned", "not_published", "removed", "no_post", "not_approved"]) }).passthrough();
const Send = SendView.openapi("Send");

/** Scheduling and delivery of calendars: preview, plan now, the sends and their results, cancel. */
export function deliveryRoutes() {
  const app = new OpenAPIHono<AppEnv>({ defaultHook: validationHook });
  app.openapi(
    route("calendars:read", {
      method: "get",
      path: "/calendars/{id}/preview",
      tags: ["delivery"],
      summary: "Who gets what when, before publishing: per entry the recipients planned, skipped (and why), moved out of quiet hours, and a sample",
      description: "Runs the planner against the current contacts, enrollments and quota ledger, then rolls back: nothing is written. A draft calendar previews from its definition.",
      request: { params: IdParam, query: PreviewInput },
      responses: { 200: json(Preview, "The preview"), 404: problemResponse("No such calendar") },
    }),
    async (c) => c.json(await previewCalendar({ ctx: c.get("ctx"), id: c.req.valid("param").id, input: c.req.valid("query") }), 200),
  );
  app.openapi(
    route("calendars:write", {
      method: "post",
      path: "/calendars/{id}/plan",
      tags: ["delivery"],
      summary: "Plan the sends of a published calendar's approved entries now (the minute sweep also does); again adds only new recipients",
      request: { params: IdParam },
      responses: { 200: json(z.object({ entries: z.array(PlanOutcome) }), "Per entry: planned (with counts) or why not"), 404: problemResponse("No such calendar") },
    }),
    async (c) => c.json({ entries: await planCalendar({ ctx: c.get("ctx"), id: c.req.valid("param").id }) }, 200),
  );
  app.openapi(
    route("calendars:write", {
      method: "post",
      path: "/calendars/{id}/cancel-sends",
      tags: ["delivery"],
      summary: "Cancel a calendar's (or one entry's) sends not yet handed to WeCom, with a reason",
      request: { params: IdParam, body: jsonBody(CancelSendsInput) },
      responses: { 200: json(z.object({ cancelled: z.number() }), "How many were cancelled"), 404: problemResponse("No such calendar") },
    }),
    async (c) => c.json(await cancelSends({ ctx: c.get("ctx"), id: c.req.valid("param").id, input: c.req.valid("json") }), 200),
  );
  app.openapi(
    route("calendars:read", {
      method: "get",
      path: "/sends",
      tags: ["delivery"],
      summary: "Sends of a calendar, an entry or a contact, soonest first: status (planned, skipped, queued, sending, sent, failed, over_quota, not_friend, cancelled) and why",
      request: { query: ListSendsInput },
      responses: { 200: json(z.object({ items: z.array(Send), nextCursor: z.string().nullable() }), "A page of sends") },
    }),
    async (c) => c.json(await listSends({ ctx: c.get("ctx"), input: c.req.valid("query") }), 200),
  );
  return app;
}
