import { Hono } from "hono";
import { ConflictError } from "../../errors";
import { claimLead, listLeads } from "../../services/leads/leads";
import type { AppEnv } from "../types";
import { page, type Page } from "./kit";
import { withQuery } from "./views";

const GRADES = ["A", "B", "C", "D"] as const;
const SHOWN = 25;

/**
 * 线索公海: open leads nobody owns (none fitted when they arrived, released or reclaimed after a
 * missed deadline), newest first, 25 a page, by grade. A consultant claims one (asked to confirm):
 * it becomes theirs with a fresh first-contact deadline, and the lead page opens. Two consultants
 * racing for one lead: the second is told someone else was quicker, on the pool again.
 */
export function poolPages(timeZone: string) {
  const app = new Hono<AppEnv>();

  const poolPage = async (p: Page, state: { error?: string } = {}, status = 200): Promise<Response> => {
    const grade = GRADES.find((g) => g === p.c.req.query("grade"));
    const cursor = p.c.req.query("cursor") || undefined;
    const result = await listLeads({ ctx: p.ctx, input: { view: "pool", status: "open", grade, cursor, limit: SHOWN } });
    const base = new URL(p.url);
    base.pathname = "/console/pool";
    const now = p.ctx.deps.now().getTime();
    return p.html(
      "pool",
      {
        error: state.error,
        grades: [{ label: p.t("ws.grade.all"), href: withQuery(base, { grade: undefined, cursor: undefined }), current: !grade }, ...GRADES.map((g) => ({ grade: g, label: g, href: withQuery(base, { grade: g, cursor: undefined }), current: grade === g }))],
        leads: result.items.map((l) => ({
          id: l.id,
          contactName: l.contactName ?? p.t("contacts.unnamed"),
          grade: l.grade,
          need: l.need ?? "—",
          source: l.sourceRef ? `${l.source} · ${l.sourceRef}` : l.source,
          createdAt: l.createdAt,
          createdText: p.fmt.dateTime(l.createdAt),
          waiting: p.t("pool.waiting", { d: p.fmt.duration((now - new Date(l.createdAt).getTime()) / 1000) }),
          confirm: p.t("pool.claim.confirm", { name: l.contactName ?? p.t("contacts.unnamed"), grade: l.grade }),
        })),
        empty: grade ? p.t("pool.empty.grade", { grade }) : p.t("pool.empty"),
        back: withQuery(base, {}),
        nextHref: result.nextCursor ? withQuery(base, { cursor: result.nextCursor }) : undefined,
        firstHref: cursor ? withQuery(base, { cursor: undefined }) : undefined,
      },
      { title: p.t("pool.title"), section: "pool", status },
    );
  };

  app.get("/console/pool", page(timeZone, "leads:claim", (p) => poolPage(p)));

  app.post("/console/pool/:id/claim", page(timeZone, "leads:claim", async (p) => {
    const id = p.c.req.param("id")!;
    try {
      await claimLead({ ctx: p.ctx, id });
    } catch (err) {
      if (!(err instanceof ConflictError)) throw err;
      return poolPage(p, { error: claimRefusal(p, err) }, 409);
    }
    return p.c.redirect(`/console/leads/${id}?done=claimed`, 303);
  }));

  return app;
}

/** Why a claim was refused, in words: someone was quicker (or it closed), the daily cap, or the consultant's capacity. */
function claimRefusal(p: Page, err: ConflictError): string {
  const cap = /daily claim cap reached \((\d+) a day\)/.exec(err.detail);
  if (cap) return p.t("pool.err.cap", { n: cap[1] });
  const full = /you hold (\d+) open leads \(capacity (\d+)\)/.exec(err.issues[0]?.message ?? "");
  if (full) return p.t("pool.err.capacity", { open: full[1], capacity: full[2] });
  return p.t("pool.err.taken");
}
