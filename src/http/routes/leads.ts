import { OpenAPIHono, z } from "@hono/zod-openapi";
import { LeadConfig } from "../../domain/leads/config";
import { claimLead, getLead, getLeadSettings, leadHistory, LeadView, listLeads, ListLeadsInput, putLeadSettings, reassignLead, ReassignInput, signalLead, SignalInput } from "../../services/leads/leads";
import { AttemptInput, leadTimeline, LeadTimelineInput, OutcomeInput, recordAttempt, recordOutcome, workspace, WorkspaceInput } from "../../services/leads/workspace";
import {
  completeTask,
  consultantTaskStats,
  ConsultantTaskStatsInput,
  createSopTemplate,
  deleteSopTemplate,
  getSopTemplate,
  getTask,
  listSopTemplates,
  ListSopTemplatesInput,
  listTasks,
  ListTasksInput,
  sendTaskMessage,
  skipTask,
  SkipTaskInput,
  SopTemplateInput,
  SopTemplatePatch,
  SopTemplateView,
  TaskStats,
  TaskView,
  updateSopTemplate,
} from "../../services/leads/sop";
import { listTransfers, ListTransfersInput, offboardStaff, OffboardInput } from "../../services/leads/transfers";
import { IdParam, json, jsonBody, problemResponse, route, validationHook } from "../openapi";
import type { AppEnv } from "../types";

const Lead = z.object(LeadView.shape).openapi("Lead");
const Page = z.object({ items: z.array(Lead), nextCursor: z.string().nullable() });
const Settings = z.record(z.string(), z.unknown()).openapi("LeadSettings", { description: "grading, assignment, sla, outcomes: see GET for every field with its value" });
const ClinicQuery = z.object({ clinicId: z.uuid().optional() });
const Entry = z.record(z.string(), z.unknown()).openapi({ description: "kind: event | tag | assignment | grade | attempt | task | sla_breach, at, and the kind's fields" });

