import { Hono } from "hono";
import { can, ownsOnly } from "../../domain/auth/permissions";
import { ConflictError, ValidationError, type FieldIssue } from "../../errors";
import type { LeadView } from "../../services/leads/leads";
import { leadOutcomeOptions } from "../../services/leads/outcome-options";
import { completeTask, getTask, listTasks, skipTask } from "../../services/leads/sop";
import { ATTEMPT_CHANNELS, ATTEMPT_OUTCOMES, leadTimeline, recordAttempt, recordOutcome, workspace } from "../../services/leads/workspace";
import type { AppEnv } from "../types";
import { hasMessage, type MessageKey } from "./i18n";
import { formOf, page, type Page } from "./kit";
import { options, timelineItems } from "./present";
import { withQuery } from "./views";
import { reassignRoute, teamPage } from "./consultant-team";
import { taskFailure, taskItem, type TaskBack, type TaskState } from "./consultant-tasks";

const GRADES = ["A", "B", "C", "D"] as const;
export const OUTCOME_MODES = ["in_person", "online"] as const;
const LEADS_SHOWN = 100;

type Form = { values: Record<string, string>; errors: Record<string, string>; formError?: string };

/**
 * The consultant's day (我的线索 / 今日任务) and the lead page with its timeline and the two forms
 * (a contact attempt, the consultation outcome). Forms post back here; a refused input re-renders
 * the page with each message next to its field (422), a success redirects (303) with a notice.
 */
export function leadPages(timeZone: string) {
  const app = new Hono<AppEnv>();

  /** Consultants: their own day. Managers and admins: the team's open leads (consultant-team.ts). */
  const workspacePage = async (p: Page, state: { task?: TaskState } = {}, status = 200) => {
    if (!ownsOnly(p.principal.role)) return teamPage(p);
    const raw = p.c.req.query("grade");
    const grade = GRADES.find((g) => g === raw);
    const w = await workspace({ ctx: p.ctx, input: { grade, limit: LEADS_SHOWN } });
    const now = p.ctx.deps.now().getTime();
    const day = new Intl.DateTimeFormat(p.locale === "en" ? "en-GB" : "zh-CN", { timeZone: w.day.timeZone, dateStyle: "full" }).format(now);
    const base = new URL(p.url);
    base.pathname = "/console/workspace";
    return p.html(
      "workspace",
      {
        dayText: p.t("ws.day", { date: day, tz: w.day.timeZone }),
        counts: w.counts,
        gradeChips: [
          { label: p.t("ws.grade.all"), count: w.counts.open, href: withQuery(base, { grade: undefined }), current: !grade },
          ...GRADES.map((g) => ({ grade: g, label: g, count: w.counts.byGrade[g], href: withQuery(base, { grade: g }), current: grade === g })),
        ],
        leads: w.leads.map((l) => ({
          id: l.id,
          contactName: l.contactName ?? p.t("contacts.unnamed"),
          source: l.source,
          grade: l.grade,
          need: l.need ?? "—",
          overdue: l.slaSecondsLeft !== null && l.slaSecondsLeft < 0,
          sla: slaModel(p, l, now),
          nextTask: p.fmt.dateTime(l.nextTaskDueAt),
        })),
        more: w.leads.length >= LEADS_SHOWN ? p.t("ws.more", { n: LEADS_SHOWN }) : undefined,
        leadsEmpty: grade ? p.t("ws.leads.emptyGrade", { grade }) : p.t("ws.leads.empty"),
        tasks: w.tasks.map((x) => taskItem(p, { ...x, contactName: x.contactName ?? p.t("contacts.unnamed") }, "workspace", state.task)),
        flash: taskFlash(p),
        taskError: strayTaskError(state.task, w.tasks),
        followUps: {
          today: w.counts.followUpsToday,
          overdue: w.counts.followUpsOverdue,
          text: p.t("task.ws.followUps", { today: w.counts.followUpsToday, overdue: w.counts.followUpsOverdue }),
        },
      },
      { title: p.t("ws.title"), section: "workspace", status },
    );
  };

  app.get("/console/workspace", page(timeZone, "leads:read", workspacePage));

  app.get("/console/leads/:id", page(timeZone, "leads:read", async (p) => {
    const done = p.c.req.query("done");
    const flash = done === "attempt" ? p.t("lead.done.attempt") : done === "outcome" ? p.t("lead.done.outcome") : done === "claimed" ? p.t("pool.done.claimed") : taskFlash(p);
    return leadPage(p, p.c.req.param("id")!, { flash });
  }));

  // SOP tasks, done or skipped (with a reason) from the workspace or the lead page (`back`).
  const afterTask = (p: Page, back: TaskBack, leadId: string, done: "task" | "skipped") =>
    p.c.redirect(back === "lead" ? `/console/leads/${leadId}?done=${done}#tasks` : `/console/workspace?done=${done}#tasks`, 303);
  const taskRefused = async (p: Page, id: string, back: TaskBack, err: unknown, values: Record<string, string>) => {
    const failed = taskFailure(p, err);
    if (!failed) throw err;
    const state = { task: { id, values, ...failed.form } };
    if (back === "workspace") return workspacePage(p, state, failed.status);
    // The task's lead (a task the caller may not see is a 404, as the service says).
    const task = await getTask({ ctx: p.ctx, id });
    return leadPage(p, task.leadId, state, failed.status);
  };
  const backOf = (f: Record<string, string>): TaskBack => (f.back === "lead" ? "lead" : "workspace");

  app.post("/console/tasks/:id/done", page(timeZone, "leads:work", async (p) => {
    const id = p.c.req.param("id")!;
    const f = await formOf(p.c);
    try {
      const task = await completeTask({ ctx: p.ctx, id });
      return afterTask(p, backOf(f), task.leadId, "task");
    } catch (err) {
      return taskRefused(p, id, backOf(f), err, f);
    }
  }));

  app.post("/console/tasks/:id/skip", page(timeZone, "leads:work", async (p) => {
    const id = p.c.req.param("id")!;
    const f = await formOf(p.c);
    try {
      const task = await skipTask({ ctx: p.ctx, id, input: { reason: f.reason ?? "" } });
      return afterTask(p, backOf(f), task.leadId, "skipped");
    } catch (err) {
      return taskRefused(p, id, backOf(f), err, f);
    }
  }));

  // Managers and admins reassign from the team workspace.
  app.post("/console/leads/:id/reassign", page(timeZone, "leads:assign", reassignRoute));

  app.post("/console/leads/:id/attempts", page(timeZone, "leads:work", async (p) => {
    const id = p.c.req.param("id")!;
    const f = await formOf(p.c);
    const input = { channel: f.channel || undefined, outcome: f.outcome || undefined, note: f.note?.trim() || undefined };
    try {
      await recordAttempt({ ctx: p.ctx, id, input });
    } catch (err) {
      const form = formFailure(p, err, "attempt");
      if (!form) throw err;
      return leadPage(p, id, { attempt: { values: f, ...form.form } }, form.status);
    }
    return p.c.redirect(`/console/leads/${id}?done=attempt#attempt`, 303);
  }));

  app.post("/console/leads/:id/outcome", page(timeZone, "leads:work", async (p) => {
    const id = p.c.req.param("id")!;
    const f = await formOf(p.c);
    const input = outcomeInput(f);
    try {
      await recordOutcome({ ctx: p.ctx, id, input });
    } catch (err) {
      const form = formFailure(p, err, "outcome");
      if (!form) throw err;
      return leadPage(p, id, { outcome: { values: f, ...form.form } }, form.status);
    }
    return p.c.redirect(`/console/leads/${id}?done=outcome`, 303);
  }));

  return { app, workspacePage };
}

