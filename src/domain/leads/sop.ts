import { z } from "zod";
import type { Grade } from "./grade";
import { localTime, minutesOf, startOfLocalDay } from "./route";

/**
 * Follow-up SOPs (跟进 SOP): a template of steps per kind of lead (day 0 greeting, day 1 case
 * sharing, day 3 consultation invitation, day 7 follow-up, ...). Each step becomes a task for the
 * lead's owner with a due time in the tenant's time zone and, optionally, approved copy to send to
 * the patient. Pure: templates, leads and clocks come in, decisions go out.
 */

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
const GRADES = ["A", "B", "C", "D"] as const;

const list = <T extends z.ZodType>(item: T, max: number) => z.array(item).max(max).optional();

/** Which leads a template applies to. A missing or empty list matches any lead. */
export const SopMatch = z
  .object({
    /** Lead sources (rule, api, import, wecom_qr, livestream, referral, ...). */
    sources: list(z.string().trim().min(1).max(64), 50),
    /** Need types: the lead's need or any of the contact's need tags. */
    needs: list(z.string().trim().min(1).max(64), 50),
    grades: list(z.enum(GRADES), 4),
  })
  .strict();
export type SopMatch = z.infer<typeof SopMatch>;

export const SopStep = z
  .object({
    /** Unique within the template, e.g. day0-greeting; a lead gets each step once. */
    key: z
      .string()
      .trim()
      .regex(/^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/, "letters, digits, - and _ (at most 64), e.g. day0-greeting"),
    /** Days after the lead was created (0 = the day it came in). */
    day: z.number().int().min(0).max(365),
    /**
     * Local time ("HH:MM", tenant time zone) the step is due on its day. Without it the step is due
     * `day` days after the lead's creation at the same time of day; day 0 after the grace period.
     */
    at: z
      .string()
      .regex(/^([01]\d|2[0-3]):[0-5]\d$/, 'a local time "HH:MM" such as 10:00')
      .optional(),
    /**
     * For a day-0 step without `at` (and one whose time has already passed when the lead comes in):
     * due this many minutes after the lead's creation. Default 120.
     */
    graceMinutes: z.number().int().min(0).max(1440).optional(),
    /** What the consultant does, e.g. 问候/自我介绍. */
    title: z.string().trim().min(1).max(200),
    /** An approved post whose copy goes to the patient (through the compliance gate when sent). */
    postId: z.uuid().nullish(),
    /** Guidance for the consultant (talking points); never sent to the patient. */
    note: z.string().trim().max(2000).nullish(),
  })
  .strict();
export type SopStep = z.infer<typeof SopStep>;

const templateFields = {
  name: z.string().trim().min(1).max(100),
  /** A clinic's own template (it beats the tenant's); omitted or null: the whole tenant. */
  clinicId: z.uuid().nullish(),
  /** Which leads it applies to; `{}` (the default) matches every lead. */
  match: SopMatch,
  /** Among matching templates of the same scope, the highest priority wins (default 0). */
  priority: z.number().int().min(-1000).max(1000),
  /** Inactive templates start no new SOPs (tasks already planned stay). Default true. */
  active: z.boolean(),
  steps: z.array(SopStep).min(1, "give at least one step").max(30, "at most 30 steps"),
};

function uniqueKeys(t: { steps?: readonly SopStep[] | undefined }, ctx: z.RefinementCtx): void {
  const seen = new Map<string, number>();
  (t.steps ?? []).forEach((s, i) => {
    const first = seen.get(s.key);
    if (first !== undefined) ctx.addIssue({ code: "custom", path: ["steps", i, "key"], message: `repeats the key of steps.${first}` });
    else seen.set(s.key, i);
  });
}

/** A template as created (and as stored, with defaults filled in). */
export const SopTemplateInput = z
  .object({ ...templateFields, match: SopMatch.default({}), priority: templateFields.priority.default(0), active: templateFields.active.default(true) })
  .strict()
  .superRefine(uniqueKeys);
export type SopTemplateInput = z.infer<typeof SopTemplateInput>;

/** A change to a template: only the fields given change (`steps` replaces all steps). */
export const SopTemplatePatch = z.object(templateFields).partial().strict().superRefine(uniqueKeys);
export type SopTemplatePatch = z.infer<typeof SopTemplatePatch>;

