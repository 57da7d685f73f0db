import { z } from "zod";

/**
 * Lead settings of a tenant or clinic: how leads are graded, routed, claimed and chased. Stored as
 * JSON (lead_settings.config), validated here; every field has a default, so `{}` is a complete
 * configuration and a partial update only names what it changes.
 */
const points = z.number().int().min(-100).max(100);

export const GradingConfig = z
  .object({
    /** Points per need type of the lead (the contact's need tags); `other` for any need not listed. */
    needs: z.record(z.string().min(1), points).default({ 种植牙: 25, 正畸: 25, 抗衰: 20, 产后修复: 20, 减重: 15, 脱毛: 15, 美白: 10, 祛痘: 10, other: 5 }),
    /** Points per lead source (rule, api, import, wecom_qr, livestream, referral, ...); `other` otherwise. */
    sources: z.record(z.string().min(1), points).default({ referral: 25, wecom_qr: 20, appointment: 20, livestream: 15, message: 10, rule: 10, api: 10, import: 5, other: 5 }),
    /** Points per engagement tag. */
    engagement: z.record(z.string().min(1), points).default({ 高: 20, 中: 10, 低: 0 }),
    /** Points per spending tier tag. */
    spending: z.record(z.string().min(1), points).default({ 高消费: 20, 中消费: 10, 低消费: 0 }),
    /** Signal scores (rule actions, API) count up to this many points. */
    signalMax: z.number().int().min(0).max(100).default(15),
    /** Full recency points for a signal within `recencyDays`, falling linearly to 0 at 4x that. */
    recencyPoints: z.number().int().min(0).max(100).default(10),
    recencyDays: z.number().int().min(1).max(365).default(3),
    /** Lowest score of each grade (A >= a, B >= b, C >= c, else D). */
    thresholds: z
      .object({ A: z.number().int().min(0).max(100), B: z.number().int().min(0).max(100), C: z.number().int().min(0).max(100) })
      .refine((t) => t.A > t.B && t.B > t.C, { message: "must fall from A to C" })
      .default({ A: 70, B: 50, C: 30 }),
  })
  .strict();

export const STRATEGIES = ["skill", "round_robin", "weighted", "least_loaded"] as const;
export type Strategy = (typeof STRATEGIES)[number];

export const AssignmentConfig = z
  .object({
    /**
     * Tried in order; the first step that finds a consultant wins, otherwise the lead goes to the
     * pool (公海). skill: consultants whose skills include the lead's need (least loaded first);
     * round_robin: fewest turns; weighted: turns in proportion to `weights`; least_loaded: lowest
     * open leads / capacity.
     */
    chain: z
      .array(z.object({ strategy: z.enum(STRATEGIES), onShiftOnly: z.boolean().default(true) }).strict())
      .min(1)
      .max(8)
      .default([{ strategy: "skill", onShiftOnly: true }, { strategy: "round_robin", onShiftOnly: true }]),
    /** Relative shares for the weighted strategy, by staff id (default 1). */
    weights: z.record(z.uuid(), z.number().int().min(0).max(100)).default({}),
    /** Leads a consultant may claim from the pool per day (tenant time zone). */
    poolDailyClaimCap: z.number().int().min(0).max(1000).default(10),
  })
  .strict();

export const SlaConfig = z
  .object({
    /** First-contact deadline in minutes by grade. */
    firstContactMinutes: z
      .object({ A: z.number().int().min(1), B: z.number().int().min(1), C: z.number().int().min(1), D: z.number().int().min(1) })
      .default({ A: 15, B: 60, C: 240, D: 1440 }),
    /** Count only the owner's working hours (staff shift) towards the deadline. */
    workingHoursOnly: z.boolean().default(true),
    /** Remind the owner this many minutes before the deadline. */
    remindBeforeMinutes: z.number().int().min(0).max(1440).default(5),
    /** On breach: route the lead again (excluding the owner who missed it) or return it to the pool. */
    onBreach: z.enum(["reassign", "pool"]).default("reassign"),
  })
  .strict();

export const OutcomeConfig = z
  .object({
    /** Why consultations are lost (a lost outcome must give one; nurture calendars target them as tags). */
    lostReasons: z
      .array(z.string().trim().min(1).max(30))
      .min(1)
      .max(50)
      .refine((a) => new Set(a).size === a.length, { message: "has a reason twice" })
      .default(["价格敏感", "担心效果", "恐惧疼痛", "时间不便", "选择了其他机构", "暂无需求", "联系不上", "其他"]),
  })
  .strict();

export const LeadConfig = z
  .object({
    grading: GradingConfig.default(GradingConfig.parse({})),
    assignment: AssignmentConfig.default(AssignmentConfig.parse({})),
    sla: SlaConfig.default(SlaConfig.parse({})),
    outcomes: OutcomeConfig.default(OutcomeConfig.parse({})),
  })
  .strict();
export type LeadConfig = z.infer<typeof LeadConfig>;

export const DEFAULT_LEAD_CONFIG: LeadConfig = LeadConfig.parse({});
