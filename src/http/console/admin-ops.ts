import { Hono } from "hono";
import { can } from "../../domain/auth/permissions";
import { NotFoundError, ValidationError } from "../../errors";
import { JOB_STATES } from "../../queue/inspect";
import { listAudit, type AuditView } from "../../services/audit/list";
import { queueDashboard, retryQueueJob } from "../../services/queues/dashboard";
import { listStaff } from "../../services/staff/list";
import type { StaffView } from "../../services/staff/schemas";
import type { AppEnv } from "../types";
import { clip, doneNotice, selectOptions } from "./admin-kit";
import { hasMessage, type MessageKey } from "./i18n";
import { formOf, page, type Page } from "./kit";
import { withQuery } from "./views";

const AUDIT_PAGE = 50;

/** Actions worth a shortcut in the filter (any other can be typed). */
const KNOWN_ACTIONS = [
  "staff.create",
  "staff.update",
  "staff.offboard",
  "token.create",
  "token.revoke",
  "post.submit",
  "post.approve",
  "post.reject",
  "post.override",
  "post.send",
  "post.send.refused",
  "calendar.publish",
  "tag_rules.publish",
  "tag_rules.rollback",
  "contact.create",
  "contact.reassign",
  "lead.create",
  "lead.reassign",
  "lead.claim",
  "lead.outcome",
  "lead.sla_breach",
  "lead.settings",
  "wecom.settings.update",
  "wecom.sync.start",
  "queue.retry",
] as const;

/** Console pages of operations: the queue dashboard (任务队列) and the audit log (操作日志). */
export function opsPages(timeZone: string) {
  const app = new Hono<AppEnv>();

  const queuesPage = async (p: Page, retryError?: string, status = 200) => {
    const d = await queueDashboard({ ctx: p.ctx });
    const label = (k: string) => (hasMessage(`queues.q.${k}`) ? p.t(`queues.q.${k}` as MessageKey) : k);
    return p.html(
      "queues",
      {
        flash: doneNotice(p, "queues"),
        retryError,
        states: JOB_STATES.map((s) => p.t(`queues.state.${s}`)),
        queues: d.queues.map((q) => ({
          name: q.queue,
          label: label(q.queue),
          counts: JOB_STATES.map((s) => ({ state: s, label: p.t(`queues.state.${s}`), n: q.counts[s], alert: s === "failed" && q.counts[s] > 0 })),
        })),
        events: [
          { label: p.t("queues.events.pending"), n: d.events.pending },
          { label: p.t("queues.events.failing"), n: d.events.failing, danger: d.events.failing > 0 },
          { label: p.t("queues.events.processedLastHour"), n: d.events.processedLastHour },
        ],
        oldestPending: d.events.oldestPendingAt ? p.t("queues.events.oldest", { at: p.fmt.dateTime(d.events.oldestPendingAt) }) : undefined,
        eventsError: d.events.lastError ? clip(d.events.lastError, 300) : undefined,
        failed: d.failed.map((j) => ({
          queue: j.queue,
          queueLabel: label(j.queue),
          id: j.id,
          name: j.name,
          reason: clip(j.failedReason || "—", 400),
          attempts: p.t("queues.failed.attempts", { made: j.attemptsMade, of: j.attempts }),
          failedAt: p.fmt.dateTime(j.failedAt),
          confirm: p.t("queues.retry.confirm", { name: j.name }),
        })),
      },
      { title: p.t("queues.title"), section: "queues", status },
    );
  };

  app.get("/console/queues", page(timeZone, "queues:read", (p) => queuesPage(p)));

  app.post("/console/queues/retry", page(timeZone, "queues:read", async (p) => {
    const f = await formOf(p.c);
    try {
      await retryQueueJob({ ctx: p.ctx, input: { queue: f.queue, jobId: f.jobId } });
    } catch (err) {
      // Retried meanwhile, or gone (BullMQ keeps failed jobs a week): said on the page.
      if (err instanceof ValidationError || err instanceof NotFoundError) return queuesPage(p, p.t("queues.retry.gone"), err instanceof NotFoundError ? 404 : 422);
      throw err;
    }
    return p.c.redirect("/console/queues?done=retried#done", 303);
  }));

  app.get("/console/audit", page(timeZone, "audit:read", async (p) => {
    const q = (k: string) => p.c.req.query(k)?.trim() || undefined;
    const actor = q("actor");
    const filters = { action: q("action"), entityType: q("entityType"), entityId: q("entityId"), cursor: q("cursor") };
    const actorInput = actor === "system" ? { actorKind: "system" } : actor ? { actorStaffId: actor } : {};
    const staff = can(p.principal.role, "staff:read") ? await listStaff({ ctx: p.ctx }) : ([] as StaffView[]);
    const errors: Record<string, string> = {};
    let result: Awaited<ReturnType<typeof listAudit>> = { items: [], nextCursor: null };
    try {
      result = await listAudit({ ctx: p.ctx, input: { ...filters, ...actorInput, limit: AUDIT_PAGE } });
    } catch (err) {
      // A mistyped filter is shown next to its field; a stale cursor is a bad link (400 page).
      if (!(err instanceof ValidationError) || err.issues.some((i) => i.field === "cursor")) throw err;
      for (const i of err.issues) errors[i.field === "actorStaffId" || i.field === "actorKind" ? "actor" : i.field] = p.t("audit.err.filter", { message: i.message });
    }
    const names = new Map(staff.map((s) => [s.id, s.name]));
    const filtered = Boolean(actor || filters.action || filters.entityType || filters.entityId);
    return p.html(
      "audit",
      {
        errors,
        filtered,
        actors: [
          { value: "", label: p.t("audit.actor.any"), selected: !actor },
          { value: "system", label: p.t("audit.actor.system"), selected: actor === "system" },
          ...selectOptions(staff.map((s) => ({ value: s.id, label: `${s.name}（${p.t(`role.${s.role}` as MessageKey)}）` })), actor),
        ],
        action: filters.action ?? "",
        entityType: filters.entityType ?? "",
        entityId: filters.entityId ?? "",
        knownActions: KNOWN_ACTIONS,
        items: result.items.map((r) => auditRow(p, r, names)),
        nextHref: result.nextCursor ? withQuery(p.url, { cursor: result.nextCursor }) : undefined,
        firstHref: filters.cursor ? withQuery(p.url, { cursor: undefined }) : undefined,
        empty: p.t(filtered ? "audit.empty.filtered" : "audit.empty"),
      },
      { title: p.t("audit.title"), section: "audit" },
    );
  }));

  return app;
}

