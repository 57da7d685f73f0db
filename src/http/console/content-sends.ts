import { Hono } from "hono";
import type { CalendarDefinition } from "../../domain/calendars/index";
import { getCalendar, listCalendars } from "../../services/calendars/calendars";
import { calendarReport, type EntryReport } from "../../services/calendars/report";
import { listSends } from "../../services/delivery/sends";
import type { AppEnv } from "../types";
import { labelOr, reasonText } from "./content-kit";
import { yuan } from "./present";
import { errorPage, page, type Page, isUuid } from "./kit";
import { withQuery } from "./views";

const CALENDARS_PAGE = 10;
const SENDS_PAGE = 50;
const ATTRIBUTION_DAYS = [1, 7, 30] as const;
/** Send statuses as delivery records them, in the order a send moves through them. */
const SEND_STATUSES = ["planned", "queued", "sending", "sent", "skipped", "cancelled", "failed", "over_quota", "not_friend"] as const;

/** A calendar's totals over its entries. */
function totals(entries: EntryReport[]) {
  const n = (k: string) => entries.reduce((a, e) => a + (e.byStatus[k] ?? 0), 0);
  return {
    planned: entries.reduce((a, e) => a + e.planned, 0),
    waiting: n("planned") + n("queued") + n("sending"),
    sent: entries.reduce((a, e) => a + e.sent, 0),
    failed: entries.reduce((a, e) => a + e.failed, 0),
    skipped: n("skipped") + n("cancelled"),
    clicks: entries.reduce((a, e) => a + e.clicks, 0),
    conversions: entries.reduce((a, e) => a + e.conversions, 0),
  };
}

/**
 * Send reports (发送报告): per calendar, per entry, the recipients planned, sent, failed, skipped
 * (with the reasons), link clicks and the conversions credited to the sends (the calendar report
 * of GET /v1/calendars/{id}/report); per entry, its sends one by one (GET /v1/sends).
 */
export function sendPages(timeZone: string) {
  const app = new Hono<AppEnv>();

  app.get("/console/sends", page(timeZone, "calendars:read", async (p) => {
    const cursor = p.c.req.query("cursor") || undefined;
    const list = await listCalendars({ ctx: p.ctx, input: { status: "published", limit: CALENDARS_PAGE, cursor } });
    const reports = await Promise.all(list.items.map((c) => calendarReport({ ctx: p.ctx, id: c.id })));
    const base = new URL(p.url);
    return p.html(
      "sends",
      {
        items: list.items.map((c, i) => ({ id: c.id, name: c.name, version: c.version, published: p.fmt.dateTime(c.publishedAt), entries: reports[i]!.entries.filter((e) => !e.removed).length, tot: totals(reports[i]!.entries) })),
        firstHref: cursor ? withQuery(base, { cursor: undefined }) : undefined,
        nextHref: list.nextCursor ? withQuery(base, { cursor: list.nextCursor }) : undefined,
      },
      { title: p.t("sends.title"), section: "sends" },
    );
  }));

  app.get("/console/sends/:id", page(timeZone, "calendars:read", async (p) => {
    const id = p.c.req.param("id");
    if (!isUuid(id)) return errorPage(p, 404);
    const asked = Number(p.c.req.query("days"));
    const days = (ATTRIBUTION_DAYS as readonly number[]).includes(asked) ? asked : 7;
    const [cal, report] = await Promise.all([getCalendar({ ctx: p.ctx, id }), calendarReport({ ctx: p.ctx, id, input: { attributionDays: days } })]);
    const def = cal.definition as unknown as CalendarDefinition;
    const titles = new Map((def.entries ?? []).map((e) => [e.key, e.title ?? e.key]));
    const base = new URL(p.url);
    return p.html(
      "sends-report",
      {
        cal: { id: cal.id, name: cal.name, version: cal.version, status: p.t(`cal.status.${cal.status}`) },
        days,
        ranges: ATTRIBUTION_DAYS.map((d) => ({ label: p.t("sends.days", { n: d }), href: withQuery(base, { days: String(d) }), current: d === days })),
        touchWindow: report.touchWindowDays,
        tot: totals(report.entries),
        entries: report.entries.map((e) => ({
          key: e.key,
          title: titles.get(e.key) ?? e.key,
          removed: e.removed,
          planned: e.planned,
          waiting: (e.byStatus.planned ?? 0) + (e.byStatus.queued ?? 0) + (e.byStatus.sending ?? 0),
          sent: e.sent,
          failed: e.failed,
          skipped: (e.byStatus.skipped ?? 0) + (e.byStatus.cancelled ?? 0),
          reasons: e.skipped.map((r) => ({ ...reasonText(p.t, r.reason), n: r.n })),
          clicked: e.clickedRecipients,
          clicks: e.clicks,
          conversions: e.conversions,
          revenue: yuan(e.revenue),
          lastTouch: e.lastTouchConversions,
          attributed: yuan(e.attributedRevenue),
          href: `/console/sends/${cal.id}/entries/${e.entryId}`,
        })),
      },
      { title: p.t("sends.report.title", { name: cal.name }), section: "sends" },
    );
  }));

  app.get("/console/sends/:id/entries/:entryId", page(timeZone, "calendars:read", async (p) => {
    const id = p.c.req.param("id");
    const entryId = p.c.req.param("entryId");
    if (!isUuid(id) || !isUuid(entryId)) return errorPage(p, 404);
    const cal = await getCalendar({ ctx: p.ctx, id });
    const entry = cal.entries?.find((e) => e.id === entryId);
    if (!entry) return errorPage(p, 404);
    const status = (SEND_STATUSES as readonly string[]).includes(p.c.req.query("status") ?? "") ? p.c.req.query("status") : undefined;
    const cursor = p.c.req.query("cursor") || undefined;
    const list = await listSends({ ctx: p.ctx, input: { calendarId: id, entryId, status, limit: SENDS_PAGE, cursor } });
    const def = cal.definition as unknown as CalendarDefinition;
    const title = def.entries?.find((e) => e.key === entry.key)?.title ?? entry.key;
    const base = new URL(p.url);
    return p.html(
      "sends-entry",
      {
        cal: { id: cal.id, name: cal.name },
        entry: { key: entry.key, title },
        chips: [undefined, ...SEND_STATUSES].map((s) => ({ label: s ? statusLabel(p, s) : p.t("sends.status.all"), href: withQuery(base, { status: s, cursor: undefined }), current: s === status })),
        items: list.items.map((s) => ({
          who: s.contactName ?? (s.chatId ? p.t("cal.preview.chat", { id: s.chatId.slice(0, 10) }) : p.t("cal.preview.unnamed")),
          contactHref: s.contactId ? `/console/contacts/${s.contactId}` : undefined,
          sender: s.senderName ?? "—",
          scheduled: p.fmt.dateTime(s.scheduledAt),
          sent: p.fmt.dateTime(s.sentAt),
          status: s.status,
          statusLabel: statusLabel(p, s.status),
          reason: s.reason ?? s.lastError ? reasonText(p.t, (s.reason ?? s.lastError)!) : undefined,
          service: s.service,
        })),
        filtered: Boolean(status),
        firstHref: cursor ? withQuery(base, { cursor: undefined }) : undefined,
        nextHref: list.nextCursor ? withQuery(base, { cursor: list.nextCursor }) : undefined,
      },
      { title: title, section: "sends" },
    );
  }));

  return app;
}

const statusLabel = (p: Page, s: string) => labelOr(p.t, `sends.status.${s}`, s);