/** A refused form: messages by field (the service's field names), or one for the whole form. */
function formFailure(p: Page, err: unknown, form: "attempt" | "outcome"): { form: Omit<Form, "values">; status: number } | null {
  if (err instanceof ConflictError) return { form: { errors: {}, formError: p.t("lead.conflict") }, status: 409 };
  if (!(err instanceof ValidationError)) return null;
  const errors: Record<string, string> = {};
  const other: FieldIssue[] = [];
  for (const issue of err.issues) {
    // `items[2]` is the items field; the message is ours when the catalogue has one for it.
    const field = issue.field.replace(/[[.].*$/, "");
    const key = `${form}.err.${field}`;
    if (hasMessage(key)) errors[field] ??= p.t(key as MessageKey);
    else other.push(issue);
  }
  const formError = other.length ? `${p.t("lead.formError")} ${other.map((i) => `${i.field}: ${i.message}`).join("; ")}` : p.t("lead.formError");
  return { form: { errors, formError }, status: 422 };
}

/** A refusal about a task no longer listed (done or closed meanwhile): said at the top of the page. */
function strayTaskError(state: TaskState | undefined, listed: { id: string }[]): string | undefined {
  if (!state || listed.some((t) => t.id === state.id)) return undefined;
  return state.formError ?? Object.values(state.errors)[0];
}

function taskFlash(p: Page): string | undefined {
  const done = p.c.req.query("done");
  return done === "task" ? p.t("task.flash.done") : done === "skipped" ? p.t("task.flash.skipped") : undefined;
}

/** The outcome form as recordOutcome's input (the lead page's and the chat sidebar's). */
export function outcomeInput(f: Record<string, string>) {
  const amount = f.amount?.trim().replace(/[,，]/g, "");
  const items = (f.items ?? "").split(/[,，、\n]/).map((s) => s.trim()).filter(Boolean);
  return {
    outcome: f.outcome || undefined,
    // A number when it reads as one; else the text, which the service refuses at `amount`.
    amount: amount ? (Number.isFinite(Number(amount)) ? Number(amount) : amount) : undefined,
    items: items.length ? items : undefined,
    lostReason: f.lostReason || undefined,
    mode: f.mode || undefined,
    note: f.note?.trim() || undefined,
  };
}

export function slaModel(p: Pick<Page, "t" | "fmt">, l: Pick<LeadView, "firstContactDueAt" | "firstContactedAt" | "status">, now: number) {
  const open = l.status === "open" && !l.firstContactedAt && l.firstContactDueAt !== null;
  const left = l.firstContactDueAt ? (new Date(l.firstContactDueAt).getTime() - now) / 1000 : 0;
  return {
    dueAt: l.firstContactDueAt,
    dueText: p.fmt.dateTime(l.firstContactDueAt),
    open,
    overdue: open && left < 0,
    countdown: open ? p.t(left < 0 ? "sla.over" : "sla.left", { d: p.fmt.duration(left) }) : "",
    doneText: l.firstContactedAt ? p.t("ws.sla.done") : p.t("ws.sla.none"),
  };
}

async function leadPage(p: Page, id: string, state: { flash?: string | undefined; attempt?: Form; outcome?: Form; task?: TaskState }, status = 200): Promise<Response> {
  const { lead, items } = await leadTimeline({ ctx: p.ctx, id, input: { limit: 100 } });
  const canWork = lead.status === "open" && can(p.principal.role, "leads:work");
  const [outcomeOptions, openTasks] = canWork
    ? await Promise.all([leadOutcomeOptions({ ctx: p.ctx, id }), listTasks({ ctx: p.ctx, input: { leadId: lead.id, mine: false, status: "open", limit: 50 } }).then((t) => t.items)])
    : [{ lostReasons: [], mode: "in_person" as const }, []];
  const me = p.principal.staffId;
  const who = (staffId: string | null) => (!staffId ? "" : staffId === me ? p.t("tl.me") : staffId === lead.ownerStaffId && lead.ownerName ? lead.ownerName : p.t("tl.colleague"));
  const a = state.attempt ?? { values: {}, errors: {} };
  const o = state.outcome ?? { values: {}, errors: {} };
  const statusLabel = p.t(`lead.status.${lead.status}`);
  return p.html(
    "lead",
    {
      lead,
      statusLabel,
      flash: state.flash,
      facts: [
        { label: p.t("lead.need"), value: lead.need ?? "—" },
        { label: p.t("lead.source"), value: lead.sourceRef ? `${lead.source} · ${lead.sourceRef}` : lead.source },
        { label: p.t("lead.owner"), value: lead.ownerName ?? (lead.inPool ? p.t("lead.pool") : "—") },
        { label: p.t("lead.assigned"), value: p.fmt.dateTime(lead.assignedAt) },
        { label: p.t("lead.firstContacted"), value: p.fmt.dateTime(lead.firstContactedAt) },
      ],
      sla: slaModel(p, lead, p.ctx.deps.now().getTime()),
      canWork,
      closedText: lead.status !== "open" ? p.t("lead.closed", { status: statusLabel }) : undefined,
      attempt: {
        ...a,
        channels: options(ATTEMPT_CHANNELS, (v) => p.t(`attempt.channel.${v}`), a.values.channel),
        outcomes: options(ATTEMPT_OUTCOMES, (v) => p.t(`attempt.outcome.${v}`), a.values.outcome),
      },
      outcome: {
        ...o,
        converted: o.values.outcome === "converted",
        lost: o.values.outcome === "lost",
        lostReasons: outcomeOptions.lostReasons.map((value) => ({ value, selected: value === o.values.lostReason })),
        // The mode starts on in person when the contact's visit was recorded today, else online.
        modes: options(OUTCOME_MODES, (v) => p.t(`outcome.mode.${v}`), o.values.mode ?? outcomeOptions.mode),
      },
      tasks: openTasks.map((x) => taskItem(p, { ...x, contactName: null }, "lead", state.task)),
      taskError: strayTaskError(state.task, openTasks),
      timeline: timelineItems(p.t, p.fmt, items, who),
      timelineEmpty: p.t("lead.timeline.empty"),
    },
    { title: lead.contactName ?? p.t("contacts.unnamed"), section: "workspace", status },
  );
}