/** Console pages where an audited entity can be opened. */
const ENTITY_PAGES: Record<string, (id: string) => string> = {
  contact: (id) => `/console/contacts/${id}`,
  staff: (id) => `/console/staff/${id}`,
  lead: (id) => `/console/leads/${id}`,
};

function auditRow(p: Page, r: AuditView, names: Map<string, string>) {
  const who = r.actorKind === "system" ? p.t("audit.actor.system") : r.actorStaffId ? (names.get(r.actorStaffId) ?? r.actorStaffId.slice(0, 8)) : "—";
  const link = ENTITY_PAGES[r.entityType];
  return {
    id: r.id,
    at: p.fmt.dateTime(r.at),
    atIso: r.at,
    who,
    actorHref: r.actorStaffId ? withQuery(p.url, { actor: r.actorStaffId, cursor: undefined }) : undefined,
    action: r.action,
    actionLabel: hasMessage(`audit.a.${r.action}`) ? p.t(`audit.a.${r.action}` as MessageKey) : undefined,
    actionHref: withQuery(p.url, { action: r.action, cursor: undefined }),
    entityType: r.entityType,
    entityId: r.entityId,
    entityShort: r.entityId.length > 12 ? `${r.entityId.slice(0, 8)}…` : r.entityId,
    entityHref: link && /^[0-9a-f-]{36}$/i.test(r.entityId) ? link(r.entityId) : undefined,
    // The whole history of the target: the other filters go.
    targetHref: withQuery(p.url, { entityType: r.entityType, entityId: r.entityId, action: undefined, actor: undefined, cursor: undefined }),
    change: changeText(r.before, r.after),
    requestId: r.requestId,
  };
}

/** What changed, briefly: `field: before → after` for fields that differ, else the fields recorded. */
export function changeText(before: Record<string, unknown> | null, after: Record<string, unknown> | null): string {
  const show = (v: unknown) => clip(typeof v === "string" ? v : JSON.stringify(v) ?? "—", 60);
  const skip = new Set(["updatedAt", "createdAt", "tenantId", "id"]);
  if (before && after) {
    const keys = [...new Set([...Object.keys(before), ...Object.keys(after)])].filter((k) => !skip.has(k) && JSON.stringify(before[k]) !== JSON.stringify(after[k]));
    return clip(keys.map((k) => `${k}: ${show(before[k])} → ${show(after[k])}`).join("；"), 400);
  }
  const one = after ?? before;
  if (!one) return "";
  return clip(
    Object.entries(one)
      .filter(([k, v]) => !skip.has(k) && v !== null && v !== undefined)
      .map(([k, v]) => `${k}: ${show(v)}`)
      .join("；"),
    400,
  );
}
