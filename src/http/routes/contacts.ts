import { OpenAPIHono, z } from "@hono/zod-openapi";
import { ValidationError } from "../../errors";
import { createContact, CreateContactInput } from "../../services/contacts/create";
import { getContact } from "../../services/contacts/get";
import { importContacts, ImportContactsOptions } from "../../services/contacts/import";
import { listContacts, ListContactsInput } from "../../services/contacts/list";
import { ContactView } from "../../services/contacts/schemas";
import { updateContact, UpdateContactInput } from "../../services/contacts/update";
import { listContactTags } from "../../services/tags/list-contact-tags";
import { contactTimeline, TimelineInput } from "../../services/contacts/timeline";
import { referralCode } from "../../services/wecom/channels";
import { ChannelSchema } from "./wecom";
import { IdParam, json, jsonBody, problemResponse, route, validationHook } from "../openapi";
import type { AppEnv } from "../types";

// A fresh object: a schema built before @hono/zod-openapi extended zod has no .openapi() (zod copies
// methods at construction), which crashed any process that loaded a contacts service before this file.
const ContactSchema = z.object(ContactView.shape).openapi("Contact");
const ContactPage = z.object({ items: z.array(ContactSchema), nextCursor: z.string().nullable() }).openapi("ContactPage");
const TagList = z
  .object({
    tags: z.array(
      z.object({
        group: z.string(),
        name: z.string(),
        since: z.string(),
        source: z.string(),
        reason: z.object({ ruleId: z.string().nullable(), ruleVersion: z.number().nullable(), eventId: z.string().nullable() }),
      }),
    ),
  })
  .openapi("ContactTags");
const ImportReport = z
  .object({
    total: z.number(),
    created: z.number(),
    updated: z.number(),
    skipped: z.number(),
    failed: z.number(),
    leads: z.number().openapi({ description: "Leads opened or raised by rows with a lead column" }),
    errors: z.array(z.object({ row: z.number(), field: z.string(), message: z.string() })),
  })
  .openapi("ImportReport");

