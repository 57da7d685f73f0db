/**
 * Security tests try every route. The OpenAPI document is the list: each /v1 operation carries
 * `x-permission` and `x-roles`, and this file calls each one without credentials, with a garbage
 * token, as every role outside `x-roles`, as every role inside it, and as another tenant's admin.
 * A route this file does not know how to call fails the run, so new routes get covered.
 */
import { randomUUID } from "node:crypto";
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PERMISSIONS, ROLES, type Permission } from "../../src/domain/auth/permissions";
import { systemCtx } from "../../src/services/context";
import { createStaff } from "../../src/services/staff/create";
import { createToken } from "../../src/services/tokens/tokens";
import { processEvents } from "../../src/services/events/process";
import { client, createTestTenant, phone, type ApiResponse, type StaffKey, type TestTenant } from "../helpers/factories";
import { createTestRuntime, type TestRuntime } from "../helpers/runtime";
import { startFakeWecom, type RunningFakeWecom } from "../../src/wecom/fake/index";

let t: TestRuntime;
let fake: RunningFakeWecom;
const FAKE_CORP = "ww0a1b2c3d4e5f6a7b";
let sql: postgres.Sql;
let A: TestTenant;
let B: TestTenant;
let refsA: Refs;
let refsB: Refs;
let ops: Operation[];

/** Records of one tenant that routes are called with. */
interface Refs {
  tenant: TestTenant;
  /** A contact owned by the tenant's `consultant`, with a phone. */
  contactId: string;
  contactPhone: string;
  /** A staff member nobody signs in as, safe to patch. */
  spareStaffId: string;
  /** An unused API token of the spare staff member. */
  tokenId: string;
  clinicId: string;
  clinicName: string;
  /** The tenant's WeCom CorpID (settings are set up for every tenant here). */
  corpId: string;
  segmentId: string;
  /** A post by the tenant's marketing staff (routes that consume one replace it with a fresh one). */
  postId: string;
  postHash: string;
  /** A post in review, by marketing: on every admin's and reviewer's queue. */
  queuedPostId: string;
  /** A channel QR code and a welcome_message post of the tenant. */
  channelId: string;
  welcomePostId: string;
  /** The open lead on contactId (owned by `consultant`). */
  leadId: string;
  /** A lead waiting in the pool (routes that take it get a fresh one). */
  poolLeadId: string;
  /** A lead owned by `consultant` on a contact of its own (routes that close or move it get a fresh one). */
  spareLeadId: string;
  /** A consultant who can be offboarded (routes that do get a fresh one). */
  leaverId: string;
  /** An SOP task of leadId, and one of spareLeadId (routes that close it get a fresh one). */
  taskId: string;
  spareTaskId: string;
  /** An SOP template of the tenant (routes that deactivate it get a fresh one). */
  sopTemplateId: string;
  /** A relative content calendar (aftercare) of the tenant, made by marketing. */
  calendarId: string;
  /** A contact of `consultant` to enroll in calendarId (routes that enroll or end get a fresh one). */
  enrollContactId: string;
  /** A customer group chat of the tenant (WeCom chat_id). */
  chatId: string;
  /** A post-visit follow-up on contactId, and a spare one (routes that close it get a fresh one). */
  followUpId: string;
  spareFollowUpId: string;
  /** An alert rule with an open episode; a spare rule (routes that delete it get a fresh one). */
  alertRuleId: string;
  alertEpisodeId: string;
  spareAlertRuleId: string;
}

interface Operation {
  method: string;
  path: string;
  key: string;
  permission: Permission;
  roles: string[];
}

type Expectation = (res: ApiResponse, a: Refs, b: Refs) => string[] | Promise<string[]>;

interface OpSpec {
  /** What the `{id}` path parameter names. */
  id?: "contact" | "staff" | "token" | "segment" | "post" | "channel" | "lead" | "poolLead" | "spareLead" | "leaver" | "task" | "spareTask" | "sopTemplate" | "calendar" | "chat" | "followUp" | "spareFollowUp" | "alertRule" | "spareAlertRule" | "alertEpisode";
  /**
   * A status that also shows the caller got past the role and row checks: the business rule then
   * refused (412 for a send whose patient has no WeCom id; the real send is tested in lead-sop).
   */
  passes?: number;
  /** Rows are limited to a consultant's own contacts: another consultant gets 404, not 403. */
  ownContactsOnly?: boolean;
  query?: (r: Refs) => string;
  /** A fresh, valid body (so a refusal is about the caller, not the payload). */
  body?: (r: Refs) => unknown;
  csv?: (r: Refs) => string;
  /** Runs before each call as an allowed role (e.g. a publish needs a fresh draft each time). */
  prepare?: (r: Refs) => Promise<void>;
  /** Called by tenant B's admin with tenant A's records. */
  cross: { body?: (a: Refs) => unknown; csv?: (a: Refs) => string; query?: (a: Refs) => string; expect: Expectation; /** Runs first, with tenant B's records. */ prepare?: (b: Refs) => Promise<void> };
}

const CROSS_EVENT_KEY = `cross-tenant-${randomUUID()}`;

const notFound: Expectation = (res) => (res.status === 404 && res.body?.code === "NOT_FOUND" ? [] : [`expected 404 NOT_FOUND, got ${res.status} ${JSON.stringify(res.body)}`]);

/** 2xx, and nothing of tenant A (ids, tenant id) anywhere in the body; B's own records are there. */
const noLeak =
  (mustContain: (b: Refs) => string[] = () => []): Expectation =>
  (res, a, b) => {
    if (res.status < 200 || res.status >= 300) return [`expected 2xx, got ${res.status} ${JSON.stringify(res.body)}`];
    const text = JSON.stringify(res.body);
    const out = idsOf(a)
      .filter((id) => text.includes(id))
      .map((id) => `tenant A's id ${id} leaked`);
    for (const id of mustContain(b)) if (!text.includes(id)) out.push(`tenant B's own ${id} is missing (the check would be vacuous)`);
    return out;
  };

const invalid =
  (field: string): Expectation =>
  (res) =>
    res.status === 422 && res.body?.code === "VALIDATION_FAILED" && res.body.errors?.some((e: { field: string }) => e.field === field)
      ? []
      : [`expected 422 naming ${field}, got ${res.status} ${JSON.stringify(res.body)}`];

const event = (contactId: string, key: string = randomUUID()) => ({
  events: [{ type: "message_received", contactId, occurredAt: new Date().toISOString(), idempotencyKey: key, data: { text: "你好" } }],
});

const SOP = () => ({ name: `SOP ${randomUUID().slice(0, 8)}`, match: { needs: ["祛痘"] }, priority: 5, steps: [{ key: "day0", day: 0, title: "问候" }, { key: "day2", day: 2, at: "10:00", title: "分享案例" }] });

