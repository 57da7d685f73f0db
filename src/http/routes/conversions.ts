import { OpenAPIHono, z } from "@hono/zod-openapi";
import { ValidationError } from "../../errors";
import { AnalyticsSettings, getAnalyticsSettings, putAnalyticsSettings } from "../../services/analytics/settings";
import { completeFollowUp, CompleteFollowUpInput, getFollowUp, listFollowUps, ListFollowUpsInput, skipFollowUp, SkipFollowUpInput } from "../../services/conversions/follow-ups";
import { importConversions } from "../../services/conversions/import";
import { recordConversion } from "../../services/conversions/record";
import { listReferrals } from "../../services/conversions/referrals";
import { AppointmentInput, ConsultationInput, ConversionResult, PurchaseInput, RefundInput, VisitInput, type ConversionType } from "../../services/conversions/schemas";
import { listContactSurveys } from "../../services/conversions/surveys";
import { IdParam, json, jsonBody, problemResponse, route, validationHook } from "../openapi";
import type { AppEnv } from "../types";

// Fresh objects: schemas built before @hono/zod-openapi extended zod have no .openapi().
const Recorded = z.object(ConversionResult.shape).openapi("ConversionRecord");
const Survey = z
  .object({
    id: z.string(),
    url: z.string().openapi({ description: "The link to send the patient (PUBLIC_URL/s/{token})" }),
    contactId: z.string(),
    staffId: z.string().nullable(),
    clinicId: z.string().nullable(),
    visitEventId: z.string().nullable(),
    createdAt: z.string(),
    sentAt: z.string().nullable(),
    answeredAt: z.string().nullable(),
    score: z.number().nullable(),
    category: z.enum(["promoter", "passive", "detractor"]).nullable(),
    comment: z.string().nullable(),
  })
  .openapi("Survey");
const FollowUp = z
  .object({
    id: z.string(),
    contactId: z.string(),
    contactName: z.string().nullable(),
    ownerStaffId: z.string().nullable().openapi({ description: "The contact's consultant now: whose follow-up it is while open" }),
    staffId: z.string().nullable().openapi({ description: "The consultant it was planned for" }),
    clinicId: z.string().nullable(),
    visitEventId: z.string(),
    visitAt: z.string().nullable(),
    dueAt: z.string(),
    overdue: z.boolean(),
    status: z.enum(["open", "done", "skipped", "cancelled"]),
    completedAt: z.string().nullable(),
    completedByStaffId: z.string().nullable(),
    note: z.string().nullable(),
    survey: Survey.nullable(),
    createdAt: z.string(),
  })
  .openapi("FollowUp");
const ImportReport = z
  .object({
    total: z.number(),
    imported: z.number(),
    duplicates: z.number().openapi({ description: "Rows stored before (same 单号 / idempotency key, or the same content)" }),
    failed: z.number(),
    errors: z.array(z.object({ row: z.number(), field: z.string(), message: z.string() })),
    byType: z.record(z.string(), z.number()),
    ignoredColumns: z.array(z.string()),
  })
  .openapi("ConversionImportReport");
const Referrals = z
  .object({
    referrerContactId: z.string(),
    counts: z.object({ referred: z.number(), converted: z.number(), revenue: z.number() }),
    items: z.array(
      z.object({ id: z.string(), name: z.string().nullable(), phone: z.string().nullable(), phoneMasked: z.boolean(), ownerStaffId: z.string().nullable(), source: z.string(), createdAt: z.string(), convertedAt: z.string().nullable(), revenue: z.number() }),
    ),
  })
  .openapi("Referrals");
const Settings = z.record(z.string(), z.unknown()).openapi("AnalyticsSettings", { description: "followUps {afterVisitDays, surveyAfterVisit}, attribution {windowDays}: see GET for every field with its value" });

const RECORDS: { type: ConversionType; path: string; body: z.ZodType; summary: string; description: string }[] = [
  {
    type: "appointment",
    path: "/appointments",
    body: AppointmentInput,
    summary: "Record an appointment (预约): an appointment_booked event",
    description: "`at` is when the patient is booked to come; occurredAt when it was booked (default now). Appointment reminders and the lead rules react.",
  },
  {
    type: "visit",
    path: "/visits",
    body: VisitInput,
    summary: "Record a visit (到诊): a visit event",
    description: "Visit status advances (潜在 -> 首诊 -> 复诊); a post-visit follow-up (回访) with a satisfaction survey is planned for the contact's consultant.",
  },
  {
    type: "consultation",
    path: "/consultations",
    body: ConsultationInput,
    summary: "Record a consultation outcome (咨询, online or in person): converted with amount and items, or lost with a reason",
    description: "A lost reason must be one of the lead settings' `outcomes.lostReasons`; it becomes a lost_reason tag. The contact's open lead closes (converted or lost) when the event is applied.",
  },
  {
    type: "purchase",
    path: "/purchases",
    body: PurchaseInput,
    summary: "Record a purchase (消费): amount in yuan and items",
    description: "The spending tier recomputes (12 months, net of refunds); a referred contact's first purchase credits the referrer.",
  },
  {
    type: "refund",
    path: "/refunds",
    body: RefundInput,
    summary: "Record a refund (退款)",
    description: "Spending sums subtract it. With purchaseEventId, it must be a purchase of the same contact, and no more than what is left of it.",
  },
];