export interface SopIssue {
  /** Dotted path of the failing field, e.g. steps.2.at. */
  path: string;
  message: string;
}

export function sopIssues(issues: readonly { path: readonly PropertyKey[]; message: string }[]): SopIssue[] {
  return issues.map((i) => ({ path: i.path.length ? i.path.map(String).join(".") : "(body)", message: i.message }));
}

/** Validate a template; issues name the path (steps.2.at, match.grades.0). */
export function validateSopTemplate(input: unknown): { ok: true; template: SopTemplateInput } | { ok: false; issues: SopIssue[] } {
  const p = SopTemplateInput.safeParse(input);
  return p.success ? { ok: true, template: p.data } : { ok: false, issues: sopIssues(p.error.issues) };
}

/** A stored template as picking sees it. */
export interface SopTemplateLike {
  id: string;
  clinicId: string | null;
  active: boolean;
  priority: number;
  match: SopMatch;
}

/** What a template is matched against. */
export interface SopLead {
  clinicId: string | null;
  source: string;
  /** The lead's need first, then the contact's need tags. */
  needs: readonly string[];
  grade: Grade;
}

const given = <T>(xs: readonly T[] | undefined): xs is readonly T[] => Array.isArray(xs) && xs.length > 0;

export function templateMatches(match: SopMatch, lead: SopLead): boolean {
  if (given(match.sources) && !match.sources.includes(lead.source)) return false;
  if (given(match.needs) && !lead.needs.some((n) => match.needs!.includes(n))) return false;
  if (given(match.grades) && !match.grades.includes(lead.grade)) return false;
  return true;
}

/** How narrowly a template matches: dimensions constrained, then (negated) values allowed. */
function specificity(match: SopMatch): [number, number] {
  const sizes = [match.sources?.length ?? 0, match.needs?.length ?? 0, match.grades?.length ?? 0].filter((n) => n > 0);
  return [sizes.length, -sizes.reduce((a, b) => a + b, 0)];
}

/**
 * The template for a lead: active templates that match it, the lead's clinic's own before the
 * tenant's (other clinics' never), then the highest priority, then the most specific (more
 * dimensions constrained, then fewer values allowed), then the lowest id (stable). Null: none.
 */
export function pickTemplate<T extends SopTemplateLike>(templates: readonly T[], lead: SopLead): T | null {
  const scope = (t: T) => (t.clinicId === null ? 1 : t.clinicId === lead.clinicId ? 0 : -1);
  const fits = templates.filter((t) => t.active && scope(t) >= 0 && templateMatches(t.match, lead));
  fits.sort((a, b) => {
    const [da, va] = specificity(a.match);
    const [db, vb] = specificity(b.match);
    return scope(a) - scope(b) || b.priority - a.priority || db - da || vb - va || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
  });
  return fits[0] ?? null;
}

export interface PlannedStep {
  key: string;
  title: string;
  day: number;
  at: string | null;
  postId: string | null;
  note: string | null;
  dueAt: Date;
}

/** Default time after a lead's creation for a day-0 step without a time of day. */
export const DEFAULT_GRACE_MINUTES = 120;

/**
 * Move `t` so its local wall-clock time is `minutes` after midnight: a daylight-saving change
 * between the day's start and `t` shifts the clock (no-op in zones without DST, like China's).
 */
function onWallClock(t: Date, minutes: number, timeZone: string): Date {
  let drift = localTime(t, timeZone).minutes - minutes;
  if (drift > 720) drift -= 1440;
  if (drift < -720) drift += 1440;
  return drift === 0 ? t : new Date(t.getTime() - drift * MINUTE);
}

/**
 * Local midnight `days` days after the local day of `at`: anchored at noon, so a daylight-saving
 * change never skips or repeats a day, and put on the wall clock's 00:00 (startOfLocalDay counts
 * local minutes, an hour off after a change that same night).
 */
function localDayStart(at: Date, days: number, timeZone: string): Date {
  return onWallClock(startOfLocalDay(new Date(startOfLocalDay(at, timeZone).getTime() + days * DAY + 12 * HOUR), timeZone), 0, timeZone);
}

