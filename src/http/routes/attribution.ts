import { OpenAPIHono, z } from "@hono/zod-openapi";
import { attribution, AttributionInput } from "../../services/attribution/attribute";
import { json, route, validationHook } from "../openapi";
import type { AppEnv } from "../types";

const Credit = z.object({ conversions: z.number(), revenue: z.number() });
const Item = z
  .object({
    key: z.string().nullable().openapi({ description: "entry id, calendar id, `kind:id` of the content, or staff id (null: conversions without a consultant)" }),
    label: z.string().nullable(),
    conversions: z.number().openapi({ description: "Conversions credited under the model (fractions for linear)" }),
    revenue: z.number().openapi({ description: "Revenue credited under the model (yuan)" }),
    touches: z.number(),
    contacts: z.number(),
    kind: z.enum(["send_click", "article_read", "livestream"]).optional(),
    calendarId: z.string().nullable().optional(),
    calendarName: z.string().nullable().optional(),
    entryId: z.string().nullable().optional(),
    entryKey: z.string().nullable().optional(),
    postId: z.string().nullable().optional(),
    totalConversions: z.number().optional(),
    totalRevenue: z.number().optional(),
    unattributedConversions: z.number().optional(),
    byKind: z.record(z.string(), Credit).optional(),
  })
  .openapi("AttributionItem");
const Result = z
  .object({
    from: z.string(),
    to: z.string(),
    model: z.enum(["last_touch", "linear"]),
    by: z.enum(["entry", "calendar", "content", "consultant"]),
    windowDays: z.number(),
    conversions: Credit,
    attributed: Credit,
    unattributed: Credit,
    items: z.array(Item),
    outsideCalendars: Credit.optional(),
  })
  .openapi("Attribution");

export function attributionRoutes() {
  const app = new OpenAPIHono<AppEnv>({ defaultHook: validationHook });
  app.openapi(
    route("metrics:read", {
      method: "get",
      path: "/",
      tags: ["metrics"],
      summary: "Conversions credited to content touches (link clicks on calendar sends, article reads, livestreams) by last touch or linearly",
      description:
        "A conversion is a converted consultation or a purchase (a purchase within 24 hours after a converted consultation of the same contact is the same deal). Touches of the same contact within `windowDays` before it (the tenant's attribution window unless given) share it: last touch gives it all to the latest, linear in equal parts; revenue follows the same shares. `by`: entry (calendar entry), calendar, content (every touched piece of content), consultant (the conversion's consultant, with all their conversions and the credit by touch kind).",
      request: { query: AttributionInput },
      responses: { 200: json(Result, "Totals and the credit per key, highest first") },
    }),
    async (c) => c.json(await attribution({ ctx: c.get("ctx"), input: c.req.valid("query") }), 200),
  );
  return app;
}
