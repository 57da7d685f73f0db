import { Hono } from "hono";
import { ownsOnly } from "../../domain/auth/permissions";
import { localDate } from "../../domain/leads/sop";
import { ConflictError, ValidationError } from "../../errors";
import { completeFollowUp, listFollowUps, skipFollowUp, type FollowUpView } from "../../services/conversions/follow-ups";
import { listConsultants } from "../../services/leads/consultants";
import type { AppEnv } from "../types";
import type { MessageKey } from "./i18n";
import { formOf, page, type Page, isUuid } from "./kit";
import { withQuery } from "./views";

/** The tabs of the follow-ups page and what each asks the service for. */
const VIEWS = {
  due: { due: "by_today" },
  overdue: { due: "overdue" },
  upcoming: { due: "upcoming" },
  done: { status: "done" },
  skipped: { status: "skipped" },
} as const;
type View = keyof typeof VIEWS;
const SHOWN = 20;

interface Filters {
  view: View;
  staff?: string | undefined;
  cursor?: string | undefined;
}

function filtersOf(src: (name: string) => string | undefined): Filters {
  const v = src("view");
  const view = (Object.keys(VIEWS) as View[]).find((k) => k === v) ?? "due";
  const staff = src("staff");
  return { view, staff: isUuid(staff) ? staff : undefined, cursor: src("cursor") || undefined };
}

/** A refused follow-up form: which follow-up and form, what was typed, messages by field or for the form. */
interface FormState {
  id: string;
  form: "done" | "skip";
  values: Record<string, string>;
  errors: Record<string, string>;
  formError?: string | undefined;
}

/**
 * 回访: post-visit follow-ups. Consultants see those of the contacts they own (what is due by the
 * end of today first: overdue ones highlighted); managers and admins see everyone's, with a
 * consultant filter. Each open one is completed with what the patient said (and whether the survey
 * link was sent), or skipped with a reason (asked to confirm). Cards, so a phone never scrolls sideways.
 */
export function followUpPages(timeZone: string) {
  const app = new Hono<AppEnv>();

  const listPage = async (p: Page, filters: Filters, state: { form?: FormState } = {}, status = 200): Promise<Response> => {
    const team = !ownsOnly(p.principal.role);
    const [consultants, result] = await Promise.all([
      team ? listConsultants({ ctx: p.ctx }) : Promise.resolve([]),
      listFollowUps({ ctx: p.ctx, input: { ...VIEWS[filters.view], staffId: filters.staff, cursor: filters.cursor, limit: SHOWN } }),
    ]);
    const names = new Map(consultants.map((c) => [c.id, c.name]));
    const base = new URL(p.url);
    base.pathname = "/console/follow-ups";
    base.search = "";
    for (const [k, v] of Object.entries({ view: filters.view === "due" ? undefined : filters.view, staff: filters.staff, cursor: filters.cursor })) if (v) base.searchParams.set(k, v);
    const done = p.c.req.query("done");
    const today = localDate(p.ctx.deps.now(), timeZone);
    const items = result.items.map((f) => item(p, f, today, timeZone, team ? (f.ownerStaffId ? (names.get(f.ownerStaffId) ?? p.t("tl.colleague")) : "—") : undefined, state.form?.id === f.id ? state.form : undefined));
    const lost = state.form && !items.some((i) => i.id === state.form!.id) ? (state.form.formError ?? Object.values(state.form.errors)[0]) : undefined;
    return p.html(
      "followups",
      {
        team,
        flash: done === "done" ? p.t("fu.done.done") : done === "skipped" ? p.t("fu.done.skipped") : undefined,
        pageError: lost,
        tabs: (Object.keys(VIEWS) as View[]).map((v) => ({ label: p.t(`fu.view.${v}` as MessageKey), href: withQuery(base, { view: v === "due" ? undefined : v, cursor: undefined }), current: v === filters.view })),
        staffOptions: team
          ? [{ value: "", label: p.t("team.filter.all"), selected: !filters.staff }, ...consultants.map((c) => ({ value: c.id, label: c.name, selected: c.id === filters.staff }))]
          : [],
        filters: { view: filters.view, staff: filters.staff ?? "", cursor: filters.cursor ?? "" },
        items,
        empty: p.t(`fu.empty.${filters.view}` as MessageKey),
        nextHref: result.nextCursor ? withQuery(base, { cursor: result.nextCursor }) : undefined,
        firstHref: filters.cursor ? withQuery(base, { cursor: undefined }) : undefined,
      },
      { title: p.t("fu.title"), section: "followups", status },
    );
  };

  app.get("/console/follow-ups", page(timeZone, "followups:work", (p) => listPage(p, filtersOf((n) => p.c.req.query(n)))));

  /** Back to the list the form came from, with a notice; refused, the list again with the message in place. */
  const act = (form: "done" | "skip") =>
    page(timeZone, "followups:work", async (p) => {
      const id = p.c.req.param("id")!;
      const f = await formOf(p.c);
      const filters = filtersOf((n) => f[`f_${n}`]);
      try {
        if (form === "done") await completeFollowUp({ ctx: p.ctx, id, input: { note: f.note?.trim() || undefined, surveySent: f.surveySent === "1" ? true : undefined } });
        else await skipFollowUp({ ctx: p.ctx, id, input: { reason: f.reason ?? "" } });
      } catch (err) {
        if (err instanceof ConflictError) return listPage(p, filters, { form: { id, form, values: f, errors: {}, formError: p.t("fu.err.notOpen") } }, 409);
        if (!(err instanceof ValidationError)) throw err;
        const errors: Record<string, string> = {};
        for (const i of err.issues) {
          if (i.field === "note") errors.note = p.t("fu.err.note");
          else if (i.field === "reason") errors.reason = p.t("fu.err.reason");
        }
        return listPage(p, filters, { form: { id, form, values: f, errors, formError: Object.keys(errors).length ? undefined : p.t("lead.formError") } }, 422);
      }
      const back = new URL("/console/follow-ups", p.url);
      for (const [k, v] of Object.entries({ view: filters.view === "due" ? undefined : filters.view, staff: filters.staff, done: form === "done" ? "done" : "skipped" })) if (v) back.searchParams.set(k, v);
      return p.c.redirect(back.pathname + back.search, 303);
    });

  app.post("/console/follow-ups/:id/done", act("done"));
  app.post("/console/follow-ups/:id/skip", act("skip"));
  return app;
}