/** Every operation the document has, and how to call it. Keyed `METHOD /path` as in the document. */
const SPECS: Record<string, OpSpec> = {
  "POST /v1/contacts": {
    body: () => ({ name: "新客户", phone: phone() }),
    cross: {
      body: (a) => ({ name: "x", phone: phone(), ownerStaffId: a.tenant.staff.consultant.id, clinicId: a.clinicId, referrerContactId: a.contactId }),
      expect: async (res) => [...(await invalid("ownerStaffId")(res, refsA, refsB)), ...(await invalid("clinicId")(res, refsA, refsB)), ...(await invalid("referrerContactId")(res, refsA, refsB))],
    },
  },
  "GET /v1/contacts": { cross: { expect: noLeak((b) => [b.contactId]) } },
  "POST /v1/contacts/import": {
    csv: () => `name,phone\n导入客户,${phone()}\n`,
    cross: {
      // A's phone is a new contact in B (no cross-tenant dedupe); A's consultant is no owner in B.
      csv: (a) => `name,phone,owner\n同号客户,${a.contactPhone}\n另一位,${phone()},${a.tenant.staff.consultant.email}\n`,
      expect: (res) =>
        res.status === 200 && res.body.created === 1 && res.body.updated === 0 && res.body.failed === 1 && res.body.errors[0]?.field === "owner"
          ? []
          : [`expected 1 created, 1 failing on owner, got ${res.status} ${JSON.stringify(res.body)}`],
    },
  },
  "GET /v1/contacts/{id}": { id: "contact", ownContactsOnly: true, cross: { expect: notFound } },
  "PATCH /v1/contacts/{id}": { id: "contact", ownContactsOnly: true, body: () => ({ name: "改过的名字", attributes: { note: "x" } }), cross: { expect: notFound } },
  "GET /v1/contacts/{id}/tags": { id: "contact", ownContactsOnly: true, cross: { expect: notFound } },
  "POST /v1/contacts/{id}/opt-out": { id: "contact", ownContactsOnly: true, body: () => ({ note: "患者电话里要求不再发送活动消息" }), cross: { body: () => ({ note: "x" }), expect: notFound } },
  "POST /v1/contacts/{id}/opt-in": { id: "contact", ownContactsOnly: true, body: () => ({ note: "患者要求恢复接收" }), cross: { body: () => ({ note: "x" }), expect: notFound } },
  "GET /v1/contacts/{id}/consents": { id: "contact", ownContactsOnly: true, cross: { expect: notFound } },
  "POST /v1/events": {
    body: (r) => event(r.contactId),
    cross: {
      body: (a) => event(a.contactId, CROSS_EVENT_KEY),
      expect: async (res, a, b) => {
        const out = await invalid("events[0].contactId")(res, a, b);
        const [row] = await sql<{ n: number }[]>`select count(*)::int as n from events where idempotency_key = ${CROSS_EVENT_KEY}`;
        if (row?.n !== 0) out.push(`the refused event was stored (${row?.n} rows)`);
        return out;
      },
    },
  },
  "GET /v1/events": { ownContactsOnly: true, query: (r) => `contactId=${r.contactId}`, cross: { expect: notFound } },
  "GET /v1/staff": { cross: { expect: noLeak((b) => [b.spareStaffId]) } },
  "POST /v1/staff": {
    body: () => ({ name: "新同事", email: `new-${randomUUID().slice(0, 8)}@example.test`, role: "consultant", skills: ["祛痘"] }),
    cross: { body: (a) => ({ name: "x", email: `x-${randomUUID().slice(0, 8)}@example.test`, role: "consultant", clinicId: a.clinicId }), expect: invalid("clinicId") },
  },
  "GET /v1/staff/{id}": { id: "staff", cross: { expect: notFound } },
  "PATCH /v1/staff/{id}": { id: "staff", body: () => ({ skills: ["抗衰"], capacity: 20 }), cross: { expect: notFound } },
  "GET /v1/tokens": { cross: { expect: noLeak((b) => [b.tokenId]) } },
  "POST /v1/tokens": { body: (r) => ({ staffId: r.spareStaffId, name: "ci" }), cross: { body: (a) => ({ staffId: a.spareStaffId, name: "steal" }), expect: invalid("staffId") } },
  "DELETE /v1/tokens/{id}": { id: "token", cross: { expect: notFound } },
  "GET /v1/clinics": { cross: { expect: noLeak((b) => [b.clinicId]) } },
  "POST /v1/clinics": {
    body: () => ({ name: `门店 ${randomUUID().slice(0, 8)}`, city: "上海" }),
    // Clinic names are unique per tenant, not across tenants.
    cross: { body: (a) => ({ name: a.clinicName }), expect: (res) => (res.status === 201 ? [] : [`expected 201, got ${res.status} ${JSON.stringify(res.body)}`]) },
  },
  "GET /v1/audit": { cross: { expect: noLeak((b) => [b.contactId]) } },
  "GET /v1/queues": { cross: { expect: noLeak() } },
  "GET /v1/wecom/settings": {
    // Both apps share the corp; A's is agent 1000002, B's never is.
    cross: { expect: async (res, a, b) => [...(await noLeak()(res, a, b)), ...(res.body?.agentId !== 1000002 ? [] : [`tenant A's app leaked`])] },
  },
  "POST /v1/wecom/channels": {
    body: (r) => ({ name: `渠道 ${randomUUID().slice(0, 6)}`, staffIds: [r.tenant.staff.consultant.id] }),
    cross: { body: (a) => ({ name: "偷来的顾问", staffIds: [a.tenant.staff.consultant.id] }), expect: invalid("staffIds") },
  },
  "GET /v1/wecom/group-chats": { cross: { expect: noLeak((b) => [b.chatId]) } },
  "PUT /v1/wecom/group-chats/{id}/tags": { id: "chat", body: () => ({ tags: ["祛痘交流群"] }), cross: { body: () => ({ tags: ["越权"] }), expect: notFound } },
  "GET /v1/wecom/channels": { cross: { expect: noLeak() } },
  "PATCH /v1/wecom/channels/{id}": { id: "channel", body: (r) => ({ welcomePostId: r.welcomePostId }), cross: { body: (a) => ({ welcomePostId: a.welcomePostId }), expect: invalid("welcomePostId") } },
  "GET /v1/segments": { cross: { expect: noLeak() } },
  "GET /v1/tag-rules": { cross: { expect: noLeak() } },
  "PUT /v1/tag-rules/draft": { body: () => DRAFT, cross: { body: () => DRAFT, expect: (res) => (res.status === 200 ? [] : [`expected 200, got ${res.status}`]) } },
  "POST /v1/tag-rules/draft/dry-run": { prepare: saveDraftFor, cross: { prepare: saveDraftFor, expect: noLeak() } },
  // B discards B's own draft.
  "DELETE /v1/tag-rules/draft": { prepare: saveDraftFor, cross: { prepare: saveDraftFor, expect: (res) => (res.status === 200 ? [] : [`expected 200, got ${res.status} ${JSON.stringify(res.body)}`]) } },
  "POST /v1/tag-rules/draft/publish": {
    prepare: saveDraftFor,
    // B publishes B's own draft; A's published version is untouched.
    cross: { prepare: saveDraftFor, expect: async (res, a) => (res.status === 200 ? notOneOfAsRuns(res, a) : [`expected 200, got ${res.status} ${JSON.stringify(res.body)}`]) },
  },
  "POST /v1/tag-rules/rollback": {
    prepare: async (r) => {
      // Make sure the published version is not 1, so rolling back to 1 is always possible.
      await saveDraftFor(r);
      await client(t.app, r.tenant.tokens.admin).post("/v1/tag-rules/draft/publish");
    },
    body: () => ({ version: 1 }),
    cross: {
      prepare: async (b) => {
        await saveDraftFor(b);
        await client(t.app, b.tenant.tokens.admin).post("/v1/tag-rules/draft/publish");
      },
      body: () => ({ version: 1 }),
      expect: (res) => (res.status === 200 ? [] : [`expected B's own rollback, got ${res.status} ${JSON.stringify(res.body)}`]),
    },
  },
  "POST /v1/segments": { body: () => ({ name: `分群 ${randomUUID().slice(0, 8)}`, expression: "need:祛痘 AND NOT engagement:低" }), cross: { body: () => ({ name: `B ${randomUUID().slice(0, 8)}`, expression: "visit:复诊" }), expect: (res) => (res.status === 201 ? [] : [`expected 201, got ${res.status}`]) } },
  "POST /v1/posts": { body: () => ({ kind: "community_post", body: "本周护肤讲座，欢迎报名。" }), cross: { body: () => ({ kind: "moments", body: "门诊时间调整" }), expect: noLeak() } },
  "GET /v1/posts": { cross: { expect: noLeak((b) => [b.queuedPostId]) } },
  "GET /v1/posts/{id}": { id: "post", cross: { expect: notFound } },
  "PATCH /v1/posts/{id}": { id: "post", body: () => ({ body: `改过的文案 ${randomUUID()}` }), cross: { body: () => ({ body: "B 改 A 的文案" }), expect: notFound } },
  "POST /v1/posts/{id}/submit": { id: "post", prepare: (r) => freshPost(r, false), cross: { expect: notFound } },
  "POST /v1/posts/{id}/reviews": { id: "post", prepare: (r) => freshPost(r, true), body: (r) => ({ decision: "approve", contentHash: r.postHash }), cross: { body: (a) => ({ decision: "approve", contentHash: a.postHash }), expect: notFound } },
  "GET /v1/posts/{id}/gate": { id: "post", cross: { expect: notFound } },
  "GET /v1/reviews/queue": { cross: { expect: noLeak((b) => [b.queuedPostId]) } },
  // Checking copy reads no tenant data: every role may, and B's check shows nothing of A.
  "POST /v1/compliance/check": { body: () => ({ text: "全网最低价，根治痘痘" }), cross: { body: () => ({ text: "第一次来院" }), expect: noLeak() } },
  "POST /v1/segments/preview": {
    body: () => ({ expression: "source = api" }),
    // B's preview of the same expression never counts or shows A's contacts.
    cross: { body: () => ({ expression: "source = api" }), expect: noLeak() },
  },
  "GET /v1/segments/{id}": { id: "segment", cross: { expect: notFound } },
  "PATCH /v1/segments/{id}": { id: "segment", body: () => ({ expression: "source = api OR visit:首诊" }), cross: { expect: notFound } },
  "GET /v1/segments/{id}/members": { id: "segment", cross: { expect: notFound } },
  "GET /v1/segments/{id}/export.csv": { id: "segment", cross: { expect: notFound } },
  "GET /v1/segments/{id}/sizes": { id: "segment", cross: { expect: notFound } },
  "GET /v1/leads": { cross: { expect: noLeak((b) => [b.leadId]) } },
  "POST /v1/leads": { ownContactsOnly: true, body: (r) => ({ contactId: r.contactId, source: "api", score: 5 }), cross: { body: (a) => ({ contactId: a.contactId }), expect: notFound } },
  "GET /v1/leads/{id}": { id: "lead", ownContactsOnly: true, cross: { expect: notFound } },
  "GET /v1/leads/{id}/history": { id: "lead", ownContactsOnly: true, cross: { expect: notFound } },
  "GET /v1/leads/{id}/timeline": { id: "lead", ownContactsOnly: true, cross: { expect: notFound } },
  // Only consultants claim; B's admin is refused by role before the lead is looked at.
  "POST /v1/leads/{id}/claim": { id: "poolLead", prepare: freshPoolLead, cross: { expect: (res) => (res.status === 403 ? [] : [`expected 403, got ${res.status}`]) } },
  "POST /v1/leads/{id}/reassign": { id: "spareLead", prepare: freshSpareLead, body: () => ({ reason: "顾问调整" }), cross: { body: () => ({ reason: "越权" }), expect: notFound } },
  "POST /v1/leads/{id}/attempts": { id: "lead", ownContactsOnly: true, body: () => ({ channel: "phone", outcome: "reached" }), cross: { body: () => ({ channel: "wecom", outcome: "no_answer" }), expect: notFound } },
  "POST /v1/leads/{id}/outcome": { id: "spareLead", ownContactsOnly: true, prepare: freshSpareLead, body: () => ({ outcome: "lost", lostReason: "价格敏感" }), cross: { body: () => ({ outcome: "converted", amount: 1 }), expect: notFound } },
  "GET /v1/lead-settings": { cross: { expect: noLeak() } },
  "PUT /v1/lead-settings": { body: () => ({ assignment: { poolDailyClaimCap: 10 } }), cross: { query: (a) => `clinicId=${a.clinicId}`, body: () => ({}), expect: invalid("clinicId") } },
  "GET /v1/workspace": { cross: { expect: noLeak() } },
  "POST /v1/staff/{id}/offboard": { id: "leaver", prepare: freshLeaver, body: () => ({ reason: "离职", wecom: "none" }), cross: { body: () => ({ reason: "越权", wecom: "none" }), expect: notFound } },
  "GET /v1/staff/{id}/transfers": { id: "leaver", cross: { expect: notFound } },
  "GET /v1/tasks": { cross: { expect: noLeak((b) => [b.taskId]) } },
  "GET /v1/tasks/stats": { cross: { expect: noLeak() } },
  "GET /v1/tasks/{id}": { id: "task", ownContactsOnly: true, cross: { expect: notFound } },
  "POST /v1/tasks/{id}/done": { id: "spareTask", ownContactsOnly: true, prepare: freshSpareTask, cross: { expect: notFound } },
  "POST /v1/tasks/{id}/skip": { id: "spareTask", ownContactsOnly: true, prepare: freshSpareTask, body: () => ({ reason: "客户出差" }), cross: { body: () => ({ reason: "越权" }), expect: notFound } },
  "POST /v1/tasks/{id}/send": { id: "task", ownContactsOnly: true, passes: 412, cross: { expect: notFound } },
  "GET /v1/calendars": { cross: { expect: noLeak((b) => [b.calendarId]) } },
  "POST /v1/calendars": {
    body: () => ({ key: `cal-${randomUUID().slice(0, 8)}`, ...CALENDAR() }),
    // A's staff member is no sender in B.
    cross: { body: (a) => ({ key: `cal-${randomUUID().slice(0, 8)}`, ...CALENDAR(), owner: a.tenant.staff.marketing.email }), expect: invalid("owner") },
  },
  "POST /v1/calendars/lint": {
    body: () => CALENDAR(),
    cross: {
      body: (a) => ({ ...CALENDAR(), owner: a.tenant.staff.marketing.email }),
      expect: async (res, a, b) => [...(await noLeak()(res, a, b)), ...(res.body?.issues?.some((i: { path: string }) => i.path === "owner") ? [] : [`A's staff resolved in B: ${JSON.stringify(res.body)}`])],
    },
  },
  "GET /v1/calendars/{id}": { id: "calendar", cross: { expect: notFound } },
  "PUT /v1/calendars/{id}": { id: "calendar", body: () => CALENDAR(), cross: { body: () => CALENDAR("越权修改"), expect: notFound } },
  "POST /v1/calendars/{id}/publish": { id: "calendar", cross: { expect: notFound } },
  "GET /v1/calendars/{id}/enrollments": { id: "calendar", cross: { expect: notFound } },
  "POST /v1/calendars/{id}/enrollments": { id: "calendar", ownContactsOnly: true, prepare: freshEnrollee, body: (r) => ({ contactId: r.enrollContactId }), cross: { body: (a) => ({ contactId: a.enrollContactId }), expect: notFound } },
  "POST /v1/calendars/{id}/enrollments/end": { id: "calendar", ownContactsOnly: true, prepare: freshEnrolled, body: (r) => ({ contactId: r.enrollContactId, reason: "客户要求" }), cross: { body: (a) => ({ contactId: a.enrollContactId, reason: "越权" }), expect: notFound } },
  "GET /v1/calendars/{id}/report": { id: "calendar", cross: { expect: notFound } },
  "GET /v1/calendars/{id}/preview": { id: "calendar", cross: { expect: notFound } },
  "POST /v1/calendars/{id}/plan": { id: "calendar", cross: { expect: notFound } },
  "POST /v1/calendars/{id}/cancel-sends": { id: "calendar", body: () => ({ reason: "活动取消" }), cross: { body: () => ({ reason: "越权" }), expect: notFound } },
  // B asking for A's calendar's or contact's sends gets an empty page of its own tenant.
  "GET /v1/sends": { query: (r) => `calendarId=${r.calendarId}`, cross: { query: (a) => `contactId=${a.contactId}`, expect: async (res, a, b) => [...(await noLeak()(res, a, b)), ...(res.body?.items?.length === 0 ? [] : [`expected no sends, got ${JSON.stringify(res.body)}`])] } },
  "GET /v1/sop-templates": { cross: { expect: noLeak((b) => [b.sopTemplateId]) } },
  "POST /v1/sop-templates": { body: SOP, cross: { body: (a) => ({ ...SOP(), steps: [{ key: "day0", day: 0, title: "发文案", postId: a.postId }] }), expect: invalid("steps.0.postId") } },
  "GET /v1/sop-templates/{id}": { id: "sopTemplate", cross: { expect: notFound } },
  "PATCH /v1/sop-templates/{id}": { id: "sopTemplate", body: () => ({ priority: 7 }), cross: { body: () => ({ priority: 1 }), expect: notFound } },
  "DELETE /v1/sop-templates/{id}": { id: "sopTemplate", prepare: freshSopTemplate, cross: { expect: notFound } },
  "GET /v1/contacts/{id}/timeline": { id: "contact", ownContactsOnly: true, cross: { expect: notFound } },
  "POST /v1/contacts/{id}/referral-code": { id: "contact", ownContactsOnly: true, cross: { expect: notFound } },
  // Metrics: B naming A's clinic, segment or consultant is refused by field; B's own figures never carry A's ids.
  "GET /v1/metrics/funnel": { query: () => "by=clinic", cross: { query: (a) => `clinicId=${a.clinicId}`, expect: invalid("clinicId") } },
  "GET /v1/metrics/trends": { query: () => "period=week&by=consultant", cross: { query: (a) => `segmentId=${a.segmentId}`, expect: invalid("segmentId") } },
  "GET /v1/metrics/scorecards": { cross: { query: (a) => `staffId=${a.tenant.staff.consultant.id}`, expect: invalid("staffId") } },
  "GET /v1/metrics/scorecards/me": { cross: { expect: noLeak((b) => [b.tenant.staff.admin.id]) } },
  "GET /v1/attribution": { query: () => "by=consultant&model=linear", cross: { expect: noLeak() } },
  "GET /v1/alerts": { cross: { expect: noLeak((b) => [b.alertEpisodeId]) } },
  "POST /v1/alerts/{id}/ack": { id: "alertEpisode", cross: { expect: notFound } },
  "GET /v1/alerts/rules": { cross: { expect: noLeak((b) => [b.alertRuleId]) } },
  "POST /v1/alerts/rules": { body: () => ALERT_RULE(), cross: { body: (a) => ({ ...ALERT_RULE(), scope: { clinicId: a.clinicId } }), expect: invalid("scope.clinicId") } },
  "PATCH /v1/alerts/rules/{id}": { id: "alertRule", body: () => ({ name: `改名 ${randomUUID().slice(0, 8)}` }), cross: { body: () => ({ enabled: false }), expect: notFound } },
  "DELETE /v1/alerts/rules/{id}": { id: "spareAlertRule", prepare: freshAlertRule, cross: { expect: notFound } },
  // Conversions: B naming A's contact gets 404 (nothing recorded); B's import cannot find A's contact.
  "POST /v1/appointments": { ownContactsOnly: true, body: (r) => ({ contactId: r.contactId, at: new Date(Date.now() + 86_400_000).toISOString(), item: "光子嫩肤" }), cross: { body: (a) => ({ contactId: a.contactId, at: new Date().toISOString() }), expect: notFound } },
  "POST /v1/visits": { ownContactsOnly: true, body: (r) => ({ contactId: r.contactId, item: "复诊" }), cross: { body: (a) => ({ contactId: a.contactId }), expect: notFound } },
  "POST /v1/consultations": { ownContactsOnly: true, body: (r) => ({ contactId: r.contactId, outcome: "lost", lostReason: "价格敏感", mode: "online" }), cross: { body: (a) => ({ contactId: a.contactId, outcome: "converted", amount: 1 }), expect: notFound } },
  "POST /v1/purchases": { ownContactsOnly: true, body: (r) => ({ contactId: r.contactId, amount: 100, items: ["洁牙"] }), cross: { body: (a) => ({ contactId: a.contactId, amount: 1, items: [], staffId: a.tenant.staff.consultant.id, clinicId: a.clinicId }), expect: notFound } },
  "POST /v1/refunds": { ownContactsOnly: true, body: (r) => ({ contactId: r.contactId, amount: 10 }), cross: { body: (a) => ({ contactId: a.contactId, amount: 1 }), expect: notFound } },
  "POST /v1/conversions/import": {
    csv: (r) => `type,phone,occurredAt,amount,items\npurchase,${r.contactPhone},${new Date(Date.now() - 3_600_000).toISOString()},100,洁牙\n`,
    cross: {
      csv: (a) => `type,contact_id,occurredAt\nvisit,${a.contactId},${new Date(Date.now() - 3_600_000).toISOString()}\n`,
      expect: (res) => (res.status === 200 && res.body.imported === 0 && res.body.failed === 1 && res.body.errors[0]?.field === "contact" ? [] : [`expected the row to fail on contact, got ${res.status} ${JSON.stringify(res.body)}`]),
    },
  },
  "GET /v1/follow-ups": { cross: { expect: noLeak((b) => [b.followUpId]) } },
  "GET /v1/follow-ups/{id}": { id: "followUp", ownContactsOnly: true, cross: { expect: notFound } },
  "POST /v1/follow-ups/{id}/complete": { id: "spareFollowUp", ownContactsOnly: true, prepare: freshFollowUp, body: () => ({ note: "恢复良好" }), cross: { body: () => ({ note: "越权" }), expect: notFound } },
  "POST /v1/follow-ups/{id}/skip": { id: "spareFollowUp", ownContactsOnly: true, prepare: freshFollowUp, body: () => ({ reason: "联系不上" }), cross: { body: () => ({ reason: "越权" }), expect: notFound } },
  "GET /v1/contacts/{id}/surveys": { id: "contact", ownContactsOnly: true, cross: { expect: notFound } },
  "GET /v1/contacts/{id}/referrals": { id: "contact", ownContactsOnly: true, cross: { expect: notFound } },
  "GET /v1/analytics/settings": { cross: { expect: noLeak() } },
  "PUT /v1/analytics/settings": {
    body: () => ({ followUps: { afterVisitDays: 3 } }),
    cross: {
      // B can only ever write B's own settings: A's stay as they were.
      body: () => ({ followUps: { afterVisitDays: 9 } }),
      expect: async (res, a) => {
        const mine = await client(t.app, a.tenant.tokens.admin).get("/v1/analytics/settings");
        return res.status === 200 && mine.body.followUps.afterVisitDays !== 9 ? [] : [`expected B's own 200 and A unchanged, got ${res.status}, A ${JSON.stringify(mine.body)}`];
      },
    },
  },
  "POST /v1/wecom/sync": {
    body: () => ({}),
    // B starts B's own sync; its id is never one of A's runs.
    cross: { body: () => ({}), expect: async (res, a) => (res.status === 202 ? notOneOfAsRuns(res, a) : [`expected 202, got ${res.status} ${JSON.stringify(res.body)}`]) },
  },
  "GET /v1/wecom/sync": {
    cross: { expect: async (res, a) => (res.status === 200 || res.status === 404 ? notOneOfAsRuns(res, a) : [`expected 200 or 404, got ${res.status}`]) },
  },
  "PUT /v1/wecom/settings": {
    body: (r) => ({ corpId: r.corpId, agentId: 1000002 }),
    cross: {
      // B can only ever write B's own settings: A's stay as they were.
      body: (a) => ({ corpId: a.corpId, agentId: 1000099 }),
      expect: async (res, a) => {
        const mine = await client(t.app, a.tenant.tokens.admin).get("/v1/wecom/settings");
        return res.status === 200 && mine.body.agentId === 1000002 ? [] : [`expected B's own 200 and A unchanged, got ${res.status}, A agentId ${mine.body.agentId}`];
      },
    },
  },
};

