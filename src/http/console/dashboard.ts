import { Hono } from "hono";
import { can } from "../../domain/auth/permissions";
import { addDays } from "../../domain/delivery/schedule";
import { localDate } from "../../domain/leads/sop";
import { acknowledgeAlert, listAlerts } from "../../services/alerts/episodes";
import { tenantTimeZone } from "../../services/leads/internal";
import { metricsFunnel } from "../../services/metrics/funnel";
import { metricsScorecards } from "../../services/metrics/scorecards";
import { metricsTrends } from "../../services/metrics/trends";
import type { Rate } from "../../services/metrics/schemas";
import { escapeHtml } from "../html";
import type { AppEnv } from "../types";
import { page, type Page } from "./kit";

export const DASHBOARD_DAYS = [7, 30, 90] as const;

const pct = (r: Rate) => (r.value === null ? "—" : `${(r.value * 100).toFixed(1)}%`);
const money = (n: number) => `¥${Math.round(n).toLocaleString("zh-CN")}`;

/**
 * The funnel as horizontal bars in SVG (no chart library): each stage's width in proportion to the
 * largest, with its count and its rate from the stage before.
 */
export function funnelSvg(stages: { label: string; value: number; rate?: string }[]): string {
  const max = Math.max(1, ...stages.map((s) => s.value));
  const rowH = 36;
  const rows = stages
    .map((s, i) => {
      const w = Math.max(2, Math.round((s.value / max) * 300));
      const y = i * rowH;
      return `<g transform="translate(0 ${y})"><text x="0" y="22" class="fl">${escapeHtml(s.label)}</text><rect x="90" y="6" width="${w}" height="24" rx="4" class="fb"/><text x="${96 + w}" y="23" class="fv">${s.value.toLocaleString("zh-CN")}${s.rate ? ` · ${escapeHtml(s.rate)}` : ""}</text></g>`;
    })
    .join("");
  return `<svg class="funnel" viewBox="0 0 520 ${stages.length * rowH}" role="img" aria-label="${escapeHtml(stages.map((s) => `${s.label} ${s.value}`).join("，"))}">${rows}</svg>`;
}

/** A rate per day as a line (0-100%), with the days that had nothing to divide left as gaps. */
export function trendSvg(points: { day: string; value: number | null }[]): string {
  const w = 520;
  const h = 120;
  const n = Math.max(1, points.length - 1);
  const segs: string[] = [];
  let cur: string[] = [];
  points.forEach((p, i) => {
    if (p.value === null) {
      if (cur.length) segs.push(cur.join(" "));
      cur = [];
      return;
    }
    cur.push(`${((i / n) * (w - 20) + 10).toFixed(1)},${(h - 10 - p.value * (h - 20)).toFixed(1)}`);
  });
  if (cur.length) segs.push(cur.join(" "));
  const lines = segs.map((s) => (s.includes(" ") ? `<polyline points="${s}" class="tl"/>` : `<circle cx="${s.split(",")[0]}" cy="${s.split(",")[1]}" r="2.5" class="td"/>`)).join("");
  return `<svg class="trend" viewBox="0 0 ${w} ${h}" role="img" aria-hidden="true"><line x1="10" y1="${h - 10}" x2="${w - 10}" y2="${h - 10}" class="ta"/>${lines}</svg>`;
}

/**
 * The manager's dashboard (数据看板): the funnel for the last 7, 30 or 90 days, 成交率 by day, open
 * anomaly alerts (acknowledged from here), and the consultants' scorecards. Everything comes from
 * the metrics and alerts services, with the signed-in staff member's permissions.
 */
