import { z } from "zod";
import { addDays } from "../delivery/schedule";

/**
 * Anomaly alert rules (数据异常预警): which metric, which test, over which scope. Pure: the windows a
 * rule needs, the verdict from the values of those windows, and the message managers get. The
 * services fetch the values (services/alerts/series.ts) and keep the episodes.
 */

/** Metric keys as in docs/metrics.md. Rates are fractions (0..1); the others are daily counts (revenue: purchases − refunds, in yuan). */
export const ALERT_METRICS = {
  deal_rate: { name: "成交率", kind: "rate" },
  visit_rate: { name: "上门率", kind: "rate" },
  sla_breaches: { name: "线索首次联系超时", kind: "count" },
  send_failures: { name: "群发失败", kind: "count" },
  conversions: { name: "成交数", kind: "count" },
  revenue: { name: "营收", kind: "amount" },
} as const satisfies Record<string, { name: string; kind: "rate" | "count" | "amount" }>;
export type AlertMetric = keyof typeof ALERT_METRICS;
export const ALERT_METRIC_KEYS = Object.keys(ALERT_METRICS) as [AlertMetric, ...AlertMetric[]];

export const isRate = (m: AlertMetric) => ALERT_METRICS[m].kind === "rate";

export const DropVsWeekdayMean = z
  .object({
    kind: z.literal("drop_vs_weekday_mean"),
    /** Fires when the value is more than this many percent under the mean. */
    pct: z.number().gt(0).max(100),
    /** The mean is over the same weekday of this many previous weeks. */
    weeks: z.number().int().min(1).max(12).default(4),
    /**
     * The least volume worth judging: for rates, the day's denominator (consultations for 成交率,
     * appointments for 上门率), for the history days too; for counts, the baseline mean.
     */
    minDenominator: z.number().int().min(1).max(100_000).default(10),
  })
  .strict();

export const SpikeVsMean = z
  .object({
    kind: z.literal("spike_vs_mean"),
    /** Fires when today's count so far is more than `factor` times the daily mean (or `pct` percent over it). */
    factor: z.number().gt(1).max(1000).optional(),
    pct: z.number().gt(0).max(100_000).optional(),
    /** The mean is over this many complete days before today. */
    days: z.number().int().min(1).max(90).default(14),
    /** And only from this many today: 1 against a mean of 0.1 is not a spike. */
    minCount: z.number().int().min(1).max(100_000).default(3),
  })
  .strict()
  .refine((c) => c.factor === undefined || c.pct === undefined, { path: ["pct"], message: "give pct or factor, not both" });

export const THRESHOLD_OPS = ["lt", "lte", "gt", "gte"] as const;
export const Threshold = z
  .object({
    kind: z.literal("threshold"),
    /** The alarming side: `gt 10` fires when the value is over 10. */
    op: z.enum(THRESHOLD_OPS),
    /** Rates as fractions (0.2 = 20%), counts as counts, revenue in yuan. */
    value: z.number().min(0).max(1e12),
    /** Rates only: the least denominator worth judging. */
    minDenominator: z.number().int().min(1).max(100_000).default(10),
  })
  .strict();

export const AlertCondition = z.discriminatedUnion("kind", [DropVsWeekdayMean, SpikeVsMean, Threshold]);
export type AlertCondition = z.infer<typeof AlertCondition>;

/** {} = the whole tenant; {clinicId} = one clinic; {perClinic: true} = every clinic on its own (an episode each). */
export const AlertScope = z
  .object({ clinicId: z.uuid().optional(), perClinic: z.boolean().optional() })
  .strict()
  .refine((s) => !(s.clinicId && s.perClinic), { path: ["perClinic"], message: "give clinicId or perClinic, not both" });
export type AlertScope = z.infer<typeof AlertScope>;

function checkPair(v: { metric?: AlertMetric | undefined; condition?: AlertCondition | undefined }, ctx: z.RefinementCtx): void {
  if (!v.metric || !v.condition) return;
  if (v.condition.kind === "spike_vs_mean" && isRate(v.metric)) {
    ctx.addIssue({ code: "custom", path: ["condition", "kind"], message: "spike_vs_mean applies to counts (sla_breaches, send_failures, conversions, revenue), not rates" });
  }
  if (v.condition.kind === "threshold" && isRate(v.metric) && v.condition.value > 1) {
    ctx.addIssue({ code: "custom", path: ["condition", "value"], message: "rates are fractions from 0 to 1 (0.2 = 20%)" });
  }
}

export const AlertRuleInput = z
  .object({
    name: z.string().trim().min(1).max(100),
    metric: z.enum(ALERT_METRIC_KEYS),
    condition: AlertCondition,
    scope: AlertScope.default({}),
    enabled: z.boolean().default(true),
  })
  .strict()
  .superRefine(checkPair);
