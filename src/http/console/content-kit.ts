import type { EntryWhen } from "../../domain/calendars/when";
import { addDays } from "../../domain/delivery/schedule";
import { ConflictError, ForbiddenError, ValidationError } from "../../errors";
import { hasMessage, type MessageKey, type Translate } from "./i18n";
import type { Page } from "./kit";

/** Shared by the content pages (calendars, reviews, sends): labels, local dates, refused forms. */

/** A label from the catalogue when it has one, else the raw value (a category or kind added to the lists later). */
export const labelOr = (t: Translate, key: string, raw: string): string => (hasMessage(key) ? t(key as MessageKey) : raw);

/** Review states an entry can show: the post's, or unpublished (a draft calendar's entries have no post yet). */
export type ReviewState = "unpublished" | "draft" | "in_review" | "approved" | "rejected" | "scheduled" | "sent";

export interface StatusBadge {
  state: string;
  label: string;
}

/** The review status badge of a post (in review: with its level, 1/2). */
export function reviewBadge(t: Translate, state: string | null, level?: { at: number | null; of: number }): StatusBadge {
  const s = state ?? "unpublished";
  const label = labelOr(t, `cal.state.${s}`, s);
  if (s === "in_review" && level && level.of > 1 && level.at) return { state: s, label: t("cal.state.in_review.level", { label, at: level.at, of: level.of }) };
  return { state: s, label };
}

/** Local dates (YYYY-MM-DD) are plain strings; these do the calendar arithmetic in UTC, where days are days. */
export const isoWeekday = (date: string): number => ((new Date(`${date}T00:00:00Z`).getUTCDay() + 6) % 7) + 1;
export const monthStart = (date: string): string => `${date.slice(0, 7)}-01`;
export const monthLength = (date: string): number => {
  const [y, m] = date.split("-").map(Number) as [number, number];
  return new Date(Date.UTC(y, m, 0)).getUTCDate();
};
export const addMonths = (date: string, n: number): string => {
  const [y, m] = date.split("-").map(Number) as [number, number];
  const d = new Date(Date.UTC(y, m - 1 + n, 1));
  return d.toISOString().slice(0, 10);
};
export const isDate = (s: string | undefined): s is string => !!s && /^\d{4}-\d{2}-\d{2}$/.test(s) && !Number.isNaN(Date.parse(`${s}T00:00:00Z`)) && new Date(`${s}T00:00:00Z`).toISOString().slice(0, 10) === s;

/** The local dates of an entry's sends between from and to (inclusive); none for entries timed per recipient. */
export function occurrencesBetween(when: EntryWhen, from: string, to: string, dates: { startDate?: string | undefined; endDate?: string | undefined }): string[] {
  const out: string[] = [];
  const inDates = (d: string) => (!dates.startDate || d >= dates.startDate) && (!dates.endDate || d <= dates.endDate);
  if (when.kind === "at") {
    const d = when.at.slice(0, 10);
    if (d >= from && d <= to) out.push(d);
    return out;
  }
  if (when.kind !== "weekday" && when.kind !== "monthday") return out;
  for (let d = from; d <= to; d = addDays(d, 1)) {
    if (!inDates(d)) continue;
    if (when.kind === "weekday" && isoWeekday(d) === when.weekday) out.push(d);
    if (when.kind === "monthday" && Number(d.slice(8, 10)) === Math.min(when.day, monthLength(d))) out.push(d);
  }
  return out;
}

const WEEKDAY_KEYS = ["", "cal.wd.1", "cal.wd.2", "cal.wd.3", "cal.wd.4", "cal.wd.5", "cal.wd.6", "cal.wd.7"] as const;
export const weekdayLabel = (t: Translate, n: number): string => t((WEEKDAY_KEYS[n] ?? "cal.wd.1") as MessageKey);

