import { z } from "zod";

/**
 * The calendar file format (content-calendars/*.yaml, or the body of POST /v1/calendars): what
 * marketers write. Shapes only; cross-field rules (one kind of `when` per calendar, channel vs
 * audience, declared template variables, quiet hours …) are checked by parseCalendar
 * (validate.ts), which returns the normalised CalendarDefinition that is stored and delivered.
 */

/** What an entry sends (WeCom add_msg_template content): text plus the attachment its kind needs. */
export const ENTRY_KINDS = ["text", "article", "image", "miniprogram", "livestream", "interaction", "poll"] as const;
export type EntryKind = (typeof ENTRY_KINDS)[number];

/** single: a 1:1 mass message via the owner staff (or each contact's owner consultant); group: customer group chats. */
export const CHANNELS = ["single", "group"] as const;
export type Channel = (typeof CHANNELS)[number];

/**
 * Variables delivery fills per recipient. Any other declared variable needs a `value` in the file.
 * `link` is the entry's link, rewritten to a tracked short link per recipient.
 */
export const RECIPIENT_VARIABLES = {
  name: "the contact's name (use a fallback such as 您 for contacts without one)",
  nickname: "the contact's WeChat nickname",
  consultant: "the sender's name: the owner staff member or the contact's consultant",
  clinic: "the clinic's name",
  link: "the entry's link (link.url), tracked per recipient",
} as const;

export const DEFAULT_TIME_ZONE = "Asia/Shanghai";
/** Nothing is sent between these local times: 21:00 to 08:30 the next morning. */
export const DEFAULT_QUIET_HOURS = { start: "21:00", end: "08:30" } as const;

export const KEY_RE = /^[a-z0-9][a-z0-9_-]{0,63}$/;
const KEY_MSG = "lowercase letters, digits, - and _ (at most 64, starting with a letter or digit), e.g. day1-tips";
export const Key = z.string().regex(KEY_RE, KEY_MSG);

const TIME_RE = /^([01]\d|2[0-3]):[0-5]\d$/;
export const LocalTime = z.string().regex(TIME_RE, "a 24-hour time HH:MM, e.g. 09:30 (quote it in YAML: \"09:30\")");

function isRealDate(s: string): boolean {
  const [y, m, d] = s.split("-").map(Number) as [number, number, number];
  const t = new Date(Date.UTC(y, m - 1, d));
  return t.getUTCFullYear() === y && t.getUTCMonth() === m - 1 && t.getUTCDate() === d;
}
export const LocalDate = z
  .string()
  .regex(/^\d{4}-\d{2}-\d{2}$/, "a date YYYY-MM-DD, e.g. 2026-12-07")
  .refine(isRealDate, "is not a real calendar date");

/** Weekday names accepted besides 1-7 (ISO: Monday = 1, Sunday = 7). */
export const WEEKDAY_NAMES: Readonly<Record<string, number>> = {
  mon: 1, tue: 2, wed: 3, thu: 4, fri: 5, sat: 6, sun: 7,
  monday: 1, tuesday: 2, wednesday: 3, thursday: 4, friday: 5, saturday: 6, sunday: 7,
  周一: 1, 周二: 2, 周三: 3, 周四: 4, 周五: 5, 周六: 6, 周日: 7, 周天: 7,
  星期一: 1, 星期二: 2, 星期三: 3, 星期四: 4, 星期五: 5, 星期六: 6, 星期日: 7, 星期天: 7,
};
const WEEKDAY_MSG = "a weekday: 1-7 (Monday = 1), mon … sun, or 周一 … 周日";
export const Weekday = z.union([z.number(), z.string()], { error: WEEKDAY_MSG }).refine((v) => (typeof v === "number" ? Number.isInteger(v) && v >= 1 && v <= 7 : v.toLowerCase() in WEEKDAY_NAMES), WEEKDAY_MSG);

/**
 * When an entry goes out, in the calendar's time zone. Exactly one of:
 * `date` (once), `weekday` (every week), `monthday` (every month; 29-31 fall on a shorter month's
 * last day), `birthday: true` (each contact's birthday, `daysBefore` it) — a dated calendar — or
 * `day` (day N after the contact's enrollment, 0 = the day of enrollment) — a relative calendar.
 */