export function dashboardPages(timeZone: string) {
  const app = new Hono<AppEnv>();

  app.get("/console/dashboard", page(timeZone, "metrics:read", async (p) => {
    const asked = Number(p.c.req.query("days"));
    const days = (DASHBOARD_DAYS as readonly number[]).includes(asked) ? asked : 30;
    const tz = await tenantTimeZone(p.ctx.deps.db, p.ctx.tenantId);
    const to = addDays(localDate(p.ctx.deps.now(), tz), 1);
    const from = addDays(to, -days);
    const [funnel, trends, alerts, cards] = await Promise.all([
      metricsFunnel({ ctx: p.ctx, input: { from, to } }),
      metricsTrends({ ctx: p.ctx, input: { from, to, period: "day" } }),
      listAlerts({ ctx: p.ctx, input: { limit: 10 } }),
      metricsScorecards({ ctx: p.ctx, input: { from, to } }),
    ]);
    const m = funnel.rows[0]?.metrics;
    const tiles = m
      ? [
          { label: p.t("dash.visitRate"), value: pct(m.visitRate), hint: `${m.visits} / ${m.appointments}` },
          { label: p.t("dash.dealRate"), value: pct(m.dealRate), hint: `${m.converted} / ${m.consultations}` },
          { label: p.t("dash.followUpRate"), value: pct(m.followUpRate), hint: `${m.followUpsDone} / ${m.followUpsDue}` },
          { label: p.t("dash.repeatRate"), value: pct(m.repeatRate), hint: `${m.repeatBuyers} / ${m.buyers}` },
          { label: p.t("dash.referralRate"), value: pct(m.referralRate), hint: `${m.referredContacts} / ${m.newContacts}` },
          { label: "NPS", value: m.nps.value === null ? "—" : m.nps.value.toFixed(0), hint: p.t("dash.npsHint", { n: m.nps.responses }) },
          { label: p.t("dash.revenue"), value: money(m.revenue.net), hint: p.t("dash.refunds", { amount: money(m.revenue.refunds) }) },
          { label: p.t("dash.response"), value: m.leadResponse.medianMinutes === null ? "—" : p.fmt.duration(m.leadResponse.medianMinutes * 60), hint: p.t("dash.responseHint", { n: m.leadResponse.leads }) },
          { label: p.t("dash.slaBreachRate"), value: pct(m.slaBreachRate), hint: `${m.slaBreachRate.numerator} / ${m.slaBreachRate.denominator}` },
        ]
      : [];
    const stages = m
      ? funnelSvg([
          { label: p.t("dash.stage.appointments"), value: m.appointments },
          { label: p.t("dash.stage.visits"), value: m.visits, rate: pct(m.visitRate) },
          { label: p.t("dash.stage.consultations"), value: m.consultations },
          { label: p.t("dash.stage.converted"), value: m.converted, rate: pct(m.dealRate) },
        ])
      : "";
    const daily = trends.series.map((s) => ({ day: s.bucket, value: s.metrics.dealRate.value }));
    const manage = can(p.principal.role, "analytics:manage");
    return p.html(
      "dashboard",
      {
        from,
        to: addDays(to, -1),
        ranges: DASHBOARD_DAYS.map((d) => ({ days: d, href: `/console/dashboard?days=${d}`, current: d === days })),
        tiles,
        funnelSvg: stages,
        trendSvg: trendSvg(daily),
        trendFrom: daily[0]?.day,
        trendTo: daily[daily.length - 1]?.day,
        hasDeals: daily.some((d) => d.value !== null),
        alerts: alerts.items
          .filter((a) => a.status === "open")
          .map((a) => ({ id: a.id, name: a.ruleName, clinic: a.clinicName, openedAt: p.fmt.dateTime(a.openedAt), value: a.value, baseline: a.baseline, acked: Boolean(a.acknowledgedAt), canAck: manage && !a.acknowledgedAt })),
        openAlerts: alerts.openCount,
        cards: cards.items
          .filter((c) => c.active || c.leadsReceived || c.consultations)
          .map((c) => ({ name: c.name, leads: c.leadsReceived, sla: pct(c.contactedWithinSlaRate), response: c.medianResponseMinutes === null ? "—" : p.fmt.duration(c.medianResponseMinutes * 60), consultations: c.consultations, conversions: c.conversions, deal: pct(c.dealRate), revenue: money(c.revenue), followUps: pct(c.followUpRate) })),
      },
      { title: p.t("nav.dashboard"), section: "dashboard" },
    );
  }));

  app.post("/console/alerts/:id/ack", page(timeZone, "analytics:manage", async (p: Page) => {
    await acknowledgeAlert({ ctx: p.ctx, id: p.c.req.param("id")! });
    return p.c.redirect("/console/dashboard#alerts", 303);
  }));

  return app;
}
