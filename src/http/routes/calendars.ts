import { OpenAPIHono, z } from "@hono/zod-openapi";
import { KEY_RE } from "../../domain/calendars/schema";
import { createCalendar, getCalendar, lintCalendar, listCalendars, ListCalendarsQuery, publishCalendar, updateCalendar } from "../../services/calendars/calendars";
import { IdParam, json, jsonBody, problemResponse, route, validationHook } from "../openapi";
import type { AppEnv } from "../types";

const FORMAT =
  "The calendar as written in a content-calendars/ file (content-calendars/README.md): name, description, timeZone, quietHours, startDate, endDate, audience {segment | groups {tags, ids} | enrollment {on, endOn}}, owner, variables {name: {sample, value, fallback}}, entries [{key, when {date | weekday | monthday | birthday | day, time}, kind, channel, service, template, variables, conditions {skipIf, onlyIf}, owner, link, image, miniprogram, poll}].";

/**
 * Bodies are checked by the service with the same schema as calendar files (src/domain/calendars),
 * so every error names its field the same way (`entries[3].template`); here only key and source.
 */
const keyField = z.string().regex(KEY_RE, "lowercase letters, digits, - and _ (at most 64, starting with a letter or digit), e.g. day1-tips").openapi({ description: "Stable key: lowercase letters, digits, - and _ (a file's key is its name without .yaml)", example: "acne-community-7d" });
const sourceField = z.enum(["file", "api"]).optional().openapi({ description: "file: from content-calendars/ (siyu calendar publish); api (default)" });
const CreateBody = z.looseObject({ key: keyField, source: sourceField }).openapi("CreateCalendar", { description: `${FORMAT} Plus key and source.` });
const UpdateBody = z.looseObject({ key: keyField.optional(), source: sourceField }).openapi("UpdateCalendar", { description: `${FORMAT} The key cannot change.` });
const LintBody = z.looseObject({}).openapi("LintCalendar", { description: FORMAT });

const Entry = z.object({
  id: z.string(),
  key: z.string(),
  when: z.record(z.string(), z.unknown()).openapi({ description: "{kind: at, at} | {kind: weekday, weekday, time} | {kind: monthday, day, time} | {kind: birthday, daysBefore, time} | {kind: relative, day, time}; local times" }),
  kind: z.string(),
  channel: z.enum(["single", "group"]),
  service: z.boolean(),
  ownerStaffId: z.string().nullable(),
  conditions: z.record(z.string(), z.unknown()).nullable(),
  postId: z.string().nullable(),
  postStatus: z.string().nullable(),
  calendarVersion: z.number(),
  removedAt: z.string().nullable(),
});
const PublishedEntry = z.object({
  key: z.string(),
  entryId: z.string(),
  change: z.enum(["new", "changed", "kept", "removed"]),
  postId: z.string().nullable(),
  postStatus: z.string().nullable(),
  findings: z.number(),
  blocking: z.boolean(),
});
const Publish = z
  .object({ calendarId: z.string(), key: z.string(), version: z.number(), unchanged: z.boolean().openapi({ description: "The definition was already published as it is" }), entries: z.array(PublishedEntry) })
  .openapi("CalendarPublish");
const Calendar = z
  .object({
    id: z.string(),
    key: z.string(),
    name: z.string(),
    source: z.enum(["file", "api"]),
    kind: z.enum(["dated", "relative"]),
    status: z.enum(["draft", "published", "archived"]),
    version: z.number(),
    contentHash: z.string(),
    definition: z.record(z.string(), z.unknown()).openapi({ description: "The validated, normalised calendar (defaults filled in, each entry's channel and variables)" }),
    publishedAt: z.string().nullable(),
    createdAt: z.string(),
    updatedAt: z.string(),
    entries: z.array(Entry).optional(),
    published: Publish.optional(),
  })
  .openapi("Calendar");
const Page = z.object({ items: z.array(Calendar), nextCursor: z.string().nullable() });
const Lint = z.object({
  ok: z.boolean(),
  kind: z.enum(["dated", "relative"]).nullable(),
  issues: z.array(z.object({ entry: z.string().nullable(), path: z.string(), message: z.string(), level: z.enum(["error", "warning"]) })),
});

export function calendarRoutes() {
  const app = new OpenAPIHono<AppEnv>({ defaultHook: validationHook });
  app.openapi(
    route("calendars:read", { method: "get", path: "/", tags: ["calendars"], summary: "Content calendars, newest first (filter by key or status)", request: { query: ListCalendarsQuery }, responses: { 200: json(Page, "A page of calendars") } }),
    async (c) => c.json(await listCalendars({ ctx: c.get("ctx"), input: c.req.valid("query") }), 200),
  );
  app.openapi(
    route("calendars:write", {
      method: "post",
      path: "/",
      tags: ["calendars"],
      summary: "Save a new calendar as a draft (publish it to turn its entries into posts in review)",
      description: "422 names each failing field (entries[3].template). 409 when the key is taken.",
      request: { body: jsonBody(CreateBody) },
      responses: { 201: json(Calendar, "The draft calendar"), 409: problemResponse("A calendar with this key exists") },
    }),
    async (c) => c.json(await createCalendar({ ctx: c.get("ctx"), input: c.req.valid("json") }), 201),
  );
  app.openapi(
    route("calendars:read", {
      method: "post",
      path: "/lint",
      tags: ["calendars"],
      summary: "Check a calendar without saving it: schema, template variables, owners and tags, banned words in every entry",
      request: { body: jsonBody(LintBody) },
      responses: { 200: json(Lint, "Every problem, each naming entry and field; ok is false when any is an error") },
    }),
    async (c) => c.json(await lintCalendar({ ctx: c.get("ctx"), input: c.req.valid("json") }), 200),
  );
  app.openapi(
    route("calendars:read", { method: "get", path: "/{id}", tags: ["calendars"], summary: "A calendar with its published entries and their posts", request: { params: IdParam }, responses: { 200: json(Calendar, "The calendar"), 404: problemResponse("No such calendar") } }),
    async (c) => c.json(await getCalendar({ ctx: c.get("ctx"), id: c.req.valid("param").id }), 200),
  );
  app.openapi(
    route("calendars:write", {
      method: "put",
      path: "/{id}",
      tags: ["calendars"],
      summary: "Replace a calendar's definition; a published calendar publishes the change at once (`published` in the answer)",
      request: { params: IdParam, body: jsonBody(UpdateBody) },
      responses: { 200: json(Calendar, "The calendar"), 404: problemResponse("No such calendar"), 409: problemResponse("Archived") },
    }),
    async (c) => c.json(await updateCalendar({ ctx: c.get("ctx"), id: c.req.valid("param").id, input: c.req.valid("json") }), 200),
  );
  app.openapi(
    route("calendars:write", {
      method: "post",
      path: "/{id}/publish",
      tags: ["calendars"],
      summary: "Publish: each entry becomes a post submitted for review; unchanged entries keep their post and approval",
      request: { params: IdParam },
      responses: { 200: json(Publish, "What happened to each entry"), 404: problemResponse("No such calendar"), 409: problemResponse("Archived") },
    }),
    async (c) => c.json(await publishCalendar({ ctx: c.get("ctx"), id: c.req.valid("param").id }), 200),
  );
  return app;
}