export const When = z.strictObject({
  date: LocalDate.optional(),
  weekday: Weekday.optional(),
  monthday: z.number().int().min(1).max(31).optional(),
  birthday: z.literal(true).optional(),
  /** With birthday: this many days before it (0 = on the day). */
  daysBefore: z.number().int().min(0).max(30).optional(),
  /** Day N after the enrollment's day; negative: before it (an appointment reminder the day before is -1). */
  day: z.number().int().min(-30).max(365).optional(),
  /** Relative calendars anchored at an appointment: this many minutes before the anchor itself (no `time`). */
  minutesBefore: z.number().int().min(1).max(10_080).optional(),
  /** Local time of day; every kind but minutesBefore needs it. */
  time: LocalTime.optional(),
});
export type When = z.infer<typeof When>;

export const QuietHours = z.strictObject({ start: LocalTime, end: LocalTime });
export type QuietHours = z.infer<typeof QuietHours>;

const VAR_RE = /^[A-Za-z_][A-Za-z0-9_]{0,39}$/;
export const VariableName = z.string().regex(VAR_RE, "a variable name: letters, digits and _ (starting with a letter), e.g. name");
const Scalar = z.union([z.string().max(500), z.number()]);

/** A template variable: filled per recipient (RECIPIENT_VARIABLES) or fixed by `value`. */
export const Variable = z.strictObject({
  description: z.string().max(200).optional(),
  /** The value the compliance check renders with (defaults: value, fallback, the shipped sample data). */
  sample: Scalar.optional(),
  /** A fixed value, the same for every recipient (e.g. the livestream's time). */
  value: Scalar.optional(),
  /** Used when a recipient has no value (e.g. 您 for a contact without a name). */
  fallback: z.string().max(200).optional(),
});
export type Variable = z.infer<typeof Variable>;

function isWebUrl(s: string): boolean {
  try {
    const u = new URL(s);
    return (u.protocol === "https:" || u.protocol === "http:") && u.hostname.length > 0;
  } catch {
    return false;
  }
}
export const WebUrl = z.string().max(1000).refine(isWebUrl, "an http(s) address, e.g. https://example.cn/a/1");

/** A link card (文章 / 落地页 / 直播间): delivery sends it as WeCom's link attachment and tracks clicks. */
export const Link = z.strictObject({
  url: WebUrl,
  title: z.string().trim().min(1).max(64),
  desc: z.string().trim().max(120).optional(),
  picUrl: WebUrl.optional(),
  /** Reported by a click (article_read.articleId); default: the entry key. */
  articleId: z.string().max(100).optional(),
  /** Reported by a click (article_read.topic), e.g. 祛痘. */
  topic: z.string().max(50).optional(),
  /** For livestream invites: the live's id (livestream_attended.liveId). */
  liveId: z.string().max(100).optional(),
});
export type Link = z.infer<typeof Link>;

export const Image = z.strictObject({ url: WebUrl });
export type Image = z.infer<typeof Image>;

/** A mini-program card. WeCom wants the page path with a .html suffix; delivery uploads picUrl as the cover. */
export const MiniProgram = z.strictObject({
  appId: z.string().regex(/^wx[0-9a-f]{16}$/, "a mini-program AppID: wx followed by 16 hex digits"),
  page: z.string().max(200).regex(/^[^\s]+\.html(\?.*)?$/, "a page path ending in .html (WeCom's rule), e.g. pages/booking/index.html"),
  title: z.string().trim().min(1).max(64),
  picUrl: WebUrl.optional(),
});
export type MiniProgram = z.infer<typeof MiniProgram>;

/** A poll: the options a recipient replies with (e.g. 1 满意 …); a survey page goes in `link`. */
export const Poll = z.strictObject({
  options: z.array(z.string().trim().min(1).max(40)).min(2).max(11),
});
export type Poll = z.infer<typeof Poll>;

/** Per-recipient conditions, as segment expressions (src/domain/segments): e.g. skipIf: visit:复诊. */
export const Conditions = z.strictObject({
  /** Skip a contact who matches (e.g. already holds a tag). */
  skipIf: z.string().trim().min(1).max(2000).optional(),
  /** Send only to contacts who match. */
  onlyIf: z.string().trim().min(1).max(2000).optional(),
});
export type Conditions = z.infer<typeof Conditions>;

/** A staff member, by email or WeCom userid (resolved per tenant when the calendar is saved or published). */
export const StaffRef = z.string().trim().min(1).max(200);

