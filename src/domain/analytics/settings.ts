import { z } from "zod";

/**
 * Analytics settings of a tenant (analytics_settings.config): post-visit follow-ups (回访) and the
 * attribution window. Every field has a default, so `{}` is a valid config and a tenant without a
 * row gets DEFAULT_ANALYTICS_SETTINGS.
 */
export const FollowUpSettings = z
  .object({
    /** A visit's follow-up (回访) is due this many local days after it, at 10:00 tenant time (0: the same day). */
    afterVisitDays: z.number().int().min(0).max(90).default(3),
    /** Each post-visit follow-up carries a satisfaction (NPS) survey link for the patient. */
    surveyAfterVisit: z.boolean().default(true),
  })
  .strict();

export const AttributionSettings = z
  .object({
    /** A conversion is credited to touches (sends, clicks) within this many days before it. */
    windowDays: z.number().int().min(1).max(365).default(30),
  })
  .strict();

export const AnalyticsSettings = z
  .object({
    followUps: FollowUpSettings.default(FollowUpSettings.parse({})),
    attribution: AttributionSettings.default(AttributionSettings.parse({})),
  })
  .strict();
export type AnalyticsSettings = z.infer<typeof AnalyticsSettings>;

export const DEFAULT_ANALYTICS_SETTINGS: AnalyticsSettings = AnalyticsSettings.parse({});

/**
 * The settings in a stored config, defaults filled in. A section that no longer parses (a field
 * retired or tightened since it was saved) falls back to its defaults; the other sections stand.
 */
export function analyticsSettingsOf(config: unknown): AnalyticsSettings {
  const whole = AnalyticsSettings.safeParse(config ?? {});
  if (whole.success) return whole.data;
  const c = (typeof config === "object" && config !== null ? config : {}) as Record<string, unknown>;
  const followUps = FollowUpSettings.safeParse(c.followUps ?? {});
  const attribution = AttributionSettings.safeParse(c.attribution ?? {});
  return {
    followUps: followUps.success ? followUps.data : DEFAULT_ANALYTICS_SETTINGS.followUps,
    attribution: attribution.success ? attribution.data : DEFAULT_ANALYTICS_SETTINGS.attribution,
  };
}
