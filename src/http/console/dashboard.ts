import { Hono } from "hono";
import { can } from "../../domain/auth/permissions";
import { addDays } from "../../domain/delivery/schedule";
import { localDate } from "../../domain/leads/sop";
import { acknowledgeAlert, listAlerts } from "../../services/alerts/episodes";
import { tenantTimeZone } from "../../services/leads/internal";
import { metricsFunnel } from "../../services/metrics/funnel";
import { metricsScorecards } from "../../services/metrics/scorecards";
import { metricsTrends } from "../../services/metrics/trends";
import { segmentSizeSeries } from "../../services/metrics/segment-sizes";
import type { Rate } from "../../services/metrics/schemas";
import { escapeHtml } from "../html";
import type { AppEnv } from "../types";
import { barsSvg, linesSvg } from "./consultant-charts";
import { page, type Page } from "./kit";
import { yuan } from "./present";

export const DASHBOARD_DAYS = [7, 30, 90] as const;

const pct = (r: Rate) => (r.value === null ? "—" : `${(r.value * 100).toFixed(1)}%`);
/** Trends and segment sizes cover the last 13 weeks, whatever the range above. */
const TREND_DAYS = 91;

/**
 * An alert's value as its metric reads: rates as percentages (0.2 -> 20.0%), revenue in yuan,
 * response times as durations, NPS and counts as whole numbers.
 */
