import { OpenAPIHono, z } from "@hono/zod-openapi";
import { EVENT_TYPES, MAX_EVENTS_PER_BATCH } from "../../domain/events/types";
import { eventsIngested } from "../../metrics";
import { ingestEvents } from "../../services/events/ingest";
import { listEvents, ListEventsInput } from "../../services/events/list";
import { json, jsonBody, route, validationHook } from "../openapi";
import type { AppEnv } from "../types";

const EventInputDoc = z
  .object({
    type: z.enum(EVENT_TYPES as [string, ...string[]]),
    contactId: z.uuid().optional(),
    externalUserId: z.string().optional(),
    phone: z.string().optional(),
    occurredAt: z.string().openapi({ example: "2026-11-23T10:00:00+08:00" }),
    idempotencyKey: z.string().openapi({ example: "crm-visit-88213" }),
    data: z.record(z.string(), z.unknown()).openapi({
      description:
        "Per type: message_received {text}; article_read {articleId, topic?, dwellSeconds?}; livestream_attended {liveId, minutes}; appointment_booked {at, item?}; visit {clinicId?, item?}; purchase {amount (yuan), items}; consultation_outcome {outcome: converted|lost, amount?, items?, lostReason?}; group_joined/group_left {chatId}; contact_added {state?, staffUserId?}; contact_deleted {by?}",
    }),
  })
  .openapi("EventInput");

const IngestBody = z.object({ events: z.array(EventInputDoc).min(1).max(MAX_EVENTS_PER_BATCH) }).openapi("EventBatch");
const IngestResult = z
  .object({ accepted: z.number(), duplicates: z.number(), ids: z.array(z.string()), enqueued: z.boolean() })
  .openapi("EventBatchResult");
const EventView = z
  .object({
    id: z.string(),
    contactId: z.string(),
    type: z.string(),
    occurredAt: z.string(),
    receivedAt: z.string(),
    source: z.string(),
    idempotencyKey: z.string(),
    data: z.record(z.string(), z.unknown()),
    processedAt: z.string().nullable(),
  })
  .openapi("Event");

export function eventRoutes() {
  const app = new OpenAPIHono<AppEnv>({ defaultHook: validationHook });

  app.openapi(
    route("events:write", {
      method: "post",
      path: "/",
      tags: ["events"],
      summary: "Record events (one or a batch of up to 1,000)",
      description:
        "Each event is stored before the response, then queued for the rules engine. A repeated idempotencyKey is accepted and counted as a duplicate, never stored twice. One invalid event refuses the whole batch (422 naming each field) and stores nothing. Unknown externalUserId or phone creates the contact.",
      request: { body: jsonBody(IngestBody) },
      responses: { 202: json(IngestResult, "Stored; `ids` has one id per event, in order") },
    }),
    async (c) => {
      // The service validates each event against its own type's schema (the body schema here documents it).
      const result = await ingestEvents({ ctx: c.get("ctx"), input: c.req.valid("json") });
      eventsIngested.inc({ outcome: "accepted" }, result.accepted);
      eventsIngested.inc({ outcome: "duplicate" }, result.duplicates);
      return c.json(result, 202);
    },
  );

  app.openapi(
    route("events:read", {
      method: "get",
      path: "/",
      tags: ["events"],
      summary: "A contact's timeline",
      request: { query: ListEventsInput },
      responses: { 200: json(z.object({ items: z.array(EventView), nextCursor: z.string().nullable() }).openapi("EventPage"), "Newest first") },
    }),
    async (c) => c.json(await listEvents({ ctx: c.get("ctx"), input: c.req.valid("query") }), 200),
  );
  return app;
}