export function contactRoutes(importLimitBytes: number) {
  const app = new OpenAPIHono<AppEnv>({ defaultHook: validationHook });

  app.openapi(
    route("contacts:write", {
      method: "post",
      path: "/",
      tags: ["contacts"],
      summary: "Create a contact",
      description: "Consultants create contacts they own. A phone or external id already in use answers 409.",
      request: { body: jsonBody(CreateContactInput) },
      responses: { 201: json(ContactSchema, "The new contact"), 409: problemResponse("Phone or external id already used") },
    }),
    async (c) => c.json(await createContact({ ctx: c.get("ctx"), input: c.req.valid("json") }), 201),
  );

  app.openapi(
    route("contacts:read", {
      method: "get",
      path: "/",
      tags: ["contacts"],
      summary: "List contacts",
      description: "Newest first, cursor-paginated. Consultants see only their own contacts; phones are masked for roles without PII rights.",
      request: { query: ListContactsInput },
      responses: { 200: json(ContactPage, "A page of contacts") },
    }),
    async (c) => c.json(await listContacts({ ctx: c.get("ctx"), input: c.req.valid("query") }), 200),
  );

  app.openapi(
    route("contacts:import", {
      method: "post",
      path: "/import",
      tags: ["contacts"],
      summary: "Import contacts from CSV",
      description:
        "Body: CSV (text/csv) with a header. Columns: name/姓名, phone/手机号, external_user_id, union_id, gender/性别, source/来源, state, owner/归属顾问 (email, WeCom id or name), clinic/门店, lead/线索/意向项目 (是/yes opens a lead; a need type such as 种植牙 opens one about that need; 否/empty: none), referrer/推荐人 (the referrer's contact id, phone or external id: 转介绍, credited once); other columns become attributes. Dedupes by phone or external id.",
      request: {
        query: z.object({
          onDuplicate: ImportContactsOptions.shape.onDuplicate.optional(),
          rowOffset: z.string().regex(/^\d+$/).optional(),
        }),
        body: { required: true, content: { "text/csv": { schema: z.string() } } },
      },
      responses: { 200: json(ImportReport, "What was created, updated, skipped, and each failing row") },
    }),
    async (c) => {
      const type = c.req.header("content-type") ?? "";
      if (!/^text\/(csv|plain)/i.test(type)) throw new ValidationError([{ field: "content-type", message: "send the CSV as text/csv" }]);
      const buf = await c.req.arrayBuffer();
      if (buf.byteLength > importLimitBytes) throw new ValidationError([{ field: "(body)", message: `the file is over ${importLimitBytes} bytes; split it` }]);
      const csv = new TextDecoder("utf-8", { fatal: false }).decode(buf);
      return c.json(await importContacts({ ctx: c.get("ctx"), csv, options: c.req.valid("query") }), 200);
    },
  );

  app.openapi(
    route("contacts:read", {
      method: "get",
      path: "/{id}",
      tags: ["contacts"],
      summary: "Get a contact",
      request: { params: IdParam },
      responses: { 200: json(ContactSchema, "The contact"), 404: problemResponse("No such contact (or not yours)") },
    }),
    async (c) => c.json(await getContact({ ctx: c.get("ctx"), id: c.req.valid("param").id }), 200),
  );

  app.openapi(
    route("contacts:write", {
      method: "patch",
      path: "/{id}",
      tags: ["contacts"],
      summary: "Update a contact",
      description: "Send only the fields to change; null clears a field. Attributes are merged.",
      request: { params: IdParam, body: jsonBody(UpdateContactInput) },
      responses: { 200: json(ContactSchema, "The updated contact"), 404: problemResponse("No such contact (or not yours)") },
    }),
    async (c) => c.json(await updateContact({ ctx: c.get("ctx"), id: c.req.valid("param").id, input: c.req.valid("json") }), 200),
  );

  app.openapi(
    route("tags:read", {
      method: "get",
      path: "/{id}/tags",
      tags: ["contacts"],
      summary: "A contact's tags, each with why it is there",
      request: { params: IdParam },
      responses: { 200: json(TagList, "Current tags with their reasons") },
    }),
    async (c) => c.json({ tags: await listContactTags({ ctx: c.get("ctx"), contactId: c.req.valid("param").id }) }, 200),
  );

  app.openapi(
    route("events:read", {
      method: "get",
      path: "/{id}/timeline",
      tags: ["contacts"],
      summary: "The contact's events and tag changes, newest first",
      description: "Each tag change names the rule (and version) and the event that caused it. Page with `before` = the previous page's `nextBefore`.",
      request: { params: IdParam, query: TimelineInput },
      responses: { 200: json(z.object({ items: z.array(z.record(z.string(), z.unknown())), nextBefore: z.string().nullable() }).openapi("Timeline"), "Newest first"), 404: problemResponse("No such contact (or not yours)") },
    }),
    async (c) => c.json(await contactTimeline({ ctx: c.get("ctx"), contactId: c.req.valid("param").id, input: c.req.valid("query") }), 200),
  );

  app.openapi(
    route("contacts:write", {
      method: "post",
      path: "/{id}/referral-code",
      tags: ["contacts"],
      summary: "The contact's personal referral QR code (转介绍)",
      description: "A WeCom contact way for the contact's consultant; friends who scan it are linked to this contact as referrer. Made once, then returned again.",
      request: { params: IdParam },
      responses: { 200: json(ChannelSchema, "The referral code"), 404: problemResponse("No such contact (or not yours)"), 412: problemResponse("No consultant, or WeCom not set up") },
    }),
    async (c) => c.json(await referralCode({ ctx: c.get("ctx"), contactId: c.req.valid("param").id }), 200),
  );
  return app;
}