export const EntryInput = z.strictObject({
  /** Unique within the calendar; keeps the entry (and its approved post) across edits. */
  key: Key,
  /** A label for people (the console, reports); not sent. */
  title: z.string().trim().max(100).optional(),
  when: When,
  kind: z.enum(ENTRY_KINDS),
  /** Default: group when the audience is group chats only, else single. */
  channel: z.enum(CHANNELS).optional(),
  /** A service message the patient asked for (aftercare, reminders): outside the marketing quota and opt-out, labelled. */
  service: z.boolean().optional(),
  /** Handlebars: {{name}}, {{#if nickname}}…{{else}}…{{/if}}. WeCom text is plain text. */
  template: z.string().min(1).max(4000),
  /** Variables of this entry only, besides the calendar's. */
  variables: z.record(VariableName, Variable).optional(),
  conditions: Conditions.optional(),
  /** 1:1 only: the staff member who sends it (default: the calendar's owner, else each contact's owner consultant). */
  owner: StaffRef.optional(),
  link: Link.optional(),
  image: Image.optional(),
  miniprogram: MiniProgram.optional(),
  poll: Poll.optional(),
});
export type EntryInput = z.infer<typeof EntryInput>;

export const EnrollmentTrigger = z.strictObject({
  /** A contact getting this tag (group:name). */
  tag: z.string().trim().min(1).max(200).optional(),
  /** A contact entering this segment expression. */
  segment: z.string().trim().min(1).max(2000).optional(),
  /** A consultation outcome. */
  outcome: z.enum(["converted", "lost"]).optional(),
  /** An event of this type (e.g. visit, appointment_booked). */
  event: z.string().trim().min(1).max(50).optional(),
  /** With event or outcome: only for this item (e.g. 光子嫩肤). */
  item: z.string().trim().min(1).max(200).optional(),
});

/**
 * Who receives the calendar. Dated calendars: `segment` (contacts, 1:1 entries) and/or `groups`
 * (customer group chats by WeCom group tag or chat id, group entries). Relative calendars:
 * `enrollment` (contacts enrolled through the API or by a trigger; `endOn` ends it early).
 */
export const Audience = z.strictObject({
  segment: z.string().trim().min(1).max(2000).optional(),
  groups: z
    .strictObject({
      tags: z.array(z.string().trim().min(1).max(64)).min(1).max(100).optional(),
      ids: z.array(z.string().trim().min(1).max(100)).min(1).max(1000).optional(),
    })
    .optional(),
  enrollment: z
    .strictObject({
      on: EnrollmentTrigger.optional(),
      endOn: z
        .strictObject({
          tag: z.string().trim().min(1).max(200).optional(),
          leaveSegment: z.boolean().optional(),
          outcome: z.enum(["converted", "lost"]).optional(),
        })
        .optional(),
    })
    .optional(),
});
export type Audience = z.infer<typeof Audience>;

/** A calendar as written (a file of content-calendars/ or an API body). */
export const CalendarInput = z.strictObject({
  name: z.string().trim().min(1).max(100),
  description: z.string().max(2000).optional(),
  timeZone: z.string().min(1).max(64).optional(),
  quietHours: QuietHours.optional(),
  /** Recurring dated entries (weekday, monthday, birthday) run from startDate to endDate (inclusive), when given. */
  startDate: LocalDate.optional(),
  endDate: LocalDate.optional(),
  audience: Audience,
  /** Default sender of 1:1 entries (email or WeCom userid). */
  owner: StaffRef.optional(),
  variables: z.record(VariableName, Variable).optional(),
  entries: z.array(EntryInput).min(1).max(500),
});
export type CalendarInput = z.infer<typeof CalendarInput>;

/** A normalised entry: channel decided, `service` set, every variable it may use declared here. */
export const CalendarEntry = EntryInput.extend({
  channel: z.enum(CHANNELS),
  service: z.boolean(),
  variables: z.record(VariableName, Variable),
});
export type CalendarEntry = z.infer<typeof CalendarEntry>;

/**
 * A validated, normalised calendar, as stored in calendars.definition and read by delivery:
 * defaults filled in (time zone, quiet hours), each entry with its channel and the variables it
 * may use (the calendar's merged with its own). parseCalendar returns it; re-parsing it gives it back.
 */
export const CalendarDefinition = CalendarInput.extend({
  timeZone: z.string().min(1).max(64),
  quietHours: QuietHours,
  variables: z.record(VariableName, Variable),
  entries: z.array(CalendarEntry).min(1).max(500),
});
export type CalendarDefinition = z.infer<typeof CalendarDefinition>;

/** dated: entries at dates, weekdays, monthdays or birthdays; relative: day N after enrollment. */
export type CalendarKind = "dated" | "relative";