const ALERT_RULE = () => ({ name: `成交率预警 ${randomUUID().slice(0, 8)}`, metric: "deal_rate", condition: { kind: "threshold", op: "lt", value: 0.2 } });

/** A new alert rule of the tenant: it becomes refs.spareAlertRuleId. */
async function freshAlertRule(r: Refs): Promise<void> {
  const res = await client(t.app, r.tenant.tokens.manager).post("/v1/alerts/rules", ALERT_RULE());
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  r.spareAlertRuleId = res.body.id;
}

/** A visit of contactId applied by the events worker's service, planning a follow-up: it becomes refs.spareFollowUpId. */
async function freshFollowUp(r: Refs): Promise<void> {
  const v = await client(t.app, r.tenant.tokens.consultant).post("/v1/visits", { contactId: r.contactId, idempotencyKey: `sec-visit-${randomUUID()}` });
  expect(v.status, JSON.stringify(v.body)).toBe(201);
  await processEvents({ ctx: systemCtx(t.rt.deps, r.tenant.id, "test"), eventIds: [v.body.eventId] });
  const [f] = await sql<{ id: string }[]>`select id from follow_ups where tenant_id = ${r.tenant.id} and visit_event_id = ${v.body.eventId}`;
  r.spareFollowUpId = f!.id;
}