function item(p: Page, f: FollowUpView, today: string, timeZone: string, owner: string | undefined, state: FormState | undefined) {
  const s = f.survey;
  const open = f.status === "open";
  const done = state?.form === "done" ? state : undefined;
  const skip = state?.form === "skip" ? state : undefined;
  return {
    id: f.id,
    contactId: f.contactId,
    contactName: f.contactName ?? p.t("contacts.unnamed"),
    open,
    overdue: f.overdue,
    today: open && !f.overdue && localDate(new Date(f.dueAt), timeZone) === today,
    statusLabel: p.t(`fu.status.${f.status}` as MessageKey),
    status: f.status,
    owner,
    facts: [
      { label: p.t("fu.visitAt"), value: p.fmt.dateTime(f.visitAt) },
      { label: p.t("fu.dueAt"), value: p.fmt.dateTime(f.dueAt), danger: f.overdue },
      ...(owner !== undefined ? [{ label: p.t("team.col.owner"), value: owner }] : []),
      ...(f.completedAt ? [{ label: p.t("fu.completedAt"), value: p.fmt.dateTime(f.completedAt) }] : []),
    ],
    overdueText: f.overdue ? p.t("fu.overdueBy", { d: p.fmt.duration((p.ctx.deps.now().getTime() - new Date(f.dueAt).getTime()) / 1000) }) : undefined,
    note: f.note ?? undefined,
    survey: s
      ? {
          url: s.url,
          text: s.answeredAt ? p.t("fu.survey.answered", { score: s.score ?? "—" }) : s.sentAt ? p.t("fu.survey.sent") : p.t("fu.survey.notSent"),
          canMarkSent: open && !s.sentAt,
          checked: done?.values.surveySent === "1",
        }
      : undefined,
    done: { id: `fu-note-${f.id}`, note: done?.values.note ?? "", error: done?.errors.note, formError: done?.formError },
    skip: { id: `fu-reason-${f.id}`, open: Boolean(skip), reason: skip?.values.reason ?? "", error: skip?.errors.reason, formError: skip?.formError, confirm: p.t("fu.skip.confirm", { name: f.contactName ?? p.t("contacts.unnamed") }) },
  };
}