export function leadRoutes() {
  const app = new OpenAPIHono<AppEnv>({ defaultHook: validationHook });
  app.openapi(
    route("leads:read", {
      method: "get",
      path: "/",
      tags: ["leads"],
      summary: "Leads, newest first, cursor-paginated",
      description: "Consultants see their own leads (view=all or mine) and the pool (view=pool, 公海) they may claim from; managers and admins see every lead.",
      request: { query: ListLeadsInput },
      responses: { 200: json(Page, "A page of leads") },
    }),
    async (c) => c.json(await listLeads({ ctx: c.get("ctx"), input: c.req.valid("query") }), 200),
  );
  app.openapi(
    route("leads:write", {
      method: "post",
      path: "/",
      tags: ["leads"],
      summary: "Signal a lead: opens one for the contact, or raises the score of its open lead",
      description:
        "One open lead per contact. A new lead is graded (A-D) and goes to the contact's consultant when it has one, else by the assignment strategy chain, else to the pool. 201 when a lead was opened, 200 when the open one was raised.",
      request: { body: jsonBody(SignalInput) },
      responses: { 201: json(Lead, "A new lead"), 200: json(Lead, "The open lead, raised"), 404: problemResponse("No such contact (or not yours)") },
    }),
    async (c) => {
      const r = await signalLead({ ctx: c.get("ctx"), input: c.req.valid("json") });
      return c.json(r.lead, r.created ? 201 : 200);
    },
  );
  app.openapi(
    route("leads:read", { method: "get", path: "/{id}", tags: ["leads"], summary: "A lead", request: { params: IdParam }, responses: { 200: json(Lead, "The lead"), 404: problemResponse("No such lead (or not yours)") } }),
    async (c) => c.json(await getLead({ ctx: c.get("ctx"), id: c.req.valid("param").id }), 200),
  );
  app.openapi(
    route("leads:read", {
      method: "get",
      path: "/{id}/history",
      tags: ["leads"],
      summary: "Who owned the lead when (with strategy and reason) and its grade changes",
      request: { params: IdParam },
      responses: { 200: json(z.object({ assignments: z.array(z.record(z.string(), z.unknown())), grades: z.array(z.record(z.string(), z.unknown())) }), "Oldest first"), 404: problemResponse("No such lead (or not yours)") },
    }),
    async (c) => c.json(await leadHistory({ ctx: c.get("ctx"), id: c.req.valid("param").id }), 200),
  );
  app.openapi(
    route("leads:read", {
      method: "get",
      path: "/{id}/timeline",
      tags: ["leads"],
      summary: "The lead's timeline: the contact's events and tag changes, assignments, grades, contact attempts, SOP tasks and SLA breaches, newest first",
      request: { params: IdParam, query: LeadTimelineInput },
      responses: { 200: json(z.object({ lead: Lead, items: z.array(Entry) }), "Newest first"), 404: problemResponse("No such lead (or not yours)") },
    }),
    async (c) => c.json(await leadTimeline({ ctx: c.get("ctx"), id: c.req.valid("param").id, input: c.req.valid("query") }), 200),
  );
  app.openapi(
    route("leads:claim", {
      method: "post",
      path: "/{id}/claim",
      tags: ["leads"],
      summary: "Claim a lead from the pool (公海), within the daily claim cap and your capacity",
      request: { params: IdParam },
      responses: { 200: json(Lead, "The lead, now yours"), 404: problemResponse("No such lead"), 409: problemResponse("Already taken, closed, cap or capacity reached") },
    }),
    async (c) => c.json(await claimLead({ ctx: c.get("ctx"), id: c.req.valid("param").id }), 200),
  );
  app.openapi(
    route("leads:assign", {
      method: "post",
      path: "/{id}/reassign",
      tags: ["leads"],
      summary: "Reassign a lead with a reason: to a consultant, by the strategy chain (toStaffId omitted) or to the pool (null)",
      request: { params: IdParam, body: jsonBody(ReassignInput) },
      responses: { 200: json(Lead, "The lead with its new owner"), 404: problemResponse("No such lead"), 409: problemResponse("The lead is closed") },
    }),
    async (c) => c.json(await reassignLead({ ctx: c.get("ctx"), id: c.req.valid("param").id, input: c.req.valid("json") }), 200),
  );
  app.openapi(
    route("leads:work", {
      method: "post",
      path: "/{id}/attempts",
      tags: ["leads"],
      summary: "Record a contact attempt (the first one meets the first-contact SLA)",
      request: { params: IdParam, body: jsonBody(AttemptInput) },
      responses: { 201: json(z.object({ id: z.string(), leadId: z.string(), staffId: z.string().nullable(), channel: z.string(), outcome: z.string(), note: z.string().nullable(), at: z.string(), lead: Lead }), "The attempt and the lead"), 404: problemResponse("No such lead (or not yours)"), 409: problemResponse("The lead is closed") },
    }),
    async (c) => c.json(await recordAttempt({ ctx: c.get("ctx"), id: c.req.valid("param").id, input: c.req.valid("json") }), 201),
  );
  app.openapi(
    route("leads:work", {
      method: "post",
      path: "/{id}/outcome",
      tags: ["leads"],
      summary: "Record the consultation outcome: converted (amount, items) or lost (a reason from the lead settings); closes the lead",
      description: "Stored as a consultation_outcome event for the rules engine (tags such as lost reasons follow) in the same transaction that closes the lead.",
      request: { params: IdParam, body: jsonBody(OutcomeInput) },
      responses: { 200: json(z.object({ lead: Lead, eventId: z.string() }), "The closed lead and the event"), 404: problemResponse("No such lead (or not yours)"), 409: problemResponse("The lead is already closed") },
    }),
    async (c) => c.json(await recordOutcome({ ctx: c.get("ctx"), id: c.req.valid("param").id, input: c.req.valid("json") }), 200),
  );
  return app;
}

export function leadSettingsRoutes() {
  const app = new OpenAPIHono<AppEnv>({ defaultHook: validationHook });
  app.openapi(
    route("leads:settings", {
      method: "get",
      path: "/",
      tags: ["leads"],
      summary: "Lead settings of the tenant, or of a clinic (its own, else the tenant's), with defaults filled in",
      request: { query: ClinicQuery },
      responses: { 200: json(Settings, "grading, assignment, sla, outcomes") },
    }),
    async (c) => c.json((await getLeadSettings({ ctx: c.get("ctx"), clinicId: c.req.valid("query").clinicId })) as Record<string, unknown>, 200),
  );
  app.openapi(
    route("leads:settings", {
      method: "put",
      path: "/",
      tags: ["leads"],
      summary: "Replace the lead settings of the tenant or of a clinic (fields left out take their defaults)",
      request: { query: ClinicQuery, body: jsonBody(LeadConfig) },
      responses: { 200: json(Settings, "The settings in force") },
    }),
    async (c) => c.json((await putLeadSettings({ ctx: c.get("ctx"), clinicId: c.req.valid("query").clinicId, input: c.req.valid("json") })) as Record<string, unknown>, 200),
  );
  return app;
}