/** A new contact of `consultant`: it becomes refs.enrollContactId. */
async function freshEnrollee(r: Refs): Promise<void> {
  const c = await client(t.app, r.tenant.tokens.consultant).post("/v1/contacts", { name: "术后客户", phone: phone() });
  expect(c.status).toBe(201);
  r.enrollContactId = c.body.id;
}

/** A new contact of `consultant`, enrolled in refs.calendarId. */
async function freshEnrolled(r: Refs): Promise<void> {
  await freshEnrollee(r);
  expect((await client(t.app, r.tenant.tokens.consultant).post(`/v1/calendars/${r.calendarId}/enrollments`, { contactId: r.enrollContactId })).status).toBe(201);
}

/** A relative calendar (aftercare, by enrollment) with one service entry. */
const CALENDAR = (name = "术后关怀") => ({
  name,
  audience: { enrollment: {} },
  variables: { name: { fallback: "您" } },
  entries: [{ key: "day1", when: { day: 1, time: "10:00" }, kind: "text", service: true, template: "{{name}}好，治疗后请注意防晒和保湿，有不适随时联系我们。" }],
});

const DRAFT = { rules: [{ id: "sec-need", name: "安全测试", trigger: { events: ["visit"] }, then: [{ add: { group: "need", tag: "祛痘" } }] }] };

