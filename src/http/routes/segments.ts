import { OpenAPIHono, z } from "@hono/zod-openapi";
import { ListContactsInput } from "../../services/contacts/list";
import { ContactView } from "../../services/contacts/schemas";
import { createSegment, exportSegmentCsv, getSegment, listSegments, PreviewInput, previewSegment, SegmentInput, segmentMembers, segmentSizes, updateSegment } from "../../services/segments/segments";
import { IdParam, json, jsonBody, problemResponse, route, validationHook } from "../openapi";
import type { AppEnv } from "../types";

const SegmentSchema = z.object({ id: z.string(), name: z.string(), expression: z.string(), count: z.number(), createdAt: z.string(), updatedAt: z.string() }).openapi("Segment");
const Contact = z.object(ContactView.shape);

export function segmentRoutes() {
  const app = new OpenAPIHono<AppEnv>({ defaultHook: validationHook });
  const expressionHelp =
    "Expression over tags (group:name) and fields, with AND, OR, NOT and parentheses, e.g. `visit:复诊 AND need:祛痘 AND NOT engagement:低` or `spend_12m >= 5000 AND source = \"wecom\"`. Fields: spend_12m, visits, purchases, days_since_visit, days_since_added, source, gender, state. A syntax error answers 422 naming `expression` with the position.";
  app.openapi(
    route("segments:read", { method: "get", path: "/", tags: ["segments"], summary: "Segments with their live sizes", responses: { 200: json(z.object({ items: z.array(SegmentSchema) }), "By name") } }),
    async (c) => c.json({ items: await listSegments({ ctx: c.get("ctx") }) }, 200),
  );
  app.openapi(
    route("segments:write", { method: "post", path: "/", tags: ["segments"], summary: "Create a segment", description: expressionHelp, request: { body: jsonBody(SegmentInput) }, responses: { 201: json(SegmentSchema, "The segment with its size"), 409: problemResponse("Name already used") } }),
    async (c) => c.json(await createSegment({ ctx: c.get("ctx"), input: c.req.valid("json") }), 201),
  );
  app.openapi(
    route("segments:read", { method: "post", path: "/preview", tags: ["segments"], summary: "Count and sample an expression without saving it", description: expressionHelp, request: { body: jsonBody(PreviewInput) }, responses: { 200: json(z.object({ count: z.number(), sample: z.array(Contact) }), "Live count and up to 10 contacts") } }),
    async (c) => c.json(await previewSegment({ ctx: c.get("ctx"), input: c.req.valid("json") }), 200),
  );
  app.openapi(
    route("segments:read", { method: "get", path: "/{id}", tags: ["segments"], summary: "A segment with its live size", request: { params: IdParam }, responses: { 200: json(SegmentSchema, "The segment"), 404: problemResponse("No such segment") } }),
    async (c) => c.json(await getSegment({ ctx: c.get("ctx"), id: c.req.valid("param").id }), 200),
  );
  app.openapi(
    route("segments:write", { method: "patch", path: "/{id}", tags: ["segments"], summary: "Rename a segment or change its expression", request: { params: IdParam, body: jsonBody(SegmentInput.partial()) }, responses: { 200: json(SegmentSchema, "The segment"), 404: problemResponse("No such segment") } }),
    async (c) => c.json(await updateSegment({ ctx: c.get("ctx"), id: c.req.valid("param").id, input: c.req.valid("json") }), 200),
  );
  app.openapi(
    route("segments:read", {
      method: "get",
      path: "/{id}/members",
      tags: ["segments"],
      summary: "The segment's contacts, newest first, cursor-paginated",
      request: { params: IdParam, query: ListContactsInput.pick({ cursor: true, limit: true }) },
      responses: { 200: json(z.object({ items: z.array(Contact), nextCursor: z.string().nullable() }), "A page of members"), 404: problemResponse("No such segment") },
    }),
    async (c) => c.json(await segmentMembers({ ctx: c.get("ctx"), id: c.req.valid("param").id, input: c.req.valid("query") }), 200),
  );
  app.openapi(
    route("segments:read", {
      method: "get",
      path: "/{id}/export.csv",
      tags: ["segments"],
      summary: "The segment's contacts as CSV (phones masked unless your role may see them)",
      request: { params: IdParam },
      responses: { 200: { description: "CSV, UTF-8 with BOM", content: { "text/csv": { schema: z.string() } } }, 404: problemResponse("No such segment") },
    }),
    async (c) => {
      const { filename, csv } = await exportSegmentCsv({ ctx: c.get("ctx"), id: c.req.valid("param").id });
      return c.body(csv, 200, { "content-type": "text/csv; charset=utf-8", "content-disposition": `attachment; filename*=UTF-8''${encodeURIComponent(filename)}` });
    },
  );
  app.openapi(
    route("segments:read", { method: "get", path: "/{id}/sizes", tags: ["segments"], summary: "Daily sizes (snapshots taken every night)", request: { params: IdParam }, responses: { 200: json(z.object({ items: z.array(z.object({ day: z.string(), size: z.number() })) }), "Oldest first"), 404: problemResponse("No such segment") } }),
    async (c) => c.json({ items: await segmentSizes({ ctx: c.get("ctx"), id: c.req.valid("param").id }) }, 200),
  );
  return app;
}