export function workspaceRoutes() {
  const app = new OpenAPIHono<AppEnv>({ defaultHook: validationHook });
  app.openapi(
    route("leads:read", {
      method: "get",
      path: "/",
      tags: ["leads"],
      summary: "A consultant's workspace (我的工作台): open leads by first-contact deadline and grade, counts, today's and overdue tasks",
      description: "Consultants get their own; managers and admins pass staffId.",
      request: { query: WorkspaceInput },
      responses: { 200: json(z.record(z.string(), z.unknown()), "staff, day, counts, leads, tasks"), 404: problemResponse("No such staff member") },
    }),
    async (c) => c.json(await workspace({ ctx: c.get("ctx"), input: c.req.valid("query") }), 200),
  );
  return app;
}

/** 离职继承 under /v1/staff/{id}: hand a leaving consultant's book over, and follow the WeCom transfers. */
export function offboardRoutes() {
  const app = new OpenAPIHono<AppEnv>({ defaultHook: validationHook });
  app.openapi(
    route("leads:assign", {
      method: "post",
      path: "/{id}/offboard",
      tags: ["leads"],
      summary: "离职继承: deactivate a consultant and hand every contact and open lead over (to one successor or by the strategy chain), with WeCom transfers queued",
      description:
        "Runs in batches of 100 contacts, each one transaction; leads nobody can take go to the pool. wecom: resigned (离职继承, the consultant has left in WeCom's admin), on_job (在职继承; WeCom allows 2 per customer in 90 days) or none. Successors are told by WeCom app message.",
      request: { params: IdParam, body: jsonBody(OffboardInput) },
      responses: { 200: json(z.object({ staffId: z.string(), contacts: z.number(), leads: z.number(), toPool: z.number(), bySuccessor: z.record(z.string(), z.number()), wecomQueued: z.number() }), "What moved where"), 404: problemResponse("No such staff member") },
    }),
    async (c) => c.json(await offboardStaff({ ctx: c.get("ctx"), id: c.req.valid("param").id, input: c.req.valid("json") }), 200),
  );
  app.openapi(
    route("leads:assign", {
      method: "get",
      path: "/{id}/transfers",
      tags: ["leads"],
      summary: "WeCom customer transfers of a consultant's customers: pending, requested (WeCom completes them in 24 h), done or failed with WeCom's reason",
      request: { params: IdParam, query: ListTransfersInput },
      responses: { 200: json(z.object({ items: z.array(z.record(z.string(), z.unknown())), counts: z.record(z.string(), z.number()) }), "Newest first, with counts by status"), 404: problemResponse("No such staff member") },
    }),
    async (c) => c.json(await listTransfers({ ctx: c.get("ctx"), id: c.req.valid("param").id, input: c.req.valid("query") }), 200),
  );
  return app;
}

const Task = z.object(TaskView.shape).openapi("LeadTask");
const TaskPage = z.object({ items: z.array(Task), nextCursor: z.string().nullable() });

