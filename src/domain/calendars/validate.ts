import { z } from "zod";
import { EVENT_TYPES } from "../events/types";
import { parseSegment, SegmentSyntaxError } from "../segments/parse";
import {
  CalendarInput,
  EntryInput,
  DEFAULT_QUIET_HOURS,
  DEFAULT_TIME_ZONE,
  RECIPIENT_VARIABLES,
  type CalendarDefinition,
  type CalendarEntry,
  type CalendarKind,
  type Variable,
} from "./schema";
import { analyzeTemplate, renderTemplate } from "./template";
import { entryWhen, inQuietHours, whenTime, WHEN_KEYS, type EntryWhen } from "./when";
import { attachmentSummary, sampleValues } from "./render";

/**
 * A problem in a calendar: the file (null for an API body), the entry key (null for the calendar
 * itself), the field path (`entries[3].template`, as in API errors) and what is wrong. Errors stop
 * a lint, a save and a publish; warnings are printed and shown, nothing more.
 */
export interface CalendarIssue {
  file: string | null;
  entry: string | null;
  path: string;
  message: string;
  level: "error" | "warning";
  /** 1-based line in the file, when the loader could place it. */
  line?: number;
}

export interface ParsedCalendar {
  /** The normalised definition; null when there are errors. */
  calendar: CalendarDefinition | null;
  kind: CalendarKind | null;
  issues: CalendarIssue[];
}

export interface ParseOptions {
  /** Entries dated before now get a warning (lint). */
  now?: Date;
}

/** `a.b[2].c` from a zod path (the format API errors use). */
export function formatIssuePath(path: readonly PropertyKey[]): string {
  let out = "";
  for (const p of path) {
    if (typeof p === "number") out += `[${p}]`;
    else out += out ? `.${String(p)}` : String(p);
  }
  return out || "(calendar)";
}

/** The inverse of formatIssuePath (for placing an issue on a line of the YAML). */
export function issuePathParts(path: string): (string | number)[] {
  if (path === "(calendar)") return [];
  const out: (string | number)[] = [];
  for (const m of path.matchAll(/([^.[\]]+)|\[(\d+)\]/g)) out.push(m[2] !== undefined ? Number(m[2]) : m[1]!);
  return out;
}

/** One line per issue: `file:line: entry: field: level: message`. */
export function formatCalendarIssue(i: CalendarIssue): string {
  const where = i.file ? `${i.file}${i.line ? `:${i.line}` : ""}: ` : "";
  return `${where}${i.entry ?? "(calendar)"}: ${i.path}: ${i.level}: ${i.message}`;
}

const utf8Bytes = (s: string) => Buffer.byteLength(s, "utf8");