/** Excel in China often saves CSV as GBK: a declared charset wins, else UTF-8, else GB18030 (a superset of GBK). */
function decodeCsv(buf: ArrayBuffer, contentType: string): string {
  const charset = /charset="?([\w-]+)/i.exec(contentType)?.[1]?.toLowerCase();
  if (charset && /^(gbk|gb2312|gb18030|cp936)$/.test(charset)) return new TextDecoder("gb18030").decode(buf);
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(buf);
  } catch {
    return new TextDecoder("gb18030").decode(buf);
  }
}

/** Recording conversions (mounted at /v1): one typed endpoint per kind, and the CSV import. */
export function conversionRoutes(importLimitBytes: number) {
  const app = new OpenAPIHono<AppEnv>({ defaultHook: validationHook });
  for (const r of RECORDS) {
    app.openapi(
      route("conversions:write", {
        method: "post",
        path: r.path,
        tags: ["conversions"],
        summary: r.summary,
        description: `${r.description} Consultants record for contacts they own (others: 404) and are credited themselves; managers and admins may credit any staff member (staffId). Stored as an event (idempotencyKey, or a key derived from the body: the same record is stored once); the rules engine applies it within seconds.`,
        request: { body: jsonBody(r.body) },
        responses: {
          201: json(Recorded, "Recorded: the event id and what it holds"),
          200: json(Recorded, "Recorded before with this idempotency key: the first record"),
          404: problemResponse("No such contact (or not yours)"),
          409: problemResponse("The idempotency key was used for another record"),
        },
      }),
      async (c) => {
        const res = await recordConversion({ ctx: c.get("ctx"), type: r.type, input: c.req.valid("json") });
        return c.json(res, res.duplicate ? 200 : 201);
      },
    );
  }
  app.openapi(
    route("conversions:import", {
      method: "post",
      path: "/conversions/import",
      tags: ["conversions"],
      summary: "Import appointments, visits, consultations, purchases and refunds from CSV",
      description:
        "Body: CSV (text/csv; UTF-8, or GBK as Excel saves it) with a header. Columns (English or Chinese): type/类型 (appointment, visit, consultation, purchase, refund or 预约, 到诊, 咨询, 消费, 退款), contact/客户 (phone, external user id or contact id; or phone/手机号, external_user_id, contact_id), occurredAt/时间, at/预约时间 (appointments), amount/金额, items/项目 (separated by 、 ; |), outcome/结果 (converted/成交, lost/未成交), lostReason/未成交原因, clinic/门店, staff/顾问, mode/方式 (online/线上, in_person/到院), idempotencyKey/单号, note/备注, reason/退款原因. Times without an offset are the tenant's local time. Contacts must exist. Each failing row is reported with its line and column; the others are imported. Without a 单号, a row's key comes from its content, so importing the same file again adds nothing.",
      request: {
        query: z.object({ rowOffset: z.string().regex(/^\d+$/).optional() }),
        body: { required: true, content: { "text/csv": { schema: z.string() } } },
      },
      responses: { 200: json(ImportReport, "What was imported, what was there already, and each failing row") },
    }),
    async (c) => {
      const type = c.req.header("content-type") ?? "";
      if (!/^text\/(csv|plain)/i.test(type)) throw new ValidationError([{ field: "content-type", message: "send the CSV as text/csv" }]);
      const buf = await c.req.arrayBuffer();
      if (buf.byteLength > importLimitBytes) throw new ValidationError([{ field: "(body)", message: `the file is over ${importLimitBytes} bytes; split it` }]);
      return c.json(await importConversions({ ctx: c.get("ctx"), csv: decodeCsv(buf, type), options: c.req.valid("query") }), 200);
    },
  );
  return app;
}