/**
 * Due times of a template's steps for a lead created at `createdAt`, in the tenant's time zone:
 * a step with `at` is due at that local time on day `day` (day 0 = the creation's local day); one
 * without is due `day` days after creation at the same local time, a day-0 step `graceMinutes`
 * after creation (the step's own, else `opts.graceMinutes`, else 120). No step is due before the lead existed: a day-0 time already past is due after
 * the grace instead.
 */
export function planSteps(template: { steps: readonly SopStep[] }, createdAt: Date, timeZone: string, opts: { graceMinutes?: number } = {}): PlannedStep[] {
  const createdMinutes = localTime(createdAt, timeZone).minutes;
  return template.steps.map((s) => {
    const grace = (s.graceMinutes ?? opts.graceMinutes ?? DEFAULT_GRACE_MINUTES) * MINUTE;
    let dueAt: Date;
    if (s.at) {
      const m = minutesOf(s.at);
      dueAt = onWallClock(new Date(localDayStart(createdAt, s.day, timeZone).getTime() + m * MINUTE), m, timeZone);
    } else if (s.day === 0) {
      dueAt = new Date(createdAt.getTime() + grace);
    } else {
      dueAt = onWallClock(new Date(createdAt.getTime() + s.day * DAY), createdMinutes, timeZone);
    }
    if (dueAt.getTime() < createdAt.getTime()) dueAt = new Date(createdAt.getTime() + grace);
    return { key: s.key, title: s.title, day: s.day, at: s.at ?? null, postId: s.postId ?? null, note: s.note ?? null, dueAt };
  });
}

/** The local calendar date of `at` in a time zone, as YYYY-MM-DD. */
export function localDate(at: Date, timeZone: string): string {
  return new Intl.DateTimeFormat("en-CA", { timeZone, year: "numeric", month: "2-digit", day: "2-digit" }).format(at);
}

/**
 * The local day containing `at` (or the local date YYYY-MM-DD) in a time zone, as instants:
 * [start, end). 23 or 25 hours long on a daylight-saving change.
 */
export function localDayBounds(at: Date | string, timeZone: string): { start: Date; end: Date } {
  let probe: Date;
  if (typeof at === "string") {
    // Noon UTC of that date lies within a day of it in every zone (UTC-12 to UTC+14): step to it.
    probe = new Date(`${at}T12:00:00.000Z`);
    if (Number.isNaN(probe.getTime())) throw new RangeError(`not a date: ${at}`);
    const local = localDate(probe, timeZone);
    if (local > at) probe = new Date(probe.getTime() - DAY);
    else if (local < at) probe = new Date(probe.getTime() + DAY);
  } else probe = at;
  return { start: localDayStart(probe, 0, timeZone), end: localDayStart(probe, 1, timeZone) };
}

/** When the consultants' daily digest goes out, local time of each tenant. */
export const DIGEST_AT = "08:30";

/**
 * The local day whose digest is due at `now` in a time zone: from `at` until `windowMinutes` later,
 * else null. The quarter-hourly ticks inside the window (a scheduler down at 08:30 still catches
 * up) all fall within the hour BullMQ keeps a finished job, so its deterministic id holds: one
 * digest job per tenant and day.
 */
export function digestDay(now: Date, timeZone: string, at: string = DIGEST_AT, windowMinutes = 45): string | null {
  const m = localTime(now, timeZone).minutes;
  const from = minutesOf(at);
  return m >= from && m < from + windowMinutes ? localDate(now, timeZone) : null;
}

export interface DigestItem {
  /** The patient's name as the consultant knows them (the consultant owns the contact). */
  contactName: string | null;
  title: string;
  dueAt: Date;
}

export interface DigestInput {
  /** The local day (YYYY-MM-DD) the digest is for. */
  day: string;
  timeZone: string;
  /** Open tasks due later today, soonest first (may be the first few of `totals.today`). */
  today: readonly DigestItem[];
  /** Open tasks past due, oldest first. */
  overdue: readonly DigestItem[];
  /** Open leads the consultant has not contacted yet (first-contact SLA running). */
  awaiting: readonly { contactName: string | null; grade: Grade; dueAt: Date | null }[];
  /** How many there are in all, when the lists above are only the first few. */
  totals?: { today?: number; overdue?: number; awaiting?: number };
}

const hhmm = (at: Date, timeZone: string) => {
  const m = localTime(at, timeZone).minutes;
  return `${String(Math.floor(m / 60)).padStart(2, "0")}:${String(m % 60).padStart(2, "0")}`;
};

