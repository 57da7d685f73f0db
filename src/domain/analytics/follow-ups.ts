import { addDays, zonedInstant } from "../delivery/schedule";
import { localDate } from "../leads/sop";

/** Post-visit follow-ups (回访) are due at this local time of their day. */
export const FOLLOW_UP_AT = "10:00";

/** A follow-up that would be overdue by more than this at birth (an old visit imported late) is not made. */
export const STALE_FOLLOW_UP_DAYS = 7;

/**
 * When a visit's follow-up is due: `days` local days after the visit's local day, at `at` (10:00)
 * in the tenant's time zone. On a daylight-saving change the wall clock still reads `at`.
 */
export function followUpDueAt(visitAt: Date, days: number, timeZone: string, at: string = FOLLOW_UP_AT): Date {
  return zonedInstant(addDays(localDate(visitAt, timeZone), days), at, timeZone);
}

/** Whether a follow-up due at `dueAt` is worth making at `now` (not long overdue before it exists). */
export function followUpWanted(dueAt: Date, now: Date): boolean {
  return now.getTime() - dueAt.getTime() <= STALE_FOLLOW_UP_DAYS * 86_400_000;
}

export type NpsCategory = "promoter" | "passive" | "detractor";

/** NPS buckets: 9-10 promoters (推荐者), 7-8 passives (被动者), 0-6 detractors (贬损者), as tagging-rules/nps.yaml tags them. */
export function npsCategory(score: number): NpsCategory {
  return score >= 9 ? "promoter" : score >= 7 ? "passive" : "detractor";
}

/** Survey tokens are base64url, 22 characters or more (crypto random, 128+ bits). */
export function isSurveyToken(token: string): boolean {
  return /^[A-Za-z0-9_-]{22,64}$/.test(token);
}

/** A survey score as sent by a form ("7") or JSON (7): an integer from 0 to 10, else null. */
export function parseScore(v: unknown): number | null {
  const n = typeof v === "number" ? v : typeof v === "string" && /^\s*\d{1,2}\s*$/.test(v) ? Number(v) : NaN;
  return Number.isInteger(n) && n >= 0 && n <= 10 ? n : null;
}