export type AlertRuleInput = z.infer<typeof AlertRuleInput>;

/** A partial update; metric and condition are checked together against the stored rule by the service. */
export const AlertRulePatch = z
  .object({
    name: z.string().trim().min(1).max(100).optional(),
    metric: z.enum(ALERT_METRIC_KEYS).optional(),
    condition: AlertCondition.optional(),
    scope: AlertScope.optional(),
    enabled: z.boolean().optional(),
  })
  .strict();
export type AlertRulePatch = z.infer<typeof AlertRulePatch>;

/** The rules a new tenant starts with: the issue's examples. */
export const DEFAULT_ALERT_RULES: AlertRuleInput[] = [
  { name: "成交率低于近4周同星期均值30%", metric: "deal_rate", condition: { kind: "drop_vs_weekday_mean", pct: 30, weeks: 4, minDenominator: 10 }, scope: {}, enabled: true },
  { name: "线索超时激增", metric: "sla_breaches", condition: { kind: "spike_vs_mean", factor: 2, days: 14, minCount: 5 }, scope: {}, enabled: true },
  { name: "群发失败激增", metric: "send_failures", condition: { kind: "spike_vs_mean", factor: 3, days: 14, minCount: 10 }, scope: {}, enabled: true },
];

// --- windows and verdicts ---------------------------------------------------------------------

/** A local day (YYYY-MM-DD), optionally cut at a local time (HH:MM:SS): what happened in [day 00:00, until). */
export interface Window {
  key: string;
  day: string;
  until?: string | undefined;
}

/** A metric's value over a window: a count (num) or a rate's numerator and denominator. */
export interface Point {
  num: number;
  den: number;
}

export interface LocalNow {
  /** Today in the tenant's time zone. */
  date: string;
  /** The local time now, HH:MM:SS. */
  time: string;
}

export interface Verdict {
  /** null: not enough volume to judge (an open episode stays as it is). */
  failing: boolean | null;
  value: number | null;
  baseline: number | null;
  detail: Record<string, unknown>;
}