async function saveDraftFor(r: Refs): Promise<void> {
  const res = await client(t.app, r.tenant.tokens.admin).call("PUT", "/v1/tag-rules/draft", DRAFT);
  if (res.status !== 200) throw new Error(`could not save a draft: ${res.status} ${JSON.stringify(res.body)}`);
}

async function notOneOfAsRuns(res: ApiResponse, a: Refs): Promise<string[]> {
  const runs = await sql<{ id: string }[]>`select id from wecom_sync_runs where tenant_id = ${a.tenant.id}`;
  const text = JSON.stringify(res.body);
  return runs.filter((r) => text.includes(r.id)).map((r) => `tenant A's sync run ${r.id} leaked`);
}

/** Operations open to anonymous callers or to every signed-in caller. */
const UNGUARDED = ["POST /v1/auth/login", "POST /v1/auth/logout", "GET /v1/me"];

function idsOf(r: Refs): string[] {
  return [r.tenant.id, r.contactId, r.spareStaffId, r.tokenId, r.clinicId, r.leadId, r.poolLeadId, r.spareLeadId, r.leaverId, r.taskId, r.spareTaskId, r.sopTemplateId, r.calendarId, r.enrollContactId, r.chatId, r.followUpId, r.alertRuleId, r.alertEpisodeId, ...Object.values(r.tenant.staff).map((s) => s.id)];
}

async function makeRefs(tenant: TestTenant): Promise<Refs> {
  const consultant = client(t.app, tenant.tokens.consultant);
  const admin = client(t.app, tenant.tokens.admin);
  const contactPhone = phone();
  const contact = await consultant.post("/v1/contacts", { name: "归属客户", phone: contactPhone });
  expect(contact.status).toBe(201);
  const ctx = systemCtx(t.rt.deps, tenant.id, "test");
  const spare = await createStaff({ ctx, input: { name: "备用", email: `spare@${tenant.slug}.test`, role: "marketing" } });
  const token = await createToken({ ctx, input: { staffId: spare.id, name: "unused" } });
  const clinicName = `门店 ${tenant.slug}`;
  const clinic = await admin.post("/v1/clinics", { name: clinicName, city: "杭州" });
  expect(clinic.status).toBe(201);
  // Both tenants' apps live in the one fake corp; they differ by agent id and secret.
  const corpId = FAKE_CORP;
  const agentId = tenant === A ? 1000002 : 1000003;
  const wecom = await admin.call("PUT", "/v1/wecom/settings", { corpId, agentId, secret: tenant === A ? "secret-tenant-a" : "secret-tenant-b", callbackToken: "Token123", encodingAesKey: "a".repeat(43) });
  for (const key of Object.keys(tenant.staff)) fake.control.createStaff({ userid: `${key}-${tenant.slug}` });
  expect(wecom.status).toBe(200);
  // Give the contact a timeline, so the events list has rows to leak.
  expect((await admin.post("/v1/events", event(contact.body.id))).status).toBe(202);
  const segment = await admin.post("/v1/segments", { name: `分群 ${tenant.slug}`, expression: "source = api OR visit:复诊" });
  expect(segment.status).toBe(201);
  const welcome = await client(t.app, tenant.tokens.marketing).post("/v1/posts", { kind: "welcome_message", body: "{{name}}您好，欢迎咨询" });
  const channel = await admin.post("/v1/wecom/channels", { name: `渠道 ${tenant.slug}`.slice(0, 30), staffIds: [tenant.staff.consultant.id] });
  expect([welcome.status, channel.status]).toEqual([201, 201]);
  const lead = await consultant.post("/v1/leads", { contactId: contact.body.id, source: "api", need: "祛痘" });
  expect(lead.status).toBe(201);
  const refs: Refs = { tenant, contactId: contact.body.id, contactPhone, spareStaffId: spare.id, tokenId: token.id, clinicId: clinic.body.id, clinicName, corpId, segmentId: segment.body.id, postId: "", postHash: "", queuedPostId: "", channelId: channel.body.id, welcomePostId: welcome.body.id, leadId: lead.body.id, poolLeadId: "", spareLeadId: "", leaverId: "", taskId: "", spareTaskId: "", sopTemplateId: "", calendarId: "", enrollContactId: "", chatId: `wr${tenant.slug.replace(/-/g, "")}chat`, followUpId: "", spareFollowUpId: "", alertRuleId: "", alertEpisodeId: "", spareAlertRuleId: "" };
  await sql`insert into wecom_group_chats (tenant_id, chat_id, name, owner_user_id) values (${tenant.id}, ${refs.chatId}, ${"祛痘交流群"}, ${`consultant-${tenant.slug}`})`;
  await freshLeaver(refs);
  refs.taskId = (await client(t.app, tenant.tokens.consultant).get(`/v1/tasks?leadId=${refs.leadId}`)).body.items[0].id;
  await freshSopTemplate(refs);
  await freshPoolLead(refs);
  await freshSpareTask(refs);
  await freshPost(refs, true);
  refs.queuedPostId = refs.postId;
  await freshPost(refs, false);
  const calendar = await client(t.app, tenant.tokens.marketing).post("/v1/calendars", { key: `aftercare-${tenant.slug}`, ...CALENDAR() });
  expect(calendar.status, JSON.stringify(calendar.body)).toBe(201);
  refs.calendarId = calendar.body.id;
  await freshEnrollee(refs);
  await freshFollowUp(refs);
  refs.followUpId = refs.spareFollowUpId;
  await freshFollowUp(refs);
  await freshAlertRule(refs);
  refs.alertRuleId = refs.spareAlertRuleId;
  refs.alertEpisodeId = (await sql<{ id: string }[]>`insert into alert_episodes (tenant_id, rule_id, scope_key, value, baseline) values (${tenant.id}, ${refs.alertRuleId}, 'all', 0.1, 0.2) returning id`)[0]!.id;
  await freshAlertRule(refs);
  return refs;
}