/** Post-visit follow-ups (回访), at /v1/follow-ups. */
export function followUpRoutes() {
  const app = new OpenAPIHono<AppEnv>({ defaultHook: validationHook });
  app.openapi(
    route("followups:work", {
      method: "get",
      path: "/",
      tags: ["follow-ups"],
      summary: "Post-visit follow-ups (回访), soonest due first, cursor-paginated, each with its satisfaction survey link",
      description: "Consultants see the follow-ups of the contacts they own; managers and admins every one (staffId: one consultant's). due: today (tenant time zone), overdue, upcoming, by_today (open and due by the end of today).",
      request: { query: ListFollowUpsInput },
      responses: { 200: json(z.object({ items: z.array(FollowUp), nextCursor: z.string().nullable() }), "A page of follow-ups") },
    }),
    async (c) => c.json(await listFollowUps({ ctx: c.get("ctx"), input: c.req.valid("query") }), 200),
  );
  app.openapi(
    route("followups:work", { method: "get", path: "/{id}", tags: ["follow-ups"], summary: "A follow-up", request: { params: IdParam }, responses: { 200: json(FollowUp, "The follow-up"), 404: problemResponse("No such follow-up (or not yours)") } }),
    async (c) => c.json(await getFollowUp({ ctx: c.get("ctx"), id: c.req.valid("param").id }), 200),
  );
  app.openapi(
    route("followups:work", {
      method: "post",
      path: "/{id}/complete",
      tags: ["follow-ups"],
      summary: "Mark a follow-up done, with what the patient said (surveySent: the survey link was sent)",
      request: { params: IdParam, body: { required: false, content: { "application/json": { schema: CompleteFollowUpInput } } } },
      responses: { 200: json(FollowUp, "The follow-up, done"), 404: problemResponse("No such follow-up (or not yours)"), 409: problemResponse("The follow-up is not open") },
    }),
    async (c) => c.json(await completeFollowUp({ ctx: c.get("ctx"), id: c.req.valid("param").id, input: c.req.valid("json") }), 200),
  );
  app.openapi(
    route("followups:work", {
      method: "post",
      path: "/{id}/skip",
      tags: ["follow-ups"],
      summary: "Skip a follow-up, saying why",
      request: { params: IdParam, body: jsonBody(SkipFollowUpInput) },
      responses: { 200: json(FollowUp, "The follow-up, skipped"), 404: problemResponse("No such follow-up (or not yours)"), 409: problemResponse("The follow-up is not open") },
    }),
    async (c) => c.json(await skipFollowUp({ ctx: c.get("ctx"), id: c.req.valid("param").id, input: c.req.valid("json") }), 200),
  );
  return app;
}

/** A contact's surveys and referrals, at /v1/contacts/{id}/…. */
export function contactConversionRoutes() {
  const app = new OpenAPIHono<AppEnv>({ defaultHook: validationHook });
  app.openapi(
    route("followups:work", {
      method: "get",
      path: "/{id}/surveys",
      tags: ["follow-ups"],
      summary: "The contact's satisfaction surveys (NPS), newest first, with the link to send and the answer",
      request: { params: IdParam },
      responses: { 200: json(z.object({ items: z.array(Survey) }), "Surveys"), 404: problemResponse("No such contact (or not yours)") },
    }),
    async (c) => c.json(await listContactSurveys({ ctx: c.get("ctx"), contactId: c.req.valid("param").id }), 200),
  );
  app.openapi(
    route("contacts:read", {
      method: "get",
      path: "/{id}/referrals",
      tags: ["contacts"],
      summary: "The contacts this contact referred (转介绍), with counts: referred, converted, revenue",
      description: "Revenue per referred contact: purchases net of refunds, or converted consultations' amounts when no purchase is recorded. Phones are masked for roles without PII rights and for consultants on contacts they do not own.",
      request: { params: IdParam },
      responses: { 200: json(Referrals, "Referred contacts and counts"), 404: problemResponse("No such contact (or not yours)") },
    }),
    async (c) => c.json(await listReferrals({ ctx: c.get("ctx"), contactId: c.req.valid("param").id }), 200),
  );
  return app;
}

/** Analytics settings (follow-up timing, survey, attribution window), at /v1/analytics/settings. */
export function analyticsSettingsRoutes() {
  const app = new OpenAPIHono<AppEnv>({ defaultHook: validationHook });
  app.openapi(
    route("analytics:manage", { method: "get", path: "/", tags: ["analytics"], summary: "Analytics settings, with defaults filled in", responses: { 200: json(Settings, "followUps, attribution") } }),
    async (c) => c.json((await getAnalyticsSettings({ ctx: c.get("ctx") })) as Record<string, unknown>, 200),
  );
  app.openapi(
    route("analytics:manage", {
      method: "put",
      path: "/",
      tags: ["analytics"],
      summary: "Replace the analytics settings (fields left out take their defaults)",
      description: "followUps.afterVisitDays (default 3: a visit's 回访 is due that many days later at 10:00 tenant time), followUps.surveyAfterVisit (default true), attribution.windowDays (default 30). Applies to visits processed from now on.",
      request: { body: jsonBody(AnalyticsSettings) },
      responses: { 200: json(Settings, "The settings in force") },
    }),
    async (c) => c.json((await putAnalyticsSettings({ ctx: c.get("ctx"), input: c.req.valid("json") })) as Record<string, unknown>, 200),
  );
  return app;
}