function validTimeZone(tz: string): boolean {
  try {
    new Intl.DateTimeFormat("en-US", { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

/** Local "YYYY-MM-DDTHH:MM" of an instant in a time zone. */
function localNow(now: Date, tz: string): string {
  const parts = Object.fromEntries(new Intl.DateTimeFormat("en-CA", { timeZone: tz, year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", hourCycle: "h23" }).formatToParts(now).map((p) => [p.type, p.value]));
  return `${parts.year}-${parts.month}-${parts.day}T${parts.hour}:${parts.minute}`;
}

function segmentProblem(expr: string): string | null {
  try {
    parseSegment(expr);
    return null;
  } catch (err) {
    if (err instanceof SegmentSyntaxError) return `is not a valid segment expression: ${err.message}`;
    throw err;
  }
}

/** The calendar's own fields; entries are shaped one by one. */
const CalendarShape = CalendarInput.extend({ entries: z.array(z.unknown()).min(1, "a calendar has at least one entry").max(500) });

const TAG_RE = /^[a-z0-9][a-z0-9_-]*:\S+$/;

/** Which attachment fields each kind requires and allows. */
const KIND_RULES: Record<EntryInput["kind"], { requires: (keyof EntryInput)[][]; allows: (keyof EntryInput)[] }> = {
  text: { requires: [], allows: ["link"] },
  interaction: { requires: [], allows: ["link", "poll"] },
  article: { requires: [["link"]], allows: ["link"] },
  livestream: { requires: [["link"]], allows: ["link"] },
  image: { requires: [["image"]], allows: ["image"] },
  miniprogram: { requires: [["miniprogram"]], allows: ["miniprogram"] },
  poll: { requires: [["poll", "link"]], allows: ["poll", "link"] },
};
const ATTACHMENTS = ["link", "image", "miniprogram", "poll"] as const;

/**
 * Validate a calendar (a parsed YAML document or an API body) and normalise it: defaults filled
 * in, each entry's channel decided and its variables merged with the calendar's. Every problem is
 * returned (nothing throws), each naming the entry and field. `file` is only copied into issues.
 */
export function parseCalendar(raw: unknown, file: string | null = null, opts: ParseOptions = {}): ParsedCalendar {
  const issues: CalendarIssue[] = [];
  const rawEntries = (raw as { entries?: unknown })?.entries;
  const keyAt = (i: number): string | null => {
    const k = Array.isArray(rawEntries) ? (rawEntries[i] as { key?: unknown } | undefined)?.key : undefined;
    return typeof k === "string" && k ? k : `#${i + 1}`;
  };
  const add = (path: readonly PropertyKey[], message: string, level: CalendarIssue["level"] = "error") => {
    const entry = path[0] === "entries" && typeof path[1] === "number" ? keyAt(path[1]) : null;
    issues.push({ file, entry, path: formatIssuePath(path), message, level });
  };

  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) {
    add([], "a calendar is a mapping with name, audience and entries");
    return { calendar: null, kind: null, issues };
  }
  // A template kept in its own file is a loader feature; the API takes templates inline.
  if (Array.isArray(rawEntries)) {
    rawEntries.forEach((e, i) => {
      if (e && typeof e === "object" && "templateFile" in e) add(["entries", i, "templateFile"], "templateFile works in calendar files only (the loader reads it); send the template inline");
    });
    if (issues.length) return { calendar: null, kind: null, issues };
  }
  // Shapes first: the calendar's own fields, then each entry on its own, so one bad entry does not
  // hide the problems of the others.
  const zodIssuesAt = (list: readonly z.core.$ZodIssue[], prefix: PropertyKey[]) => {
    for (const i of list) {
      if (i.code === "unrecognized_keys") for (const k of i.keys) add([...prefix, ...i.path, k], "is not a field here (a typo?)");
      else add([...prefix, ...i.path], zodMessage(i));
    }
  };
  const top = CalendarShape.safeParse(raw, { reportInput: true });
  if (!top.success) zodIssuesAt(top.error.issues, []);
  const shaped = (Array.isArray(rawEntries) ? rawEntries : []).map((e, i) => {
    const r = EntryInput.safeParse(e, { reportInput: true });
    if (!r.success) zodIssuesAt(r.error.issues, ["entries", i]);
    return r.success ? r.data : null;
  });
  if (!top.success) return { calendar: null, kind: null, issues };
  const input = { ...top.data, entries: shaped };
  const timeZone = input.timeZone ?? DEFAULT_TIME_ZONE;
  if (!validTimeZone(timeZone)) add(["timeZone"], `"${timeZone}" is not an IANA time zone, e.g. Asia/Shanghai`);
  const quietHours = input.quietHours ?? { ...DEFAULT_QUIET_HOURS };
  if (input.startDate && input.endDate && input.endDate < input.startDate) add(["endDate"], "is before startDate");

  // Audience.
  const aud = input.audience;
  if (!aud.segment && !aud.groups && !aud.enrollment) add(["audience"], "names no one: give segment (contacts), groups (customer group chats) or enrollment (a relative calendar)");
  if (aud.enrollment && (aud.segment || aud.groups)) add(["audience", "enrollment"], "a relative calendar reaches the contacts enrolled in it: drop segment and groups (an enrollment trigger may use a segment: enrollment.on.segment)");
  if (aud.segment) {
    const p = segmentProblem(aud.segment);
    if (p) add(["audience", "segment"], p);
  }
  if (aud.groups && !aud.groups.tags && !aud.groups.ids) add(["audience", "groups"], "give tags (WeCom customer-group tags) or ids (chat ids)");
  const on = aud.enrollment?.on;
  if (on) {
    const triggers = (["tag", "segment", "outcome", "event"] as const).filter((k) => on[k] !== undefined);
    if (triggers.length !== 1) add(["audience", "enrollment", "on"], "give exactly one trigger: tag, segment, outcome or event");
    if (on.tag && !TAG_RE.test(on.tag)) add(["audience", "enrollment", "on", "tag"], "a tag is written group:name, e.g. visit:首诊");
    if (on.segment) {
      const p = segmentProblem(on.segment);
      if (p) add(["audience", "enrollment", "on", "segment"], p);
    }
    if (on.event && !(EVENT_TYPES as readonly string[]).includes(on.event)) add(["audience", "enrollment", "on", "event"], `is not an event type (${EVENT_TYPES.join(", ")})`);
    if (on.item && !on.event && !on.outcome) add(["audience", "enrollment", "on", "item"], "goes with event or outcome");
  }
  const endTag = aud.enrollment?.endOn?.tag;
  if (endTag && !TAG_RE.test(endTag)) add(["audience", "enrollment", "endOn", "tag"], "a tag is written group:name, e.g. visit:复诊");
  if (aud.enrollment?.endOn?.leaveSegment && !on?.segment) add(["audience", "enrollment", "endOn", "leaveSegment"], "needs enrollment.on.segment (the segment to leave)");

  // Calendar-level variables.
  const declaredProblem = (name: string, v: Variable): string | null =>
    v.value === undefined && !(name in RECIPIENT_VARIABLES) ? `is filled by nobody: give it a value, or use one delivery fills per recipient (${Object.keys(RECIPIENT_VARIABLES).join(", ")})` : null;
  const calendarVars = input.variables ?? {};
  for (const [name, v] of Object.entries(calendarVars)) {
    const p = declaredProblem(name, v);
    if (p) add(["variables", name], p);
  }

  // Entries.
  const kindOf = (w: EntryWhen): CalendarKind => (w.kind === "relative" || w.kind === "before" ? "relative" : "dated");
  let calendarKind: CalendarKind | null = null;
  const seen = new Map<string, number>();
  const sameDay = new Map<string, string>();
  const now = opts.now ? localNow(opts.now, validTimeZone(timeZone) ? timeZone : DEFAULT_TIME_ZONE) : null;
  const entries: CalendarEntry[] = [];
  input.entries.forEach((e, i) => {
    if (!e) return;
    const at = (...rest: PropertyKey[]) => ["entries", i, ...rest];
    const before = issues.filter((x) => x.level === "error").length;
    const first = seen.get(e.key);
    if (first !== undefined) add(at("key"), `is used twice (also entries[${first}]): keys are unique within a calendar`);
    else seen.set(e.key, i);

    // when: exactly one kind, the same kind of calendar throughout.
    const given = WHEN_KEYS.filter((k) => e.when[k] !== undefined);
    let when: EntryWhen | null = null;
    if (given.length !== 1) add(at("when"), given.length ? `gives ${given.join(" and ")}: give exactly one of date, weekday, monthday, birthday, day or minutesBefore` : "gives no date, weekday, monthday, birthday (true), day (N after enrollment) or minutesBefore");
    else if (e.when.minutesBefore === undefined && e.when.time === undefined) add(at("when", "time"), 'is required: the local time of day, e.g. "10:00"');
    else if (e.when.minutesBefore !== undefined && e.when.time !== undefined) add(at("when", "time"), "does not go with minutesBefore (that entry goes out exactly so many minutes before the appointment)");
    else {
      when = entryWhen(e);
      if (e.when.daysBefore !== undefined && when.kind !== "birthday") add(at("when", "daysBefore"), "goes with birthday: true");
      const k = kindOf(when);
      if (calendarKind === null) calendarKind = k;
      else if (k !== calendarKind) add(at("when"), calendarKind === "dated" ? "day N after enrollment belongs in a relative calendar; this one is dated (its first entry has a date, weekday, monthday or birthday)" : "this calendar is relative (day N after enrollment): every entry gives day, not a date, weekday, monthday or birthday");
      const time = whenTime(when);
      const service = e.service ?? false;
      if (when.kind === "before" && !service) add(at("when", "minutesBefore"), "is for service reminders (service: true): its time follows the appointment, not the quiet hours", "warning");
      if (time !== null && inQuietHours(time, quietHours)) {
        add(at("when", "time"), `${time} falls in the quiet hours ${quietHours.start}-${quietHours.end}${service ? " (a service message: delivery holds it until they end)" : ": nothing is sent then"}`, service ? "warning" : "error");
      }
      if (when.kind === "at") {
        if (now && when.at < now) add(at("when", "date"), `${when.at.replace("T", " ")} has passed (now ${now.replace("T", " ")} in ${timeZone})`, "warning");
        const date = when.at.slice(0, 10);
        if ((input.startDate && date < input.startDate) || (input.endDate && date > input.endDate)) add(at("when", "date"), `is outside the calendar's dates ${input.startDate ?? "…"} to ${input.endDate ?? "…"}`, "warning");
      }
    }

    // Channel from the audience.
    const reachesContacts = Boolean(aud.segment || aud.enrollment);
    const reachesGroups = Boolean(aud.groups);
    let channel = e.channel;
    if (!channel) {
      if (reachesGroups && reachesContacts) add(at("channel"), "the audience has contacts and group chats: say single (1:1) or group");
      channel = reachesGroups && !reachesContacts ? "group" : "single";
    } else if (channel === "group" && !reachesGroups) add(at("channel"), "is group, but the audience names no group chats (audience.groups)");
    else if (channel === "single" && !reachesContacts) add(at("channel"), "is single (1:1), but the audience names no contacts (audience.segment or enrollment)");
    const service = e.service ?? false;
    if (channel === "group") {
      if (service) add(at("service"), "service messages go 1:1 to the patient who asked for them; a group chat message is marketing");
      if (e.conditions) add(at("conditions"), "apply to contacts: a group entry goes to whole chats");
      if (e.owner) add(at("owner"), "group messages are sent by each chat's owner; owner is for 1:1 entries");
    }
    for (const c of ["skipIf", "onlyIf"] as const) {
      const expr = e.conditions?.[c];
      if (expr) {
        const p = segmentProblem(expr);
        if (p) add(at("conditions", c), p);
      }
    }

    // Attachments by kind.
    const rules = KIND_RULES[e.kind];
    for (const req of rules.requires) if (!req.some((f) => e[f] !== undefined)) add(at(req[0]!), `${/^[aeiou]/.test(e.kind) ? "an" : "a"} ${e.kind} entry needs ${req.join(" or ")}`);
    for (const f of ATTACHMENTS) if (e[f] !== undefined && !rules.allows.includes(f)) add(at(f), `does not go with kind ${e.kind}`);
    if (e.link) {
      if (utf8Bytes(e.link.title) > 128) add(at("link", "title"), "is over WeCom's 128 bytes (about 42 Chinese characters)");
      if (e.link.desc && utf8Bytes(e.link.desc) > 512) add(at("link", "desc"), "is over WeCom's 512 bytes");
    }
    if (e.miniprogram && utf8Bytes(e.miniprogram.title) > 64) add(at("miniprogram", "title"), "is over WeCom's 64 bytes (about 21 Chinese characters)");

    // Variables: the entry's own, then the template's use of them.
    const own = e.variables ?? {};
    for (const [name, v] of Object.entries(own)) {
      const p = declaredProblem(name, v);
      if (p) add(at("variables", name), p);
    }
    const variables: Record<string, Variable> = { ...calendarVars, ...own };
    const t = analyzeTemplate(e.template);
    for (const p of t.problems) add(at("template"), p.message);
    for (const v of t.variables) {
      if (!(v in variables)) add(at("template"), `uses {{${v}}}, which is not declared: add it to the calendar's or the entry's variables`);
      else if (v === "link" && !e.link) add(at("template"), "uses {{link}}, but the entry has no link (link.url)");
      else if (channel === "group" && (v === "name" || v === "nickname") && variables[v]?.value === undefined) add(at("template"), `uses {{${v}}}, but a group chat message has no single recipient to take it from`);
    }
    if (utf8Bytes(e.template) > 4000) add(at("template"), "is over WeCom's 4000 bytes for a text message");

    const entry: CalendarEntry = { ...e, channel, service, variables };
    const errorsNow = issues.filter((x) => x.level === "error").length;
    if (errorsNow === before && when) {
      // Render with the samples: what the compliance check reads, and a last check that it renders.
      try {
        const text = renderTemplate(e.template, sampleValues(entry), "text");
        if (utf8Bytes(text) > 4000) add(at("template"), "is over WeCom's 4000 bytes once rendered with the samples", "warning");
      } catch (err) {
        add(at("template"), `does not render with the samples: ${(err as Error).message.split("\n")[0]}`);
      }
      const summary = attachmentSummary(entry);
      if (summary && summary.length > 200) add(at(ATTACHMENTS.find((f) => e[f] !== undefined) ?? "link"), "is too long to review as one line (over 200 characters with title, description and address): shorten it");
      if (entry.channel === "single" || entry.channel === "group") {
        const slot = `${entry.channel}|${when.kind === "at" ? when.at.slice(0, 10) : `${when.kind}:${"weekday" in when ? when.weekday : "day" in when ? when.day : "minutes" in when ? when.minutes : when.daysBefore}`}`;
        const other = sameDay.get(slot);
        if (other && !service) add(at("when"), `is on the same day as entry ${other}: WeCom lets a customer or group get about one mass message a day (status 3 when over)`, "warning");
        else if (!service) sameDay.set(slot, e.key);
      }
    }
    entries.push(entry);
  });

  if (calendarKind === "relative" && !aud.enrollment) add(["audience"], "a relative calendar (day N after enrollment) needs audience.enrollment");
  if (calendarKind === "dated" && aud.enrollment) add(["audience", "enrollment"], "a dated calendar does not enroll: use segment or groups (or give entries day N)");
  if (calendarKind === "dated" && input.entries.every((e) => e?.when.date !== undefined) && (input.startDate || input.endDate)) {
    // Only recurring entries use the dates; harmless, but say so.
    add(["startDate"], "only weekday, monthday and birthday entries use startDate and endDate", "warning");
  }

  if (issues.some((i) => i.level === "error")) return { calendar: null, kind: calendarKind, issues };
  const calendar: CalendarDefinition = { ...input, timeZone, quietHours, variables: calendarVars, entries };
  return { calendar, kind: calendarKind, issues };
}

/** zod 4's messages, said the way the rest of the issues are. */
function zodMessage(i: z.core.$ZodIssue): string {
  if (i.code === "invalid_type" && i.input === undefined) return "is required";
  return i.message;
}