/** A new post by the tenant's marketing staff, submitted for review or left a draft; it becomes refs.postId. */
async function freshPost(r: Refs, submit: boolean): Promise<void> {
  const mk = client(t.app, r.tenant.tokens.marketing);
  const p = await mk.post("/v1/posts", { kind: "community_post", body: `会员日活动提醒 ${randomUUID()}` });
  expect(p.status).toBe(201);
  if (submit) expect((await mk.post(`/v1/posts/${p.body.id}/submit`)).status).toBe(200);
  r.postId = p.body.id;
  r.postHash = p.body.contentHash;
}

/** A new contact owned by the tenant's `consultant`, with an open lead: it becomes refs.spareLeadId. */
async function freshSpareLead(r: Refs): Promise<void> {
  const consultant = client(t.app, r.tenant.tokens.consultant);
  const c = await consultant.post("/v1/contacts", { name: "备用线索", phone: phone() });
  const l = await consultant.post("/v1/leads", { contactId: c.body.id, source: "api" });
  expect([c.status, l.status]).toEqual([201, 201]);
  r.spareLeadId = l.body.id;
}

/** A fresh lead of `consultant` and its first SOP task: it becomes refs.spareTaskId. */
async function freshSpareTask(r: Refs): Promise<void> {
  await freshSpareLead(r);
  const tasks = await client(t.app, r.tenant.tokens.consultant).get(`/v1/tasks?leadId=${r.spareLeadId}`);
  expect(tasks.body.items.length).toBeGreaterThan(0);
  r.spareTaskId = tasks.body.items[0].id;
}

/** A new SOP template of the tenant: it becomes refs.sopTemplateId. */
async function freshSopTemplate(r: Refs): Promise<void> {
  const res = await client(t.app, r.tenant.tokens.manager).post("/v1/sop-templates", SOP());
  expect(res.status).toBe(201);
  r.sopTemplateId = res.body.id;
}

/** A new consultant with one contact, about to leave: it becomes refs.leaverId. */
async function freshLeaver(r: Refs): Promise<void> {
  const ctx = systemCtx(t.rt.deps, r.tenant.id, "test");
  const s = await createStaff({ ctx, input: { name: "离职顾问", email: `leaver-${randomUUID().slice(0, 8)}@${r.tenant.slug}.test`, role: "consultant" } });
  const c = await client(t.app, r.tenant.tokens.admin).post("/v1/contacts", { name: "交接客户", phone: phone(), ownerStaffId: s.id });
  expect(c.status).toBe(201);
  r.leaverId = s.id;
}

/** A new lead released to the pool (公海) by the tenant's manager: it becomes refs.poolLeadId. */
async function freshPoolLead(r: Refs): Promise<void> {
  await freshSpareLead(r);
  const res = await client(t.app, r.tenant.tokens.manager).post(`/v1/leads/${r.spareLeadId}/reassign`, { toStaffId: null, reason: "放回公海" });
  expect(res.status).toBe(200);
  r.poolLeadId = r.spareLeadId;
}

/** A real id of the kind the path takes; a throwaway token when the call would revoke it. */
async function idFor(kind: OpSpec["id"], r: Refs, destructive: boolean): Promise<string> {
  if (kind === "contact") return r.contactId;
  if (kind === "staff") return r.spareStaffId;
  if (kind === "segment") return r.segmentId;
  if (kind === "post") return r.postId;
  if (kind === "channel") return r.channelId;
  if (kind === "lead") return r.leadId;
  if (kind === "poolLead") return r.poolLeadId;
  if (kind === "spareLead") return r.spareLeadId;
  if (kind === "leaver") return r.leaverId;
  if (kind === "task") return r.taskId;
  if (kind === "spareTask") return r.spareTaskId;
  if (kind === "sopTemplate") return r.sopTemplateId;
  if (kind === "calendar") return r.calendarId;
  if (kind === "chat") return r.chatId;
  if (kind === "followUp") return r.followUpId;
  if (kind === "spareFollowUp") return r.spareFollowUpId;
  if (kind === "alertRule") return r.alertRuleId;
  if (kind === "spareAlertRule") return r.spareAlertRuleId;
  if (kind === "alertEpisode") return r.alertEpisodeId;
  if (kind === "token") {
    if (!destructive) return r.tokenId;
    return (await createToken({ ctx: systemCtx(t.rt.deps, r.tenant.id, "test"), input: { staffId: r.spareStaffId, name: "throwaway" } })).id;
  }
  throw new Error(`unknown id kind ${String(kind)}`);
}

/** Call an operation with its spec's parameters and body. */
async function callOp(op: Operation, token: string | undefined, r: Refs, opts: { destructive?: boolean; body?: unknown; csv?: string; query?: string; headers?: Record<string, string> } = {}) {
  const spec = SPECS[op.key]!;
  if (opts.destructive) await spec.prepare?.(r);
  let path = op.path;
  if (path.includes("{id}")) path = path.replace("{id}", await idFor(spec.id, r, opts.destructive ?? false));
  if (/\{\w+\}/.test(path)) throw new Error(`${op.key}: a path parameter this test cannot fill`);
  const query = opts.query ?? spec.query?.(r);
  if (query) path += `?${query}`;
  const c = client(t.app, token);
  const csv = opts.csv ?? spec.csv?.(r);
  if (csv !== undefined) return c.call(op.method, path, csv, { "content-type": "text/csv", ...opts.headers });
  return c.call(op.method, path, opts.body ?? spec.body?.(r), opts.headers);
}

function problemIssues(res: ApiResponse, status: number, code: string): string[] {
  const out: string[] = [];
  if (res.status !== status) out.push(`status ${res.status}, expected ${status}`);
  if (!/^application\/problem\+json/.test(res.headers.get("content-type") ?? "")) out.push(`content-type ${res.headers.get("content-type")}`);
  const b = res.body ?? {};
  if (b.code !== code) out.push(`code ${b.code}, expected ${code}`);
  if (b.status !== status || typeof b.type !== "string" || typeof b.title !== "string" || typeof b.detail !== "string") out.push(`not a problem body: ${JSON.stringify(b)}`);
  if (!b.requestId || b.requestId !== res.headers.get("x-request-id")) out.push(`requestId ${b.requestId} vs header ${res.headers.get("x-request-id")}`);
  return out;
}

async function auditCount(tenantId: string): Promise<number> {
  const [row] = await sql<{ n: number }[]>`select count(*)::int as n from audit_log where tenant_id = ${tenantId}`;
  return row!.n;
}

beforeAll(async () => {
  // WeCom calls (channels, referral codes) go to a fake that knows both tenants' app secrets.
  fake = await startFakeWecom({ corpId: FAKE_CORP, secrets: ["secret-tenant-a", "secret-tenant-b"] });
  t = await createTestRuntime({}, { wecomBaseUrl: fake.url });
  sql = postgres(t.databaseUrl, { max: 2, onnotice: () => {} });
  [A, B] = await Promise.all([createTestTenant(t.rt.deps), createTestTenant(t.rt.deps)]);
  refsA = await makeRefs(A);
  refsB = await makeRefs(B);
  const doc = (await (await t.app.request("/openapi.json")).json()) as { paths: Record<string, Record<string, Record<string, unknown>>> };
  ops = [];
  for (const [path, byMethod] of Object.entries(doc.paths)) {
    if (!path.startsWith("/v1/")) continue;
    for (const [method, op] of Object.entries(byMethod)) {
      const key = `${method.toUpperCase()} ${path}`;
      if (op["x-permission"] === undefined) continue;
      ops.push({ method: method.toUpperCase(), path, key, permission: op["x-permission"] as Permission, roles: op["x-roles"] as string[] });
    }
  }
});

afterAll(async () => {
  await sql?.end();
  await t?.close();
  await fake?.close();
});

