import { z } from "zod";

/**
 * Inputs and outputs of the funnel metrics (docs/metrics.md has every definition). Periods are
 * local days in the tenant's time zone, `from` inclusive and `to` exclusive.
 */

export const DIMENSIONS = ["none", "clinic", "consultant", "channel", "segment", "calendar"] as const;
export type Dimension = (typeof DIMENSIONS)[number];

export const GRANULARITIES = ["day", "week", "month"] as const;
export type Granularity = (typeof GRANULARITIES)[number];

/** The longest period one request may cover, and the most trend buckets. */
export const MAX_PERIOD_DAYS = 731;
export const MAX_BUCKETS = 400;

const LocalDay = z.iso.date();

const Period = {
  /** First local day of the period (tenant time zone), inclusive. Default: 30 days before `to`. */
  from: LocalDay.optional().describe("First local day of the period (tenant time zone), inclusive; default 30 days before `to`"),
  /** The local day after the period (exclusive). Default: tomorrow, so the period ends with today. */
  to: LocalDay.optional().describe("The local day after the period (exclusive); default tomorrow, so the period ends with today"),
};

/** Restrict every metric to one clinic, consultant, channel, segment or calendar (docs/metrics.md, "Dimensions"). */
export const MetricScope = z.object({
  clinicId: z.uuid().optional().describe("Only this clinic's figures"),
  staffId: z.uuid().optional().describe("Only this consultant's figures"),
  /** A channel code state (渠道活码) or a contact source (wecom, import, referral, ...). */
  channel: z.string().trim().min(1).max(200).optional().describe("Only contacts of this channel code state (渠道活码) or source"),
  segmentId: z.uuid().optional().describe("Only contacts in this segment now"),
  calendarId: z.uuid().optional().describe("Only contacts this calendar sent something to in the period"),
});
export type MetricScope = z.infer<typeof MetricScope>;

export const FunnelInput = z.object({
  ...Period,
  /** Group the numbers by this dimension (none: one row for everything). */
  by: z.enum(DIMENSIONS).default("none").describe("Group by this dimension (none: one row)"),
  ...MetricScope.shape,
});
export type FunnelInput = z.infer<typeof FunnelInput>;

export const TrendsInput = FunnelInput.extend({
  /** Bucket size: local days, ISO weeks (Monday first) or calendar months. */
  period: z.enum(GRANULARITIES).default("day").describe("Bucket: local day, ISO week (Monday) or month"),
});
export type TrendsInput = z.infer<typeof TrendsInput>;

export const ScorecardsInput = z.object({
  ...Period,
  /** Only consultants of this clinic (staff.clinic_id). */
  clinicId: z.uuid().optional().describe("Only consultants of this clinic"),
  /** One consultant. */
  staffId: z.uuid().optional().describe("One staff member's card"),
});
export type ScorecardsInput = z.infer<typeof ScorecardsInput>;

export const MyScorecardInput = z.object(Period);
export type MyScorecardInput = z.infer<typeof MyScorecardInput>;

/** Metric keys one metric can be computed by (computeMetric; alert rules store these). */
export const METRIC_KEYS = [
  "appointments",
  "visits",
  "visit_rate",
  "consultations",
  "converted",
  "deal_rate",
  "follow_ups_due",
  "follow_ups_done",
  "follow_up_rate",
  "buyers",
  "repeat_buyers",
  "repeat_rate",
  "new_contacts",
  "referred_contacts",
  "referral_rate",
  "nps",
  "revenue",
  "lead_response_median_minutes",
  "lead_response_p90_minutes",
  "sla_breaches",
  "sla_breach_rate",
  "send_failures",
  "send_failure_rate",
] as const;
export type MetricKey = (typeof METRIC_KEYS)[number];

export const ComputeMetricInput = z.object({
  metric: z.enum(METRIC_KEYS),
  ...Period,
  /** Buckets; omitted: one point for the whole period. */
  period: z.enum(GRANULARITIES).optional(),
  scope: MetricScope.default({}),
});
export type ComputeMetricInput = z.input<typeof ComputeMetricInput>;

/** A ratio with its parts; value is null when the denominator is 0. */
export interface Rate {
  numerator: number;
  denominator: number;
  value: number | null;
}

export interface FunnelMetrics {
  appointments: number;
  visits: number;
  /** 上门率: visits / appointments. */
  visitRate: Rate;
  consultations: number;
  converted: number;
  /** 成交率: converted consultations / consultations. */
  dealRate: Rate;
  followUpsDue: number;
  followUpsDone: number;
  /** 回访率: follow-ups done / due. */
  followUpRate: Rate;
  buyers: number;
  repeatBuyers: number;
  /** 二开率: buyers with purchases on 2+ local days up to the period's end / buyers. */
  repeatRate: Rate;
  newContacts: number;
  referredContacts: number;
  /** 转介绍率: new contacts with a referrer / new contacts. */
  referralRate: Rate;
  nps: { responses: number; promoters: number; passives: number; detractors: number; value: number | null };
  /** Yuan: purchases minus refunds. */
  revenue: { purchases: number; refunds: number; net: number };
  /** Minutes from assignment to first contact, over leads assigned in the period and contacted. */
  leadResponse: { leads: number; medianMinutes: number | null; p90Minutes: number | null };
  /** First-contact deadlines in the period that were breached / decided deadlines. */
  slaBreachRate: Rate;
}

export interface FunnelRow {
  /** The dimension value (clinic, staff, segment or calendar id; channel code or source); null: none or unassigned. */
  key: string | null;
  label: string | null;
  metrics: FunnelMetrics;
}

export interface PeriodView {
  from: string;
  to: string;
  timezone: string;
}

export interface FunnelResult extends PeriodView {
  by: Dimension;
  rows: FunnelRow[];
}

export interface TrendsResult extends PeriodView {
  by: Dimension;
  period: Granularity;
  /** Local start day of each bucket, oldest first. */
  buckets: string[];
  /** One row per bucket (and key when grouped), buckets with nothing filled with zeros. */
  series: (FunnelRow & { bucket: string })[];
}

export interface Scorecard {
  staffId: string;
  name: string;
  clinicId: string | null;
  active: boolean;
  /** Assignments to the consultant in the period (lead_assignments: assign, direct, claim, reassign, reclaim, resign). */
  leadsReceived: number;
  /** Leads assigned to them in the period (their current assignment) first contacted by the deadline. */
  contactedWithinSla: number;
  /** contactedWithinSla / leadsReceived. */
  contactedWithinSlaRate: Rate;
  medianResponseMinutes: number | null;
  consultations: number;
  conversions: number;
  dealRate: Rate;
  /** Yuan: purchases minus refunds credited to them. */
  revenue: number;
  followUpsDue: number;
  followUpsDone: number;
  followUpRate: Rate;
  /** Their first-contact deadlines in the period that were breached, and the share of their decided deadlines. */
  slaBreaches: number;
  slaBreachRate: Rate;
}

export interface ScorecardsResult extends PeriodView {
  items: Scorecard[];
}

export interface MetricPoint {
  /** Local start day of the bucket (the period's first day without buckets). */
  bucket: string;
  /** Counts have no denominator; revenue's numerator is the net amount; NPS: promoters − detractors over responses. */
  numerator: number | null;
  denominator: number | null;
  value: number | null;
}

export interface MetricResult extends PeriodView {
  metric: MetricKey;
  period: Granularity | null;
  points: MetricPoint[];
}