/** When an entry goes out, said for people: 2026-12-07 10:00, 每周一 10:00, 报名后第 3 天 09:00 … */
export function whenText(t: Translate, w: EntryWhen | null): string {
  if (!w) return "—";
  switch (w.kind) {
    case "at":
      return w.at.replace("T", " ");
    case "weekday":
      return t("cal.when.weekday", { day: weekdayLabel(t, w.weekday), time: w.time });
    case "monthday":
      return t("cal.when.monthday", { day: w.day, time: w.time });
    case "birthday":
      return w.daysBefore ? t("cal.when.birthdayBefore", { n: w.daysBefore, time: w.time }) : t("cal.when.birthday", { time: w.time });
    case "relative":
      return w.day < 0 ? t("cal.when.relativeBefore", { n: -w.day, time: w.time }) : t("cal.when.relative", { n: w.day, time: w.time });
    case "before":
      return t("cal.when.before", { n: w.minutes });
  }
}

/** A refused form: each message next to its field (mapped from the service's field path), the rest for the whole form. */
export interface FormState {
  values: Record<string, string>;
  errors: Record<string, string>;
  formError?: string | undefined;
}

/**
 * Turn a service refusal into the form's errors: `fieldOf(path)` names the form field of an issue
 * (or null: the whole form). Validation: 422; a conflict (changed since read, archived): 409; a role
 * the service refuses (own copy, second level): 403. Anything else is not a form problem: null.
 */
export function refusal(p: Page, err: unknown, fieldOf: (path: string) => string | null, opts: { prefix?: MessageKey; message?: (field: string, serviceMessage: string) => string | undefined } = {}): { errors: Record<string, string>; formError?: string; status: number } | null {
  if (err instanceof ForbiddenError) return { errors: {}, formError: `${p.t("cal.refused")} ${err.detail}`, status: 403 };
  if (!(err instanceof ValidationError) && !(err instanceof ConflictError)) return null;
  const errors: Record<string, string> = {};
  const other: string[] = [];
  for (const issue of err.issues) {
    const field = fieldOf(issue.field);
    const message = field ? (opts.message?.(field, issue.message) ?? issue.message) : issue.message;
    if (field) errors[field] = errors[field] ? `${errors[field]}；${message}` : message;
    else other.push(`${issue.field}: ${issue.message}`);
  }
  if (err instanceof ConflictError && !err.issues.length) other.push(err.detail);
  const prefix = p.t(err instanceof ConflictError ? "cal.conflict" : (opts.prefix ?? "cal.formError"));
  const formError = Object.keys(errors).length || other.length ? [prefix, ...other].join(" ") : `${prefix} ${err.detail}`;
  return { errors, formError, status: err instanceof ConflictError ? 409 : 422 };
}

/**
 * Why a send was skipped, cancelled or failed, as delivery words it (English, for the log and the
 * API) and as the console says it: a label from the catalogue for the reasons it knows, the words
 * themselves otherwise (and always as the detail).
 */
const REASONS: [RegExp, MessageKey][] = [
  [/opted out/, "cal.conflict.opted_out"],
  [/^over WeCom/, "cal.conflict.quota"],
  [/per group chat per day/, "cal.conflict.quota"],
  [/^over the fatigue cap/, "cal.conflict.fatigue"],
  [/^no sender/, "cal.conflict.no_sender"],
  [/^skipped by the entry's condition/, "cal.conflict.condition"],
  [/^not a WeCom contact/, "cal.conflict.not_wecom"],
  [/^the contact removed/, "cal.conflict.removed_contact"],
  [/^its time/, "cal.conflict.passed"],
  [/^cancelled/, "cal.reason.cancelled"],
  [/compliance gate/, "cal.reason.gate"],
  [/^the sender has no WeCom userid/, "cal.reason.sender"],
  [/^WeCom is not set up/, "cal.reason.wecom"],
];
export function reasonText(t: Translate, reason: string): { label: string; detail: string } {
  const hit = REASONS.find(([re]) => re.test(reason));
  return { label: hit ? t(hit[1]) : reason, detail: reason };
}