describe("the route list", () => {
  it("knows how to call every guarded /v1 operation in the OpenAPI document, and nothing else is unguarded", async () => {
    const doc = (await (await t.app.request("/openapi.json")).json()) as { paths: Record<string, Record<string, Record<string, unknown>>> };
    const all = Object.entries(doc.paths)
      .filter(([p]) => p.startsWith("/v1/"))
      .flatMap(([p, byMethod]) => Object.entries(byMethod).map(([m, op]) => ({ key: `${m.toUpperCase()} ${p}`, op })));
    const unguarded = all.filter((x) => x.op["x-permission"] === undefined).map((x) => x.key);
    expect(unguarded.sort(), "a /v1 operation without x-permission: guard it with route() or add it to UNGUARDED deliberately").toEqual([...UNGUARDED].sort());
    const unknown = ops.map((o) => o.key).filter((k) => !SPECS[k]);
    expect(unknown, "new operations: add them to SPECS in tests/integration/security.test.ts so they are tried").toEqual([]);
    const gone = Object.keys(SPECS).filter((k) => !ops.some((o) => o.key === k));
    expect(gone, "SPECS lists operations the document no longer has").toEqual([]);
    // Response schemas are documented too (the Contact one is built from the service's view).
    const schemas = (doc as { components?: { schemas?: Record<string, { properties?: Record<string, unknown> }> } }).components?.schemas ?? {};
    expect(Object.keys(schemas.Contact?.properties ?? {})).toEqual(expect.arrayContaining(["id", "phone", "phoneMasked", "ownerStaffId"]));
    for (const o of ops) {
      expect(o.roles, o.key).toEqual([...PERMISSIONS[o.permission]]);
      for (const r of o.roles) expect(ROLES as readonly string[]).toContain(r);
    }
  });

  it("documents every /v1 route the app serves (no undocumented, unguarded handlers)", () => {
    const documented = new Set([...ops.map((o) => o.key), ...UNGUARDED].map((k) => k.replace(/\{(\w+)\}/g, ":$1")));
    const served = new Set(t.app.routes.filter((r) => r.method !== "ALL" && r.path.startsWith("/v1/")).map((r) => `${r.method} ${r.path}`));
    expect([...served].filter((k) => !documented.has(k))).toEqual([]);
  });
});

describe("every guarded operation", () => {
  it("answers 401 problem+json without credentials, and changes nothing", async () => {
    const before = await auditCount(A.id);
    const failures: string[] = [];
    for (const op of ops) {
      const res = await callOp(op, undefined, refsA);
      failures.push(...problemIssues(res, 401, "UNAUTHENTICATED").map((m) => `${op.key}: ${m}`));
      if (res.headers.get("www-authenticate") === null) failures.push(`${op.key}: no WWW-Authenticate header`);
    }
    expect(failures).toEqual([]);
    expect(await auditCount(A.id)).toBe(before);
  });

  it("answers 401 to a garbage, malformed or foreign-looking bearer token", async () => {
    const failures: string[] = [];
    const garbage = ["garbage", `sy_AAAAAAAA_${"x".repeat(32)}`, A.tokens.admin.slice(0, -1)];
    for (const op of ops) {
      for (const token of garbage) {
        const res = await callOp(op, token, refsA);
        failures.push(...problemIssues(res, 401, "UNAUTHENTICATED").map((m) => `${op.key} with ${token.slice(0, 12)}…: ${m}`));
      }
      for (const header of ["Basic YWRtaW46YWRtaW4=", "Bearer", `Bearer ${A.tokens.admin} extra`, `Token ${A.tokens.admin}`]) {
        const res = await callOp(op, undefined, refsA, { headers: { authorization: header } });
        failures.push(...problemIssues(res, 401, "UNAUTHENTICATED").map((m) => `${op.key} with "${header.slice(0, 14)}…": ${m}`));
      }
    }
    expect(failures).toEqual([]);
  });

  it("answers 403 FORBIDDEN to every role outside x-roles, with a valid request, and changes nothing", async () => {
    const before = await auditCount(A.id);
    const failures: string[] = [];
    let tried = 0;
    for (const op of ops) {
      for (const role of ROLES.filter((r) => !op.roles.includes(r))) {
        tried++;
        const res = await callOp(op, A.tokens[role], refsA);
        failures.push(...problemIssues(res, 403, "FORBIDDEN").map((m) => `${op.key} as ${role}: ${m}`));
      }
    }
    expect(failures).toEqual([]);
    expect(tried).toBeGreaterThan(20);
    expect(await auditCount(A.id)).toBe(before);
    const [token] = await sql<{ revoked_at: Date | null }[]>`select revoked_at from api_tokens where id = ${refsA.tokenId}`;
    expect(token?.revoked_at).toBeNull();
  });

  it("lets every role in x-roles through (consultants see only their own contacts)", async () => {
    const failures: string[] = [];
    const keys: StaffKey[] = ["admin", "manager", "marketing", "consultant", "consultant2", "reviewer"];
    for (const op of ops) {
      const spec = SPECS[op.key]!;
      for (const key of keys) {
        const role = key === "consultant2" ? "consultant" : key;
        if (!op.roles.includes(role)) continue;
        const res = await callOp(op, A.tokens[key], refsA, { destructive: true });
        const expected = key === "consultant2" && spec.ownContactsOnly ? "404" : "2xx";
        const ok = expected === "404" ? res.status === 404 : (res.status >= 200 && res.status < 300) || res.status === spec.passes;
        if (!ok) failures.push(`${op.key} as ${key}: expected ${expected}, got ${res.status} ${JSON.stringify(res.body)}`);
      }
    }
    expect(failures).toEqual([]);
  });
});

describe("tenant isolation", () => {
  async function snapshotA() {
    const admin = client(t.app, A.tokens.admin);
    const contact = await admin.get(`/v1/contacts/${refsA.contactId}`);
    const staff = await admin.get(`/v1/staff/${refsA.spareStaffId}`);
    const tokens = await admin.get(`/v1/tokens?staffId=${refsA.spareStaffId}`);
    const clinics = await admin.get("/v1/clinics");
    const events = await admin.get(`/v1/events?contactId=${refsA.contactId}`);
    expect([contact.status, staff.status, tokens.status, clinics.status, events.status]).toEqual([200, 200, 200, 200, 200]);
    return {
      contact: contact.body,
      staff: staff.body,
      token: tokens.body.items.find((x: { id: string }) => x.id === refsA.tokenId),
      clinics: clinics.body.items,
      events: events.body.items,
    };
  }

  it("refuses tenant B's admin every operation on tenant A's records, and A's rows are unchanged", async () => {
    const before = await snapshotA();
    expect(before.token).toMatchObject({ id: refsA.tokenId, revokedAt: null });
    const auditBefore = await auditCount(A.id);
    const failures: string[] = [];
    for (const op of ops) {
      const cross = SPECS[op.key]!.cross;
      await cross.prepare?.(refsB);
      const res = await callOp(op, B.tokens.admin, refsA, {
        destructive: false,
        body: cross.body?.(refsA),
        csv: cross.csv?.(refsA),
        query: cross.query?.(refsA),
      });
      failures.push(...(await cross.expect(res, refsA, refsB)).map((m) => `${op.key}: ${m}`));
    }
    expect(failures).toEqual([]);
    expect(await snapshotA()).toEqual(before);
    expect(await auditCount(A.id)).toBe(auditBefore);
    // A's token still works.
    const tokenRow = await sql`select revoked_at from api_tokens where id = ${refsA.tokenId}`;
    expect(tokenRow[0]?.revoked_at).toBeNull();
  });

  it("filters lists by tenant even when asked for tenant A's records by id", async () => {
    const b = client(t.app, B.tokens.admin);
    const a = refsA;
    const checks: [string, (body: unknown) => boolean][] = [
      [`/v1/contacts?owner=${a.tenant.staff.consultant.id}`, (x) => (x as { items: unknown[] }).items.length === 0],
      [`/v1/contacts?q=${a.contactPhone}`, (x) => !JSON.stringify(x).includes(a.contactId)],
      [`/v1/tokens?staffId=${a.spareStaffId}`, (x) => (x as { items: unknown[] }).items.length === 0],
      [`/v1/audit?entityId=${a.contactId}`, (x) => (x as { items: unknown[] }).items.length === 0],
      [`/v1/audit?entityType=staff&entityId=${a.tenant.staff.admin.id}`, (x) => (x as { items: unknown[] }).items.length === 0],
    ];
    for (const [path, ok] of checks) {
      const res = await b.get(path);
      expect(res.status, path).toBe(200);
      expect(ok(res.body), `${path}: ${JSON.stringify(res.body)}`).toBe(true);
    }
    // And the same queries do find A's records for A (the filters above are not vacuous).
    const own = client(t.app, A.tokens.admin);
    expect((await own.get(`/v1/contacts?owner=${a.tenant.staff.consultant.id}`)).body.items.map((x: { id: string }) => x.id)).toContain(a.contactId);
    expect((await own.get(`/v1/tokens?staffId=${a.spareStaffId}`)).body.items.map((x: { id: string }) => x.id)).toContain(a.tokenId);
    expect((await own.get(`/v1/audit?entityId=${a.contactId}`)).body.items.length).toBeGreaterThan(0);
  });

  it("refuses an event batch naming another tenant's contact: 422 on events[0].contactId, nothing stored", async () => {
    const key = `batch-${randomUUID()}`;
    const before = await sql<{ n: number }[]>`select count(*)::int as n from events where tenant_id in (${A.id}, ${B.id})`;
    const res = await client(t.app, B.tokens.admin).post("/v1/events", {
      events: [
        { type: "message_received", contactId: refsA.contactId, occurredAt: new Date().toISOString(), idempotencyKey: key, data: { text: "hi" } },
        { type: "message_received", contactId: refsB.contactId, occurredAt: new Date().toISOString(), idempotencyKey: `${key}-b`, data: { text: "hi" } },
      ],
    });
    expect(problemIssues(res, 422, "VALIDATION_FAILED")).toEqual([]);
    expect(res.body.errors).toEqual([{ field: "events[0].contactId", message: expect.any(String) }]);
    const after = await sql<{ n: number }[]>`select count(*)::int as n from events where tenant_id in (${A.id}, ${B.id})`;
    expect(after[0]!.n).toBe(before[0]!.n);
    const timeline = await client(t.app, A.tokens.admin).get(`/v1/events?contactId=${refsA.contactId}`);
    expect(timeline.body.items.map((e: { idempotencyKey: string }) => e.idempotencyKey)).not.toContain(key);
  });
});

