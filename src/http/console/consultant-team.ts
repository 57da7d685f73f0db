import { ConflictError, ValidationError } from "../../errors";
import { listConsultants } from "../../services/leads/consultants";
import { listLeads, reassignLead } from "../../services/leads/leads";
import { formOf, type Page, isUuid } from "./kit";
import { slaModel } from "./leads";
import { withQuery } from "./views";

const GRADES = ["A", "B", "C", "D"] as const;
const SHOWN = 25;

/** The team workspace's filters: one consultant (or the pool), a grade, the page. */
export interface TeamFilters {
  staff?: string | undefined;
  grade?: (typeof GRADES)[number] | undefined;
  cursor?: string | undefined;
}

export function teamFilters(src: (name: string) => string | undefined): TeamFilters {
  const staff = src("staff");
  const grade = GRADES.find((g) => g === src("grade"));
  return { staff: staff === "pool" || isUuid(staff) ? staff : undefined, grade, cursor: src("cursor") || undefined };
}

const query = (f: TeamFilters) => ({ staff: f.staff, grade: f.grade, cursor: f.cursor });

/** A refused reassignment: which lead, what was chosen and typed, messages by field or for the form. */
interface ReassignState {
  leadId: string;
  values: Record<string, string>;
  errors: Record<string, string>;
  formError?: string | undefined;
}

/**
 * 线索工作台 for managers and admins: every consultant's open leads (or one consultant's, or the
 * pool's), newest first, 25 a page, with the first-contact countdown; each lead can be reassigned
 * with a reason (to a consultant, by the strategy chain, or back to the pool), confirmed first.
 */
export async function teamPage(p: Page, filters: TeamFilters = teamFilters((n) => p.c.req.query(n)), state: { reassign?: ReassignState } = {}, status = 200): Promise<Response> {
  const [consultants, page] = await Promise.all([
    listConsultants({ ctx: p.ctx }),
    listLeads({
      ctx: p.ctx,
      input: { status: "open", view: filters.staff === "pool" ? "pool" : "all", ownerStaffId: isUuid(filters.staff) ? filters.staff : undefined, grade: filters.grade, cursor: filters.cursor, limit: SHOWN },
    }),
  ]);
  const now = p.ctx.deps.now().getTime();
  const base = new URL(p.url);
  base.pathname = "/console/workspace";
  base.search = "";
  for (const [k, v] of Object.entries(query(filters))) if (v) base.searchParams.set(k, v);
  const done = p.c.req.query("done");
  const chosen = consultants.find((c) => c.id === filters.staff);
  const leads = page.items.map((l) => {
    const mine = state.reassign?.leadId === l.id ? state.reassign : undefined;
    const to = mine?.values.to ?? "";
    const sla = slaModel(p, l, now);
    return {
      id: l.id,
      contactName: l.contactName ?? p.t("contacts.unnamed"),
      source: l.source,
      grade: l.grade,
      need: l.need ?? "—",
      owner: l.ownerName ?? p.t("lead.pool"),
      inPool: l.inPool,
      sla,
      overdue: sla.overdue,
      reassign: {
        open: Boolean(mine),
        confirm: p.t("team.reassign.confirm", { name: l.contactName ?? p.t("contacts.unnamed") }),
        options: [
          { value: "auto", label: p.t("team.reassign.auto"), selected: to === "auto" },
          ...(l.inPool ? [] : [{ value: "pool", label: p.t("team.reassign.pool"), selected: to === "pool" }]),
          ...consultants.filter((c) => c.id !== l.ownerStaffId).map((c) => ({ value: c.id, label: p.t("team.consultant.load", { name: c.name, open: c.openLeads, capacity: c.capacity }), selected: to === c.id })),
        ],
        reason: mine?.values.reason ?? "",
        errors: mine?.errors ?? {},
        formError: mine?.formError,
      },
    };
  });
  const empty = filters.staff === "pool" ? p.t("team.empty.pool") : chosen ? p.t("team.empty.staff", { name: chosen.name }) : filters.grade ? p.t("ws.leads.emptyGrade", { grade: filters.grade }) : p.t("team.empty");
  // A refusal about a lead no longer listed (closed meanwhile): said at the top instead.
  const lost = state.reassign && !leads.some((l) => l.id === state.reassign!.leadId) ? (state.reassign.formError ?? p.t("lead.formError")) : undefined;
  return p.html(
    "team",
    {
      pageError: lost,
      flash: done === "reassigned" ? p.t("team.done.reassigned") : undefined,
      filters: query(filters),
      staffOptions: [
        { value: "", label: p.t("team.filter.all"), selected: !filters.staff },
        { value: "pool", label: p.t("lead.pool"), selected: filters.staff === "pool" },
        ...consultants.map((c) => ({ value: c.id, label: p.t("team.consultant.load", { name: c.name, open: c.openLeads, capacity: c.capacity }), selected: c.id === filters.staff })),
      ],
      gradeOptions: [{ value: "", label: p.t("ws.grade.all"), selected: !filters.grade }, ...GRADES.map((g) => ({ value: g, label: g, selected: g === filters.grade }))],
      load: consultants.map((c) => ({ id: c.id, name: c.name, open: c.openLeads, capacity: c.capacity, full: c.openLeads >= c.capacity, href: withQuery(base, { staff: c.id, cursor: undefined }) })),
      leads,
      empty,
      nextHref: page.nextCursor ? withQuery(base, { cursor: page.nextCursor }) : undefined,
      firstHref: filters.cursor ? withQuery(base, { cursor: undefined }) : undefined,
    },
    { title: p.t("team.title"), section: "workspace", status },
  );
}

/**
 * POST /console/leads/{id}/reassign: `to` is a consultant's id, `auto` (the strategy chain) or
 * `pool`; a reason is required. Back to the same filters, with a notice; refused, the team page
 * again with the message next to the field of that lead's form (422), or for the form (409: closed).
 */
export async function reassignRoute(p: Page): Promise<Response> {
  const id = p.c.req.param("id")!;
  const f = await formOf(p.c);
  const filters = teamFilters((n) => f[`f_${n}`]);
  const to = f.to ?? "";
  const input = { toStaffId: to === "auto" || to === "" ? undefined : to === "pool" ? null : to, reason: f.reason ?? "" };
  try {
    await reassignLead({ ctx: p.ctx, id, input });
  } catch (err) {
    let form: Omit<ReassignState, "leadId" | "values"> | null = null;
    let status = 422;
    if (err instanceof ValidationError) {
      const errors: Record<string, string> = {};
      for (const i of err.issues) {
        if (i.field === "reason") errors.reason = p.t("team.err.reason");
        else if (i.field === "toStaffId") errors.to = p.t("team.err.to");
      }
      form = { errors, formError: Object.keys(errors).length ? undefined : p.t("lead.formError") };
    } else if (err instanceof ConflictError) {
      form = { errors: {}, formError: p.t("team.err.closed") };
      status = 409;
    }
    if (!form) throw err;
    return teamPage(p, { ...filters, cursor: filters.cursor }, { reassign: { leadId: id, values: f, ...form } }, status);
  }
  const back = new URL("/console/workspace", p.url);
  for (const [k, v] of Object.entries({ ...query(filters), done: "reassigned" })) if (v) back.searchParams.set(k, v);
  return p.c.redirect(back.pathname + back.search, 303);
}