/** SOP tasks: a consultant's to-do list (their own leads' tasks), done / skipped / sent through the gate. */
export function taskRoutes() {
  const app = new OpenAPIHono<AppEnv>({ defaultHook: validationHook });
  app.openapi(
    route("leads:read", {
      method: "get",
      path: "/",
      tags: ["leads"],
      summary: "SOP tasks, by due time, cursor-paginated: mine (consultants' default), by staff, lead, status, due today / overdue / upcoming",
      request: { query: ListTasksInput },
      responses: { 200: json(TaskPage, "A page of tasks") },
    }),
    async (c) => c.json(await listTasks({ ctx: c.get("ctx"), input: c.req.valid("query") }), 200),
  );
  app.openapi(
    route("leads:read", {
      method: "get",
      path: "/stats",
      tags: ["leads"],
      summary: "Follow-up completion per consultant: open, overdue, done (late), skipped, cancelled",
      request: { query: ConsultantTaskStatsInput },
      responses: { 200: json(z.object({ items: z.array(z.object({ ...TaskStats.shape, staffId: z.string(), staffName: z.string() })) }), "One row per consultant") },
    }),
    async (c) => c.json(await consultantTaskStats({ ctx: c.get("ctx"), input: c.req.valid("query") }), 200),
  );
  app.openapi(
    route("leads:read", { method: "get", path: "/{id}", tags: ["leads"], summary: "A task", request: { params: IdParam }, responses: { 200: json(Task, "The task"), 404: problemResponse("No such task (or not yours)") } }),
    async (c) => c.json(await getTask({ ctx: c.get("ctx"), id: c.req.valid("param").id }), 200),
  );
  app.openapi(
    route("leads:work", { method: "post", path: "/{id}/done", tags: ["leads"], summary: "Mark a task done", request: { params: IdParam }, responses: { 200: json(Task, "The task"), 404: problemResponse("No such task (or not yours)"), 409: problemResponse("The task is not open") } }),
    async (c) => c.json(await completeTask({ ctx: c.get("ctx"), id: c.req.valid("param").id }), 200),
  );
  app.openapi(
    route("leads:work", {
      method: "post",
      path: "/{id}/skip",
      tags: ["leads"],
      summary: "Skip a task, with a reason",
      request: { params: IdParam, body: jsonBody(SkipTaskInput) },
      responses: { 200: json(Task, "The task"), 404: problemResponse("No such task (or not yours)"), 409: problemResponse("The task is not open") },
    }),
    async (c) => c.json(await skipTask({ ctx: c.get("ctx"), id: c.req.valid("param").id, input: c.req.valid("json") }), 200),
  );
  app.openapi(
    route("leads:work", {
      method: "post",
      path: "/{id}/send",
      tags: ["leads"],
      summary: "Send the step's approved copy to the patient (through the compliance gate, as a WeCom 1:1 message from the owner)",
      description: "Refused (412, naming postId, contactId, staffId or wecom) when the post is not approved, changed since approval, or finds blocking terms in the lists in use; when the patient has no WeCom id or the owner no WeCom userid.",
      request: { params: IdParam },
      responses: { 200: json(Task, "The task with sentAt"), 404: problemResponse("No such task (or not yours)"), 409: problemResponse("Already sent, or the task is not open"), 412: problemResponse("Refused by the gate, or not sendable") },
    }),
    async (c) => c.json(await sendTaskMessage({ ctx: c.get("ctx"), id: c.req.valid("param").id }), 200),
  );
  return app;
}

const Template = z.object(SopTemplateView.shape).openapi("SopTemplate");

/** Follow-up SOP templates (managers, admins). */
export function sopTemplateRoutes() {
  const app = new OpenAPIHono<AppEnv>({ defaultHook: validationHook });
  app.openapi(
    route("leads:settings", { method: "get", path: "/", tags: ["leads"], summary: "SOP templates: tenant-wide first, then per clinic, highest priority first", request: { query: ListSopTemplatesInput }, responses: { 200: json(z.object({ items: z.array(Template) }), "Templates") } }),
    async (c) => c.json(await listSopTemplates({ ctx: c.get("ctx"), input: c.req.valid("query") }), 200),
  );
  app.openapi(
    route("leads:settings", {
      method: "post",
      path: "/",
      tags: ["leads"],
      summary: "Create an SOP template: which leads it applies to (sources, needs, grades) and its steps (day, local time, title, an approved post to send)",
      request: { body: jsonBody(SopTemplateInput) },
      responses: { 201: json(Template, "The template") },
    }),
    async (c) => c.json(await createSopTemplate({ ctx: c.get("ctx"), input: c.req.valid("json") }), 201),
  );
  app.openapi(
    route("leads:settings", { method: "get", path: "/{id}", tags: ["leads"], summary: "An SOP template", request: { params: IdParam }, responses: { 200: json(Template, "The template"), 404: problemResponse("No such template") } }),
    async (c) => c.json(await getSopTemplate({ ctx: c.get("ctx"), id: c.req.valid("param").id }), 200),
  );
  app.openapi(
    route("leads:settings", {
      method: "patch",
      path: "/{id}",
      tags: ["leads"],
      summary: "Change an SOP template (steps replace all steps); leads opened from now on use it",
      request: { params: IdParam, body: jsonBody(SopTemplatePatch) },
      responses: { 200: json(Template, "The template"), 404: problemResponse("No such template") },
    }),
    async (c) => c.json(await updateSopTemplate({ ctx: c.get("ctx"), id: c.req.valid("param").id, input: c.req.valid("json") }), 200),
  );
  app.openapi(
    route("leads:settings", { method: "delete", path: "/{id}", tags: ["leads"], summary: "Deactivate an SOP template (tasks already planned stay)", request: { params: IdParam }, responses: { 200: json(Template, "The template, inactive"), 404: problemResponse("No such template") } }),
    async (c) => c.json(await deleteSopTemplate({ ctx: c.get("ctx"), id: c.req.valid("param").id }), 200),
  );
  return app;
}