/** UTF-8 length: WeCom limits text messages in bytes (app messages: 2,048). */
export function utf8Bytes(s: string): number {
  let n = 0;
  for (const ch of s) {
    const c = ch.codePointAt(0)!;
    n += c < 0x80 ? 1 : c < 0x800 ? 2 : c < 0x10000 ? 3 : 4;
  }
  return n;
}

/**
 * The digest as a WeCom app message (plain text; WeCom shows the first line in the chat list):
 * counts first, then up to `perSection` items of each section, within `maxBytes` of UTF-8 so title
 * and body fit one app message. Null when there is nothing to do.
 */
export function composeDigest(d: DigestInput, opts: { perSection?: number; maxBytes?: number } = {}): { title: string; body: string } | null {
  const perSection = opts.perSection ?? 5;
  const maxBytes = opts.maxBytes ?? 1800;
  const total = { today: d.totals?.today ?? d.today.length, overdue: d.totals?.overdue ?? d.overdue.length, awaiting: d.totals?.awaiting ?? d.awaiting.length };
  if (!total.today && !total.overdue && !total.awaiting) return null;
  const [, month, date] = d.day.split("-");
  const who = (n: string | null) => n || "未命名客户";
  const more = "……更多请在工作台查看";
  const lines: string[] = [`今日待办 ${total.today} 项，逾期 ${total.overdue} 项，待首次联系 ${total.awaiting} 位。`];
  let bytes = utf8Bytes(lines[0]!);
  let cut = false;
  const push = (line: string) => {
    const b = utf8Bytes(line) + 1;
    if (cut || bytes + b + utf8Bytes(more) + 1 > maxBytes) {
      cut = true;
      return false;
    }
    lines.push(line);
    bytes += b;
    return true;
  };
  const section = <T>(head: string, items: readonly T[], all: number, line: (x: T) => string) => {
    if (!all || !push("") || !push(`【${head}】`)) return;
    const shown = items.slice(0, perSection);
    for (const x of shown) if (!push(`· ${line(x)}`)) return;
    if (all > shown.length) push(`……还有 ${all - shown.length} 项`);
  };
  const day = (at: Date) => localDate(at, d.timeZone).slice(5).replace("-", "/");
  section("逾期任务", d.overdue, total.overdue, (x) => `${day(x.dueAt)} ${hhmm(x.dueAt, d.timeZone)} ${x.title}：${who(x.contactName)}`);
  section("今日任务", d.today, total.today, (x) => `${hhmm(x.dueAt, d.timeZone)} ${x.title}：${who(x.contactName)}`);
  section("待首次联系", d.awaiting, total.awaiting, (x) => `${who(x.contactName)}（${x.grade} 级）${x.dueAt ? `，${day(x.dueAt)} ${hhmm(x.dueAt, d.timeZone)} 前联系` : ""}`);
  if (cut) lines.push(more);
  return { title: `跟进日报 ${Number(month)}月${Number(date)}日`, body: lines.join("\n") };
}

/**
 * The SOP every new tenant starts with (any lead, priority 0): the classic four touches of a
 * clinic consultant. Steps carry no post: copy for patients needs review first; attach an
 * approved post's id to a step (updateSopTemplate) to send it from the task.
 */
export const DEFAULT_SOP_TEMPLATE: SopTemplateInput = SopTemplateInput.parse({
  name: "新线索标准跟进 SOP",
  match: {},
  priority: 0,
  active: true,
  steps: [
    { key: "day0-greeting", day: 0, title: "问候/自我介绍", note: "添加后尽快打招呼：介绍自己和门诊，确认客户关心的项目和方便联系的时间。" },
    { key: "day1-case", day: 1, at: "10:00", title: "案例分享", note: "按客户关心的项目分享经审核的真实案例或科普内容，了解顾虑（价格、效果、疼痛、恢复期）。" },
    { key: "day3-invite", day: 3, at: "14:00", title: "邀约面诊", note: "邀请到院面诊评估，给出两个可选时间，确认后登记预约。" },
    { key: "day7-followup", day: 7, at: "10:00", title: "回访跟进", note: "回访面诊或考虑情况；未到院的了解原因，记录结果（成交或流失原因）。" },
  ],
});