export function metricValue(metric: string, v: number | null, duration: (seconds: number) => string): string {
  if (v === null || !Number.isFinite(v)) return "—";
  if (metric.endsWith("_rate")) return `${(v * 100).toFixed(1)}%`;
  if (metric === "revenue") return yuan(v);
  if (metric.endsWith("_minutes")) return duration(v * 60);
  if (metric === "nps") return v.toFixed(0);
  return Number.isInteger(v) ? v.toLocaleString("zh-CN") : v.toFixed(1);
}

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
    const trendFrom = addDays(to, -TREND_DAYS);
    const [funnel, trends, alerts, cards, weekly, sizes] = await Promise.all([
      metricsFunnel({ ctx: p.ctx, input: { from, to } }),
      metricsTrends({ ctx: p.ctx, input: { from, to, period: "day" } }),
      listAlerts({ ctx: p.ctx, input: { limit: 10 } }),
      metricsScorecards({ ctx: p.ctx, input: { from, to } }),
      metricsTrends({ ctx: p.ctx, input: { from: trendFrom, to, period: "week" } }),
      segmentSizeSeries({ ctx: p.ctx, input: { from: trendFrom, to } }),
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
          { label: p.t("dash.revenue"), value: yuan(m.revenue.net), hint: p.t("dash.refunds", { amount: yuan(m.revenue.refunds) }) },
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
          .map((a) => ({
            id: a.id,
            name: a.ruleName,
            clinic: a.clinicName,
            openedAt: p.fmt.dateTime(a.openedAt),
            value: metricValue(a.metric, a.value, p.fmt.duration),
            baseline: a.baseline === null ? undefined : metricValue(a.metric, a.baseline, p.fmt.duration),
            acked: Boolean(a.acknowledgedAt),
            canAck: manage && !a.acknowledgedAt,
          })),
        openAlerts: alerts.openCount,
        cards: cards.items
          .filter((c) => c.active || c.leadsReceived || c.consultations)
          .map((c) => ({ name: c.name, leads: c.leadsReceived, sla: pct(c.contactedWithinSlaRate), response: c.medianResponseMinutes === null ? "—" : p.fmt.duration(c.medianResponseMinutes * 60), consultations: c.consultations, conversions: c.conversions, deal: pct(c.dealRate), revenue: yuan(c.revenue), followUps: pct(c.followUpRate) })),
        weekly: weeklyModel(p, weekly.series),
        segments: segmentsModel(p, sizes.segments, trendFrom, addDays(to, -1)),
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

type WeekRow = Awaited<ReturnType<typeof metricsTrends>>["series"][number];

/** Deal, visit and follow-up rates by week as lines, net revenue by week as bars, and the table of both. */
function weeklyModel(p: Page, series: WeekRow[]) {
  const labels = series.map((s) => s.bucket.slice(5));
  const rates = [
    { label: p.t("dash.dealRate"), values: series.map((s) => s.metrics.dealRate.value) },
    { label: p.t("dash.visitRate"), values: series.map((s) => s.metrics.visitRate.value) },
    { label: p.t("dash.followUpRate"), values: series.map((s) => s.metrics.followUpRate.value) },
  ];
  const revenue = series.map((s) => s.metrics.revenue.net);
  const hasRates = rates.some((r) => r.values.some((v) => v !== null));
  const first = series[0]?.bucket ?? "";
  const last = series[series.length - 1]?.bucket ?? "";
  return {
    from: first,
    to: last,
    hasData: hasRates || revenue.some((v) => v !== 0),
    hasRevenue: revenue.some((v) => v !== 0),
    legend: rates.map((r, k) => ({ label: r.label, cls: `cs-s${k}` })),
    ratesSvg: linesSvg({
      title: p.t("dash2.rates.title"),
      desc: p.t("dash2.rates.desc", { from: first, to: last }),
      labels,
      series: rates,
      max: 1,
      format: (v) => `${Math.round(v * 100)}%`,
      cls: "rates",
    }),
    revenueSvg: barsSvg({ title: p.t("dash2.revenue.title"), desc: p.t("dash2.revenue.desc", { from: first, to: last }), labels, values: revenue, format: yuan, cls: "revenue" }),
    rows: series.map((s) => ({
      week: s.bucket,
      deal: pct(s.metrics.dealRate),
      dealHint: `${s.metrics.converted} / ${s.metrics.consultations}`,
      visit: pct(s.metrics.visitRate),
      followUp: pct(s.metrics.followUpRate),
      revenue: yuan(s.metrics.revenue.net),
    })),
  };
}

/** Each segment's nightly size as a line over the same 13 weeks, and a table of first and last sizes. */
function segmentsModel(p: Page, segments: { id: string; name: string; sizes: { day: string; size: number }[] }[], from: string, last: string) {
  const days: string[] = [];
  for (let d = from; d <= last; d = addDays(d, 1)) days.push(d);
  const index = new Map(days.map((d, i) => [d, i]));
  const shown = segments.slice(0, 6);
  const series = shown.map((s) => {
    const values: (number | null)[] = days.map(() => null);
    for (const x of s.sizes) {
      const i = index.get(x.day);
      if (i !== undefined) values[i] = x.size;
    }
    return { label: s.name, values };
  });
  const measured = segments.filter((s) => s.sizes.length);
  return {
    any: segments.length > 0,
    hasData: measured.length > 0,
    more: segments.length > shown.length ? p.t("dash2.segments.more", { n: shown.length, total: segments.length }) : undefined,
    legend: shown.map((s, k) => ({ label: s.name, cls: `cs-s${k}` })),
    svg: linesSvg({
      title: p.t("dash2.segments.title"),
      desc: p.t("dash2.segments.desc", { from, to: last, names: shown.map((s) => s.name).join("、") }),
      labels: days.map((d) => d.slice(5)),
      series,
      counts: true,
      connect: true,
      format: (v) => Math.round(v).toLocaleString("zh-CN"),
      cls: "segments",
    }),
    rows: segments.map((s) => {
      const a = s.sizes[0];
      const b = s.sizes[s.sizes.length - 1];
      const change = a && b ? b.size - a.size : null;
      return {
        name: s.name,
        first: a ? p.t("dash2.segments.at", { size: a.size.toLocaleString("zh-CN"), day: a.day }) : "—",
        last: b ? p.t("dash2.segments.at", { size: b.size.toLocaleString("zh-CN"), day: b.day }) : "—",
        change: change === null ? "—" : `${change > 0 ? "+" : ""}${change.toLocaleString("zh-CN")}`,
      };
    }),
  };
}
