import { OpenAPIHono, z } from "@hono/zod-openapi";
import { metricsFunnel } from "../../services/metrics/funnel";
import { metricsScorecards, myScorecard } from "../../services/metrics/scorecards";
import { FunnelInput, MyScorecardInput, ScorecardsInput, TrendsInput } from "../../services/metrics/schemas";
import { metricsTrends } from "../../services/metrics/trends";
import { json, route, validationHook } from "../openapi";
import type { AppEnv } from "../types";

const Rate = z.object({ numerator: z.number(), denominator: z.number(), value: z.number().nullable() }).openapi("MetricRate", { description: "numerator / denominator; value null when the denominator is 0" });

const Metrics = z
  .object({
    appointments: z.number().int(),
    visits: z.number().int(),
    visitRate: Rate.openapi({ description: "上门率: visits / appointments" }),
    consultations: z.number().int(),
    converted: z.number().int(),
    dealRate: Rate.openapi({ description: "成交率: converted consultations / consultations" }),
    followUpsDue: z.number().int(),
    followUpsDone: z.number().int(),
    followUpRate: Rate.openapi({ description: "回访率: follow-ups done / due" }),
    buyers: z.number().int(),
    repeatBuyers: z.number().int(),
    repeatRate: Rate.openapi({ description: "二开率: buyers of the period with purchases on 2+ local days up to its end / buyers" }),
    newContacts: z.number().int(),
    referredContacts: z.number().int(),
    referralRate: Rate.openapi({ description: "转介绍率: new contacts with a referrer / new contacts" }),
    nps: z.object({ responses: z.number().int(), promoters: z.number().int(), passives: z.number().int(), detractors: z.number().int(), value: z.number().nullable() }),
    revenue: z.object({ purchases: z.number(), refunds: z.number(), net: z.number() }),
    leadResponse: z.object({ leads: z.number().int(), medianMinutes: z.number().nullable(), p90Minutes: z.number().nullable() }),
    slaBreachRate: Rate.openapi({ description: "first-contact deadlines of the period breached / decided" }),
  })
  .openapi("FunnelMetrics", { description: "Definitions: docs/metrics.md" });

const Row = { key: z.string().nullable(), label: z.string().nullable(), metrics: Metrics };
const Period = { from: z.string(), to: z.string(), timezone: z.string() };

const Scorecard = z
  .object({
    staffId: z.string(),
    name: z.string(),
    clinicId: z.string().nullable(),
    active: z.boolean(),
    leadsReceived: z.number().int(),
    contactedWithinSla: z.number().int(),
    contactedWithinSlaRate: Rate,
    medianResponseMinutes: z.number().nullable(),
    consultations: z.number().int(),
    conversions: z.number().int(),
    dealRate: Rate,
    revenue: z.number(),
    followUpsDue: z.number().int(),
    followUpsDone: z.number().int(),
    followUpRate: Rate,
    slaBreaches: z.number().int(),
    slaBreachRate: Rate,
  })
  .openapi("Scorecard");

const PERIOD_NOTE = "The period is [from, to) in local days of the tenant's time zone (default: the last 30 days, today included).";

export function metricRoutes() {
  const app = new OpenAPIHono<AppEnv>({ defaultHook: validationHook });
  app.openapi(
    route("metrics:read", {
      method: "get",
      path: "/funnel",
      tags: ["metrics"],
      summary: "Funnel metrics: 上门率, 成交率, 回访率, 二开率, 转介绍率, NPS, revenue, lead response time, SLA breach rate",
      description: `${PERIOD_NOTE} \`by\` groups the numbers by clinic, consultant, channel, segment (contacts in it now) or calendar (contacts it sent something to in the period); clinicId, staffId, channel, segmentId and calendarId restrict them. Every rate has its numerator and denominator. Definitions: docs/metrics.md.`,
      request: { query: FunnelInput },
      responses: { 200: json(z.object({ ...Period, by: z.string(), rows: z.array(z.object(Row)) }), "One row (by=none) or one per dimension value; key null: unassigned") },
    }),
    async (c) => c.json(await metricsFunnel({ ctx: c.get("ctx"), input: c.req.valid("query") }), 200),
  );
  app.openapi(
    route("metrics:read", {
      method: "get",
      path: "/trends",
      tags: ["metrics"],
      summary: "The funnel metrics per day, week or month",
      description: `${PERIOD_NOTE} Buckets are local days, ISO weeks (Monday) or months; every bucket is listed, with zeros when nothing happened. Accepts the funnel's \`by\` and filters; at most 400 buckets.`,
      request: { query: TrendsInput },
      responses: { 200: json(z.object({ ...Period, by: z.string(), period: z.string(), buckets: z.array(z.string()), series: z.array(z.object({ bucket: z.string(), ...Row })) }), "Oldest bucket first") },
    }),
    async (c) => c.json(await metricsTrends({ ctx: c.get("ctx"), input: c.req.valid("query") }), 200),
  );
  app.openapi(
    route("metrics:read", {
      method: "get",
      path: "/scorecards",
      tags: ["metrics"],
      summary: "Consultant scorecards: leads received, contacted within SLA, response time, consultations, conversions, revenue, follow-ups, SLA breaches",
      description: `${PERIOD_NOTE} Every consultant (of clinicId), or one staff member (staffId); deactivated consultants only when they have figures in the period.`,
      request: { query: ScorecardsInput },
      responses: { 200: json(z.object({ ...Period, items: z.array(Scorecard) }), "One card per consultant, by name") },
    }),
    async (c) => c.json(await metricsScorecards({ ctx: c.get("ctx"), input: c.req.valid("query") }), 200),
  );
  app.openapi(
    route("scorecard:own", {
      method: "get",
      path: "/scorecards/me",
      tags: ["metrics"],
      summary: "The caller's own scorecard",
      description: `${PERIOD_NOTE} Consultants see only their own card here; everyone's is GET /v1/metrics/scorecards (metrics:read).`,
      request: { query: MyScorecardInput },
      responses: { 200: json(z.object({ ...Period, ...Scorecard.shape }), "The caller's card") },
    }),
    async (c) => c.json(await myScorecard({ ctx: c.get("ctx"), input: c.req.valid("query") }), 200),
  );
  return app;
}
