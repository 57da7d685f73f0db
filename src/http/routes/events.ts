import { OpenAPIHono, z } from "@hono/zod-openapi";
import { EventInput, MAX_EVENTS_PER_BATCH } from "../../domain/events/types";
import { eventsIngested } from "../../metrics";
import { ingestEvents } from "../../services/events/ingest";
import { listEvents, ListEventsInput } from "../../services/events/list";
import { json, jsonBody, route, validationHook } from "../openapi";
import type { AppEnv } from "../types";

// The body is validated with the very schema the service uses, so route-level errors name every
// bad field of every event (events[3].data.amount), and the document shows each type's data.
const IngestBody = z.object({ events: z.array(EventInput).min(1, "send at least one event").max(MAX_EVENTS_PER_BATCH, `at most ${MAX_EVENTS_PER_BATCH} events per request`) }).openapi("EventBatch");
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