/** The local date and time of `now` in a time zone. */
export function localNow(now: Date, timeZone: string): LocalNow {
  const parts = new Intl.DateTimeFormat("en-CA", { timeZone, year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23" }).formatToParts(now);
  const get = (t: string) => parts.find((p) => p.type === t)?.value ?? "00";
  return { date: `${get("year")}-${get("month")}-${get("day")}`, time: `${get("hour")}:${get("minute")}:${get("second")}` };
}


/** The windows a rule needs, relative to the local day and time now. */
export function windowsFor(metric: AlertMetric, c: AlertCondition, now: LocalNow): Window[] {
  const today = now.date;
  const yesterday = addDays(today, -1);
  const out: Window[] = [];
  if (c.kind === "drop_vs_weekday_mean") {
    out.push({ key: "today", day: today, until: now.time }, { key: "yesterday", day: yesterday });
    for (let k = 1; k <= c.weeks; k++) {
      out.push({ key: `today-w${k}`, day: addDays(today, -7 * k), until: now.time }, { key: `yesterday-w${k}`, day: addDays(yesterday, -7 * k) });
    }
  } else if (c.kind === "spike_vs_mean") {
    out.push({ key: "today", day: today, until: now.time });
    for (let k = 1; k <= c.days; k++) out.push({ key: `d${k}`, day: addDays(today, -k) });
  } else {
    const judged = thresholdDays(metric, c);
    if (judged.includes("today")) out.push({ key: "today", day: today, until: now.time });
    if (judged.includes("yesterday")) out.push({ key: "yesterday", day: yesterday });
  }
  return out;
}

/** Rates: today once it has the volume, else yesterday; counts past a ceiling (gt, gte): today so far; counts under a floor (lt, lte): yesterday, a complete day. */
function thresholdDays(metric: AlertMetric, c: z.infer<typeof Threshold>): ("today" | "yesterday")[] {
  if (isRate(metric)) return ["today", "yesterday"];
  return c.op === "gt" || c.op === "gte" ? ["today"] : ["yesterday"];
}

const valueOf = (metric: AlertMetric, p: Point | undefined): number | null => {
  const q = p ?? { num: 0, den: 0 };
  if (!isRate(metric)) return q.num;
  return q.den > 0 ? q.num / q.den : null;
};

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
const round = (x: number, d = 4) => Math.round(x * 10 ** d) / 10 ** d;

/** The verdict of one rule on one scope, from the values of its windows (missing windows count as empty). */
export function judge(metric: AlertMetric, c: AlertCondition, points: ReadonlyMap<string, Point>, now: LocalNow): Verdict {
  const rate = isRate(metric);
  const at = (key: string) => points.get(key) ?? { num: 0, den: 0 };
  const dayInfo = (key: "today" | "yesterday") => ({ judged: key, day: key === "today" ? now.date : addDays(now.date, -1), ...(key === "today" ? { until: now.time.slice(0, 5) } : {}) });
  if (c.kind === "drop_vs_weekday_mean") {
    for (const cand of ["today", "yesterday"] as const) {
      const p = at(cand);
      const value = valueOf(metric, p);
      if (value === null || (rate && p.den < c.minDenominator)) continue;
      const hist: number[] = [];
      for (let k = 1; k <= c.weeks; k++) {
        const h = at(`${cand}-w${k}`);
        const v = valueOf(metric, h);
        if (rate ? v !== null && h.den >= c.minDenominator : v !== null) hist.push(v!);
      }
      // Rates: days with too little volume say nothing; at least two such weeks (or all, for one).
      if (hist.length < Math.min(2, c.weeks)) continue;
      const base = mean(hist);
      if (!rate && base < c.minDenominator) continue;
      if (base <= 0) continue;
      const failing = value < base * (1 - c.pct / 100);
      return { failing, value: round(value), baseline: round(base), detail: { ...dayInfo(cand), num: p.num, den: rate ? p.den : null, history: hist.map((x) => round(x)), dropPct: round((1 - value / base) * 100, 1), pct: c.pct, weeks: c.weeks } };
    }
    return { failing: null, value: null, baseline: null, detail: { reason: "not enough volume to judge" } };
  }
  if (c.kind === "spike_vs_mean") {
    const value = at("today").num;
    const hist: number[] = [];
    for (let k = 1; k <= c.days; k++) hist.push(at(`d${k}`).num);
    const base = mean(hist);
    const factor = c.factor ?? (c.pct !== undefined ? 1 + c.pct / 100 : 2);
    const failing = value >= c.minCount && value > base * factor;
    return { failing, value: round(value), baseline: round(base), detail: { ...dayInfo("today"), factor, days: c.days, minCount: c.minCount, ratio: base > 0 ? round(value / base, 2) : null } };
  }
  for (const cand of thresholdDays(metric, c)) {
    const p = at(cand);
    const value = valueOf(metric, p);
    if (value === null || (rate && p.den < c.minDenominator)) continue;
    const failing = c.op === "lt" ? value < c.value : c.op === "lte" ? value <= c.value : c.op === "gt" ? value > c.value : value >= c.value;
    return { failing, value: round(value), baseline: c.value, detail: { ...dayInfo(cand), num: p.num, den: rate ? p.den : null, op: c.op } };
  }
  return { failing: null, value: null, baseline: null, detail: { reason: "not enough volume to judge" } };
}

// --- messages ---------------------------------------------------------------------------------

export function formatMetricValue(metric: AlertMetric, v: number | null): string {
  if (v === null) return "—";
  const kind = ALERT_METRICS[metric].kind;
  if (kind === "rate") return `${(v * 100).toFixed(1)}%`;
  if (kind === "amount") return `¥${Math.round(v).toLocaleString("en-US")}`;
  return Number.isInteger(v) ? String(v) : v.toFixed(1);
}

const OP_TEXT = { lt: "低于", lte: "不高于", gt: "高于", gte: "不低于" } as const;

function dayLabel(d: Record<string, unknown>): string {
  if (d.judged === "today") return `今日截至 ${String(d.until)} `;
  const [, m, day] = String(d.day).split("-").map(Number);
  return `昨日（${m}月${day}日）`;
}

/** The WeCom app message managers get when an episode opens (Chinese, plain text). */
export function alertMessage(o: { ruleName: string; metric: AlertMetric; condition: AlertCondition; scopeName: string; verdict: Verdict }): { title: string; body: string } {
  const { metric, condition: c, verdict: v } = o;
  const name = ALERT_METRICS[metric].name;
  const f = (x: number | null) => formatMetricValue(metric, x);
  const d = v.detail;
  let line: string;
  if (c.kind === "drop_vs_weekday_mean") {
    line = `${name}${dayLabel(d)}为 ${f(v.value)}，近${c.weeks}周同星期均值 ${f(v.baseline)}，下降 ${String(d.dropPct)}%（预警线 ${c.pct}%）。`;
  } else if (c.kind === "spike_vs_mean") {
    const ratio = d.ratio === null || d.ratio === undefined ? "" : `，为均值的 ${String(d.ratio)} 倍`;
    line = `${name}${dayLabel(d)}共 ${f(v.value)}，近${c.days}天日均 ${f(v.baseline)}${ratio}（预警线 ${String(d.factor)} 倍）。`;
  } else {
    line = `${name}${dayLabel(d)}为 ${f(v.value)}，${OP_TEXT[c.op]}预警值 ${f(c.value)}。`;
  }
  return { title: `数据异常预警：${o.ruleName}`, body: `范围：${o.scopeName}\n${line}\n请及时排查原因；恢复正常后预警自动关闭。` };
}
