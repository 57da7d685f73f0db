import { OpenAPIHono, z } from "@hono/zod-openapi";
import { ConsentNoteInput, listConsents, optInContact, optOutContact } from "../../services/consent/consent";
import { IdParam, json, route, validationHook } from "../openapi";
import type { AppEnv } from "../types";

/** Consent and marketing opt-out of a contact (个人信息保护法), mounted under /v1/contacts. */

const ConsentState = z
  .object({
    contactId: z.string(),
    optedOut: z.boolean(),
    marketingOptOutAt: z.string().nullable(),
    changed: z.boolean().openapi({ description: "False when the contact was already in that state: nothing was recorded" }),
  })
  .openapi("ConsentState");

const ConsentHistory = z
  .object({
    contactId: z.string(),
    marketingOptOutAt: z.string().nullable(),
    items: z.array(
      z.object({
        id: z.string(),
        status: z.enum(["granted", "revoked"]),
        source: z.string().openapi({ description: "message (退订), wecom_delete (deleted the consultant), staff, api, import" }),
        actorStaffId: z.string().nullable(),
        actorName: z.string().nullable(),
        eventId: z.string().nullable(),
        note: z.string().nullable(),
        at: z.string(),
      }),
    ),
  })
  .openapi("ConsentHistory");

const NoteBody = z.object(ConsentNoteInput.shape).openapi("ConsentNote");

export function consentRoutes() {
  const app = new OpenAPIHono<AppEnv>({ defaultHook: validationHook });
  app.openapi(
    route("contacts:write", {
      method: "post",
      path: "/{id}/opt-out",
      tags: ["contacts"],
      summary: "Opt the contact out of marketing (the patient asked to stop)",
      description: "Recorded with time, source `staff` and the acting staff member, and audited. Marketing sends are refused from now on; service messages (appointment reminders, aftercare) stay allowed. Consultants: their own contacts only.",
      request: { params: IdParam, body: { required: false, content: { "application/json": { schema: NoteBody } } } },
      responses: { 200: json(ConsentState, "The contact's consent state") },
    }),
    async (c) => c.json(await optOutContact({ ctx: c.get("ctx"), id: c.req.valid("param").id, input: c.req.valid("json") }), 200),
  );
  app.openapi(
    route("contacts:write", {
      method: "post",
      path: "/{id}/opt-in",
      tags: ["contacts"],
      summary: "Record that the patient consents to marketing again",
      description: "E.g. the patient asks to receive offers again. Recorded with time, source `staff` and the acting staff member, and audited. Consultants: their own contacts only.",
      request: { params: IdParam, body: { required: false, content: { "application/json": { schema: NoteBody } } } },
      responses: { 200: json(ConsentState, "The contact's consent state") },
    }),
    async (c) => c.json(await optInContact({ ctx: c.get("ctx"), id: c.req.valid("param").id, input: c.req.valid("json") }), 200),
  );
  app.openapi(
    route("contacts:read", {
      method: "get",
      path: "/{id}/consents",
      tags: ["contacts"],
      summary: "The contact's consent and opt-out history, newest first",
      request: { params: IdParam },
      responses: { 200: json(ConsentHistory, "History") },
    }),
    async (c) => c.json(await listConsents({ ctx: c.get("ctx"), id: c.req.valid("param").id }), 200),
  );
  return app;
}