describe("consultant isolation", () => {
  it("hides a consultant's contact from another consultant: get, patch, tags, timeline 404; absent from lists", async () => {
    const other = client(t.app, A.tokens.consultant2);
    const id = refsA.contactId;
    const before = (await client(t.app, A.tokens.admin).get(`/v1/contacts/${id}`)).body;
    for (const [what, res] of [
      ["get", await other.get(`/v1/contacts/${id}`)],
      ["patch", await other.patch(`/v1/contacts/${id}`, { name: "抢过来" })],
      ["take over", await other.patch(`/v1/contacts/${id}`, { ownerStaffId: A.staff.consultant2.id })],
      ["tags", await other.get(`/v1/contacts/${id}/tags`)],
      ["timeline", await other.get(`/v1/events?contactId=${id}`)],
    ] as const) {
      expect(problemIssues(res, 404, "NOT_FOUND"), what).toEqual([]);
    }
    const list = await other.get("/v1/contacts?limit=200");
    expect(list.status).toBe(200);
    expect(list.body.items.map((c: { id: string }) => c.id)).not.toContain(id);
    expect((await other.get(`/v1/contacts?q=${refsA.contactPhone}`)).body.items).toEqual([]);
    expect((await client(t.app, A.tokens.admin).get(`/v1/contacts/${id}`)).body).toEqual(before);
  });

  it("shows a consultant their own contacts, and only those", async () => {
    const mine = client(t.app, A.tokens.consultant);
    expect((await mine.get(`/v1/contacts/${refsA.contactId}`)).status).toBe(200);
    const list = await mine.get("/v1/contacts?limit=200");
    expect(list.body.items.map((c: { id: string }) => c.id)).toContain(refsA.contactId);
    for (const c of list.body.items) expect(c.ownerStaffId).toBe(A.staff.consultant.id);
    const created = await client(t.app, A.tokens.consultant2).post("/v1/contacts", { name: "二号的客户" });
    expect(created.body.ownerStaffId).toBe(A.staff.consultant2.id);
    expect((await mine.get(`/v1/contacts/${created.body.id}`)).status).toBe(404);
  });

  it("does not let a consultant give contacts away or create them for someone else", async () => {
    const mine = client(t.app, A.tokens.consultant);
    const give = await mine.patch(`/v1/contacts/${refsA.contactId}`, { ownerStaffId: A.staff.consultant2.id });
    expect(problemIssues(give, 403, "FORBIDDEN")).toEqual([]);
    const forOther = await mine.post("/v1/contacts", { name: "替别人建", ownerStaffId: A.staff.consultant2.id });
    expect(problemIssues(forOther, 403, "FORBIDDEN")).toEqual([]);
    const c = await client(t.app, A.tokens.admin).get(`/v1/contacts/${refsA.contactId}`);
    expect(c.body.ownerStaffId).toBe(A.staff.consultant.id);
  });
});

describe("phone numbers", () => {
  it("are masked for roles without PII rights and clear for admins and the owning consultant", async () => {
    const digits = refsA.contactPhone;
    const masked = `${digits.slice(0, 3)}****${digits.slice(7)}`;
    const path = `/v1/contacts/${refsA.contactId}`;
    const marketing = client(t.app, A.tokens.marketing);
    const m = await marketing.get(path);
    expect(m.body).toMatchObject({ phone: masked, phoneMasked: true });
    expect(JSON.stringify(m.body)).not.toContain(digits.slice(3, 7) + digits.slice(7));
    const mList = await marketing.get(`/v1/contacts?q=${digits}`);
    expect(mList.body.items).toEqual([expect.objectContaining({ id: refsA.contactId, phone: masked, phoneMasked: true })]);
    const mPatch = await marketing.patch(path, { attributes: { seenBy: "marketing" } });
    expect(mPatch.body).toMatchObject({ phone: masked, phoneMasked: true });
    for (const key of ["admin", "consultant"] as const) {
      const res = await client(t.app, A.tokens[key]).get(path);
      expect(res.body, key).toMatchObject({ phone: `+86${digits}`, phoneMasked: false });
    }
    const reviewer = await client(t.app, A.tokens.reviewer).get(path);
    expect(reviewer.status).toBe(403);
  });

  it("are stored encrypted with a keyed hash, and never in clear in the audit log", async () => {
    const digits = refsA.contactPhone;
    const [row] = await sql<{ phone_enc: string; phone_hash: string; phone_mask: string }[]>`select phone_enc, phone_hash, phone_mask from contacts where id = ${refsA.contactId}`;
    expect(row).toBeDefined();
    for (const needle of [digits, digits.slice(3), digits.slice(-8)]) {
      expect(row!.phone_enc).not.toContain(needle);
      expect(row!.phone_hash).not.toContain(needle);
    }
    expect(row!.phone_hash).not.toBe(digits);
    expect(row!.phone_hash).not.toBe(`+86${digits}`);
    expect(row!.phone_mask).toBe(`${digits.slice(0, 3)}****${digits.slice(7)}`);
    // It is real ciphertext of the number (decrypts with the key), not a scrambled copy.
    expect(t.rt.deps.pii!.decrypt(row!.phone_enc)).toBe(`+86${digits}`);
    // Same number, other tenant (B imported it): same keyed hash is fine, but a distinct ciphertext (random IV).
    const same = await sql<{ tenant_id: string; phone_enc: string }[]>`select tenant_id, phone_enc from contacts where phone_hash = ${row!.phone_hash}`;
    expect(same.length).toBeGreaterThanOrEqual(1);
    expect(new Set(same.map((s) => s.phone_enc)).size).toBe(same.length);
    const audits = await sql<{ doc: string }[]>`select coalesce(before::text, '') || coalesce(after::text, '') as doc from audit_log`;
    for (const a of audits) expect(a.doc).not.toContain(digits.slice(3));
  });
});
