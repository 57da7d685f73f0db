import { Hono } from "hono";
import { can } from "../../domain/auth/permissions";
import { analyzeTemplate, ENTRY_KINDS, MissingVariableError, RECIPIENT_VARIABLES, renderEntry, sampleValues, type CalendarDefinition, type CalendarEntry } from "../../domain/calendars/index";
import { WEEKDAY_NAMES } from "../../domain/calendars/schema";
import { entryWhen, whenTime } from "../../domain/calendars/when";
import { addDays, localParts } from "../../domain/delivery/schedule";
import { createCalendar, getCalendar, listCalendars, publishCalendar, updateCalendar, type CalendarView } from "../../services/calendars/calendars";
import { planCalendar } from "../../services/delivery/plan-entry";
import { previewCalendar } from "../../services/delivery/preview";
import { postDetail, postSummaries, type PostSummary } from "../../services/posts/review-desk";
import type { AppEnv } from "../types";
import { addMonths, isDate, isoWeekday, labelOr, monthLength, monthStart, occurrencesBetween, reasonText, refusal, reviewBadge, weekdayLabel, whenText, type FormState } from "./content-kit";
import { reviewPanel } from "./content-reviews";
import { errorPage, formOf, page, type Page, isUuid } from "./kit";
import { options } from "./present";
import { withQuery } from "./views";

const LIST_PAGE = 25;
const WHEN_KINDS = ["date", "weekday", "monthday", "birthday", "day", "before"] as const;
type WhenKind = (typeof WHEN_KINDS)[number];
const DATED_WHEN: WhenKind[] = ["date", "weekday", "monthday", "birthday"];
const RELATIVE_WHEN: WhenKind[] = ["day", "before"];
/** Which attachments each kind of entry carries (the others in the form are left out of what is saved). */
const KIND_ATTACHMENTS: Record<string, string[]> = { text: ["link"], interaction: ["link", "poll"], article: ["link"], livestream: ["link"], image: ["image"], miniprogram: ["miniprogram"], poll: ["poll", "link"] };

const definitionOf = (cal: CalendarView): CalendarDefinition => cal.definition as unknown as CalendarDefinition;

/** The form field of a calendar entry's issue path (`when.time`), or null for the whole form. */
function entryField(path: string): string | null {
  const rules: [RegExp, string][] = [
    [/^key$/, "key"],
    [/^title$/, "title"],
    [/^when\.time$/, "time"],
    [/^when\.date$/, "date"],
    [/^when\.weekday$/, "weekday"],
    [/^when\.monthday$/, "monthday"],
    [/^when\.daysBefore$/, "daysBefore"],
    [/^when\.day$/, "day"],
    [/^when\.minutesBefore$/, "minutesBefore"],
    [/^when(\..*)?$/, "whenKind"],
    [/^kind$/, "kind"],
    [/^channel$/, "channel"],
    [/^service$/, "service"],
    [/^(template|variables)(\..*)?$/, "template"],
    [/^conditions\.onlyIf$/, "onlyIf"],
    [/^conditions(\..*)?$/, "skipIf"],
    [/^owner$/, "owner"],
    [/^link\.title$/, "linkTitle"],
    [/^link\.desc$/, "linkDesc"],
    [/^link\.topic$/, "linkTopic"],
    [/^link(\..*)?$/, "linkUrl"],
    [/^image(\..*)?$/, "imageUrl"],
    [/^miniprogram\.page$/, "mpPage"],
    [/^miniprogram\.title$/, "mpTitle"],
    [/^miniprogram\.picUrl$/, "mpPicUrl"],
    [/^miniprogram(\..*)?$/, "mpAppId"],
    [/^poll(\..*)?$/, "pollOptions"],
  ];
  return rules.find(([re]) => re.test(path))?.[1] ?? null;
}

/** The form field of a calendar-level issue path, or null. */
function calendarField(path: string, ownerField = "calOwner"): string | null {
  const rules: [RegExp, string][] = [
    [/^key$/, "calKey"],
    [/^name$/, "name"],
    [/^description$/, "description"],
    [/^audience\.groups(\..*)?$/, "groupTags"],
    [/^audience(\..*)?$/, "segment"],
    [/^owner$/, ownerField],
    [/^quietHours\.end$/, "quietEnd"],
    [/^quietHours(\..*)?$/, "quietStart"],
    [/^startDate$/, "startDate"],
    [/^endDate$/, "endDate"],
    [/^timeZone$/, "timeZone"],
  ];
  return rules.find(([re]) => re.test(path))?.[1] ?? null;
}

/** Issues of entry `index` go to the entry's fields, the calendar's to its own (when the form has them), the rest to the whole form. */
function fieldOfIssue(index: number, calendarFields: boolean) {
  return (path: string): string | null => {
    const m = /^entries\[(\d+)\]\.?(.*)$/.exec(path);
    if (m) return Number(m[1]) === index ? entryField(m[2] || "when") : null;
    return calendarFields ? calendarField(path, "calOwner") : null;
  };
}

/** A number when the field reads as one (the schema refuses the rest, next to the field). */
const num = (s: string | undefined): number | string | undefined => {
  const v = (s ?? "").trim();
  if (!v) return undefined;
  return /^-?\d+$/.test(v) ? Number(v) : v;
};
const text = (s: string | undefined): string | undefined => {
  const v = (s ?? "").replace(/\r\n?/g, "\n").trim();
  return v || undefined;
};

/** The form's values of an entry as written. */
function entryValues(e: CalendarEntry): Record<string, string> {
  const w = e.when;
  const whenKind: WhenKind = w.date !== undefined ? "date" : w.weekday !== undefined ? "weekday" : w.monthday !== undefined ? "monthday" : w.birthday ? "birthday" : w.minutesBefore !== undefined ? "before" : "day";
  const weekday = w.weekday === undefined ? "" : String(typeof w.weekday === "number" ? w.weekday : (WEEKDAY_NAMES[w.weekday.toLowerCase()] ?? ""));
  return {
    key: e.key,
    title: e.title ?? "",
    whenKind,
    date: w.date ?? "",
    time: w.time ?? "",
    weekday,
    monthday: w.monthday === undefined ? "" : String(w.monthday),
    daysBefore: w.daysBefore === undefined ? "" : String(w.daysBefore),
    day: w.day === undefined ? "" : String(w.day),
    minutesBefore: w.minutesBefore === undefined ? "" : String(w.minutesBefore),
    kind: e.kind,
    channel: e.channel ?? "",
    service: e.service ? "on" : "",
    template: e.template,
    onlyIf: e.conditions?.onlyIf ?? "",
    skipIf: e.conditions?.skipIf ?? "",
    owner: e.owner ?? "",
    linkUrl: e.link?.url ?? "",
    linkTitle: e.link?.title ?? "",
    linkDesc: e.link?.desc ?? "",
    linkTopic: e.link?.topic ?? "",
    imageUrl: e.image?.url ?? "",
    mpAppId: e.miniprogram?.appId ?? "",
    mpPage: e.miniprogram?.page ?? "",
    mpTitle: e.miniprogram?.title ?? "",
    mpPicUrl: e.miniprogram?.picUrl ?? "",
    pollOptions: e.poll?.options.join("\n") ?? "",
  };
}

/**
 * An entry as the calendar schema reads it, from the form (over the entry as it was, so what the
 * form does not show, such as a link's articleId, stays). Variables the copy uses that delivery
 * fills per recipient ({{name}}, {{consultant}} …) are declared on the entry when the calendar does
 * not declare them; a name falls back to 您 for contacts without one.
 */
function entryFromForm(f: Record<string, string>, before: CalendarEntry | null, calendarVars: Record<string, unknown>): Record<string, unknown> {
  const whenKind = (WHEN_KINDS as readonly string[]).includes(f.whenKind ?? "") ? (f.whenKind as WhenKind) : undefined;
  const time = text(f.time);
  const weekday = num(f.weekday);
  const when: Record<string, unknown> =
    whenKind === "date"
      ? { date: text(f.date), time }
      : whenKind === "weekday"
        ? { weekday, time }
        : whenKind === "monthday"
          ? { monthday: num(f.monthday), time }
          : whenKind === "birthday"
            ? { birthday: true, daysBefore: num(f.daysBefore), time }
            : whenKind === "day"
              ? { day: num(f.day), time }
              : whenKind === "before"
                ? { minutesBefore: num(f.minutesBefore) }
                : {};
  for (const k of Object.keys(when)) if (when[k] === undefined) delete when[k];
  const kind = text(f.kind) ?? before?.kind ?? "text";
  const allowed = KIND_ATTACHMENTS[kind] ?? [];
  const template = (f.template ?? "").replace(/\r\n?/g, "\n");
  const variables: Record<string, unknown> = { ...(before?.variables ?? {}) };
  let used: string[] = [];
  try {
    used = analyzeTemplate(template).variables;
  } catch {
    used = [];
  }
  for (const v of used) {
    if (v in RECIPIENT_VARIABLES && !(v in variables) && !(v in calendarVars)) variables[v] = v === "name" || v === "nickname" ? { fallback: "您" } : {};
  }
  const linkUrl = text(f.linkUrl);
  const linkTitle = text(f.linkTitle);
  const link = allowed.includes("link") && (linkUrl || linkTitle) ? { ...(before?.link ?? {}), url: linkUrl, title: linkTitle, desc: text(f.linkDesc), topic: text(f.linkTopic) } : undefined;
  const mp = [f.mpAppId, f.mpPage, f.mpTitle].some((x) => text(x)) ? { appId: text(f.mpAppId), page: text(f.mpPage), title: text(f.mpTitle), picUrl: text(f.mpPicUrl) } : undefined;
  const pollOptions = (f.pollOptions ?? "").split(/\r?\n/).map((s) => s.trim()).filter(Boolean);
  const onlyIf = text(f.onlyIf);
  const skipIf = text(f.skipIf);
  const out: Record<string, unknown> = {
    key: before?.key ?? (f.key ?? "").trim(),
    title: text(f.title),
    when,
    kind,
    channel: text(f.channel),
    service: f.service === "on",
    template,
    variables,
    conditions: onlyIf || skipIf ? { onlyIf, skipIf } : undefined,
    owner: text(f.owner),
    link,
    image: allowed.includes("image") && text(f.imageUrl) ? { url: text(f.imageUrl) } : undefined,
    miniprogram: allowed.includes("miniprogram") ? mp : undefined,
    poll: allowed.includes("poll") && pollOptions.length ? { options: pollOptions } : undefined,
  };
  const clean = (o: Record<string, unknown>) => {
    for (const k of Object.keys(o)) {
      if (o[k] === undefined) delete o[k];
      else if (o[k] && typeof o[k] === "object" && !Array.isArray(o[k])) clean(o[k] as Record<string, unknown>);
    }
    return o;
  };
  return clean(out);
}

/** The audience of the new-calendar and settings forms: a segment of contacts and/or group chats by tag. */
function audienceFromForm(f: Record<string, string>): Record<string, unknown> {
  const segment = text(f.segment);
  const tags = (f.groupTags ?? "").split(/[,，、\n]/).map((s) => s.trim()).filter(Boolean);
  return { ...(segment ? { segment } : {}), ...(tags.length ? { groups: { tags } } : {}) };
}

/** Who a calendar reaches, in a line. */
function audienceText(p: Page, def: CalendarDefinition): string {
  const a = def.audience ?? {};
  const parts: string[] = [];
  if (a.segment) parts.push(p.t("cal.aud.segment", { expr: a.segment }));
  if (a.groups?.tags?.length) parts.push(p.t("cal.aud.groupTags", { tags: a.groups.tags.join("、") }));
  if (a.groups?.ids?.length) parts.push(p.t("cal.aud.groupIds", { n: a.groups.ids.length }));
  if (a.enrollment) {
    const on = a.enrollment.on;
    const trigger = on?.tag ? `tag ${on.tag}` : on?.segment ? on.segment : on?.outcome ? `outcome ${on.outcome}` : on?.event ? `${on.event}${on.item ? ` · ${on.item}` : ""}` : p.t("cal.aud.byHand");
    parts.push(p.t("cal.aud.enrollment", { trigger }));
  }
  return parts.join("；") || "—";
}

interface EntryModel {
  key: string;
  title: string;
  whenText: string;
  time: string;
  kind: string;
  channel: string;
  service: boolean;
  badge: { state: string; label: string };
  decision?: string | undefined;
  href: string;
}

/**
 * The content calendars: the list, a calendar in a week or month view with each entry's review
 * status, the entry form (edit, add, remove: the same calendar update as PUT /v1/calendars/{id}),
 * publishing, planning now, and the preview of who gets what when with the rendered copy.
 */
export function calendarPages(timeZone: string) {
  const app = new Hono<AppEnv>();

  app.get("/console/calendars", page(timeZone, "calendars:read", async (p) => {
    const status = (["draft", "published", "archived"] as const).find((s) => s === p.c.req.query("status"));
    const cursor = p.c.req.query("cursor") || undefined;
    const list = await listCalendars({ ctx: p.ctx, input: { status, limit: LIST_PAGE, cursor } });
    const base = new URL(p.url);
    return p.html(
      "cal-list",
      {
        canWrite: can(p.principal.role, "calendars:write"),
        chips: ([undefined, "draft", "published", "archived"] as const).map((s) => ({ label: s ? p.t(`cal.status.${s}`) : p.t("cal.status.all"), href: withQuery(base, { status: s, cursor: undefined }), current: status === s })),
        items: list.items.map((c) => {
          const def = definitionOf(c);
          return {
            id: c.id,
            name: c.name,
            key: c.key,
            kind: p.t(`cal.kind.${c.kind}`),
            status: c.status,
            statusLabel: p.t(`cal.status.${c.status}`),
            audience: audienceText(p, def),
            entries: def.entries?.length ?? 0,
            version: c.version,
            updated: p.fmt.dateTime(c.updatedAt),
          };
        }),
        filtered: Boolean(status),
        firstHref: cursor ? withQuery(base, { cursor: undefined }) : undefined,
        nextHref: list.nextCursor ? withQuery(base, { cursor: list.nextCursor }) : undefined,
      },
      { title: p.t("cal.list.title"), section: "calendars" },
    );
  }));

  // ---- A new calendar: its name, key and audience, and its first entry. ----

  const newPage = (p: Page, form: FormState = { values: { whenKind: "date", kind: "text", time: "10:00" }, errors: {} }, status = 200) =>
    p.html("cal-new", { form, entry: entryFormModel(p, form, { kinds: DATED_WHEN, isNew: true }) }, { title: p.t("cal.new.title"), section: "calendars", status });

  app.get("/console/calendars/new", page(timeZone, "calendars:write", (p) => newPage(p)));

  app.post("/console/calendars", page(timeZone, "calendars:write", async (p) => {
    const f = await formOf(p.c);
    const entry = entryFromForm(f, null, {});
    const input = { key: (f.calKey ?? "").trim(), name: (f.name ?? "").trim(), audience: audienceFromForm(f), entries: [entry] };
    let created: CalendarView;
    try {
      created = await createCalendar({ ctx: p.ctx, input });
    } catch (err) {
      const r = refusal(p, err, fieldOfIssue(0, true));
      if (!r) throw err;
      return newPage(p, { values: f, errors: r.errors, formError: r.formError }, r.status);
    }
    return p.c.redirect(`/console/calendars/${created.id}?done=created`, 303);
  }));

  // ---- A calendar: week or month view. ----

  app.get("/console/calendars/:id", page(timeZone, "calendars:read", async (p) => {
    const id = p.c.req.param("id");
    if (!isUuid(id)) return errorPage(p, 404);
    const cal = await getCalendar({ ctx: p.ctx, id });
    const def = definitionOf(cal);
    const tz = def.timeZone ?? timeZone;
    const today = localParts(p.ctx.deps.now(), tz).date;
    const view = p.c.req.query("view") === "month" ? "month" : "week";
    const askedDate = p.c.req.query("date");
    const date = isDate(askedDate) ? askedDate : today;
    const { entries, undated } = await entryModels(p, cal);

    // The days shown: a week from Monday, or the weeks covering the month.
    const from = view === "week" ? addDays(date, 1 - isoWeekday(date)) : addDays(monthStart(date), 1 - isoWeekday(monthStart(date)));
    const monthEnd = addDays(monthStart(date), monthLength(date) - 1);
    const to = view === "week" ? addDays(from, 6) : addDays(monthEnd, 7 - isoWeekday(monthEnd));
    const byDay = new Map<string, (EntryModel & { sort: string })[]>();
    for (const e of def.entries ?? []) {
      const m = entries.get(e.key)!;
      for (const d of occurrencesBetween(entryWhen(e), from, to, { startDate: def.startDate, endDate: def.endDate })) byDay.set(d, [...(byDay.get(d) ?? []), { ...m, sort: m.time }]);
    }
    const days: { date: string; label: string; weekday: string; today: boolean; outside: boolean; items: EntryModel[] }[] = [];
    for (let d = from; d <= to; d = addDays(d, 1)) {
      days.push({
        date: d,
        label: view === "month" ? String(Number(d.slice(8, 10))) : `${Number(d.slice(5, 7))}/${Number(d.slice(8, 10))}`,
        weekday: weekdayLabel(p.t, isoWeekday(d)),
        today: d === today,
        outside: view === "month" && d.slice(0, 7) !== date.slice(0, 7),
        items: (byDay.get(d) ?? []).sort((a, b) => (a.sort < b.sort ? -1 : a.sort > b.sort ? 1 : 0)),
      });
    }
    const weeks: (typeof days)[] = [];
    for (let i = 0; i < days.length; i += 7) weeks.push(days.slice(i, i + 7));
    const base = new URL(p.url);
    const step = (n: number) => (view === "week" ? addDays(date, 7 * n) : addMonths(date, n));
    const done = p.c.req.query("done");
    const flash = done === "planned" ? p.t("cal.done.planned", { n: p.c.req.query("n") ?? "0", ready: p.c.req.query("ready") ?? "0", waiting: p.c.req.query("waiting") ?? "0" }) : done && ["created", "removed", "published", "settings", "unchanged"].includes(done) ? p.t(`cal.done.${done}` as "cal.done.created", { version: cal.version }) : undefined;
    const canWrite = can(p.principal.role, "calendars:write") && cal.status !== "archived";
    return p.html(
      "cal",
      {
        cal: { id: cal.id, name: cal.name, key: cal.key, status: cal.status, statusLabel: p.t(`cal.status.${cal.status}`), version: cal.version, description: def.description },
        flash,
        facts: [
          { label: p.t("cal.fact.kind"), value: p.t(`cal.kind.${cal.kind}`) },
          { label: p.t("cal.fact.audience"), value: audienceText(p, def) },
          { label: p.t("cal.fact.timeZone"), value: tz },
          { label: p.t("cal.fact.quiet"), value: def.quietHours ? `${def.quietHours.start}–${def.quietHours.end}` : "—" },
          { label: p.t("cal.fact.dates"), value: def.startDate || def.endDate ? `${def.startDate ?? "…"} – ${def.endDate ?? "…"}` : "—" },
          { label: p.t("cal.fact.version"), value: cal.status === "draft" ? p.t("cal.fact.notPublished") : p.t("cal.fact.versionAt", { version: cal.version, at: p.fmt.dateTime(cal.publishedAt) }) },
          { label: p.t("cal.fact.source"), value: p.t(`cal.source.${cal.source}`) },
        ],
        canWrite,
        canPublish: canWrite && cal.status === "draft",
        canPlan: canWrite && cal.status === "published",
        publishedNote: canWrite && cal.status === "published",
        view,
        viewLinks: (["week", "month"] as const).map((v) => ({ label: p.t(`cal.view.${v}`), href: withQuery(base, { view: v, done: undefined, n: undefined, ready: undefined, waiting: undefined }), current: v === view })),
        range: view === "week" ? p.t("cal.range.week", { from, to }) : p.t("cal.range.month", { month: date.slice(0, 7) }),
        prevHref: withQuery(base, { date: step(-1), view, done: undefined, n: undefined, ready: undefined, waiting: undefined }),
        nextHref: withQuery(base, { date: step(1), view, done: undefined, n: undefined, ready: undefined, waiting: undefined }),
        todayHref: withQuery(base, { date: undefined, view, done: undefined, n: undefined, ready: undefined, waiting: undefined }),
        weekdays: [1, 2, 3, 4, 5, 6, 7].map((n) => weekdayLabel(p.t, n)),
        weeks,
        empty: days.every((d) => !d.items.length),
        entries: [...entries.values()],
        undated,
      },
      { title: cal.name, section: "calendars" },
    );
  }));

  /** Every entry of the calendar with its review state (the post's, with the latest decision for roles that read posts). */
  async function entryModels(p: Page, cal: CalendarView): Promise<{ entries: Map<string, EntryModel>; undated: EntryModel[] }> {
    const def = definitionOf(cal);
    const rows = new Map((cal.entries ?? []).filter((e) => !e.removedAt).map((e) => [e.key, e]));
    const summaries: Map<string, PostSummary> = can(p.principal.role, "posts:read")
      ? await postSummaries({ ctx: p.ctx, ids: [...rows.values()].map((r) => r.postId).filter((x): x is string => x !== null) })
      : new Map();
    const entries = new Map<string, EntryModel>();
    const undated: EntryModel[] = [];
    for (const e of def.entries ?? []) {
      const row = rows.get(e.key);
      const s = row?.postId ? summaries.get(row.postId) : undefined;
      const when = entryWhen(e);
      const last = s?.lastDecision;
      const m: EntryModel = {
        key: e.key,
        title: e.title ?? e.key,
        whenText: whenText(p.t, when),
        time: whenTime(when) ?? "",
        kind: labelOr(p.t, `cal.entryKind.${e.kind}`, e.kind),
        channel: p.t(`cal.channel.${e.channel}`),
        service: e.service,
        badge: reviewBadge(p.t, row ? (row.postStatus ?? "draft") : null, s ? { at: s.reviewLevel, of: s.levelsRequired } : undefined),
        decision: last && (s?.status === "rejected" || s?.status === "in_review") ? p.t("cal.lastDecision", { who: last.reviewerName ?? "—", decision: p.t(`review.decision.${last.decision}`), n: last.comments }) : undefined,
        href: `/console/calendars/${cal.id}/entries/${encodeURIComponent(e.key)}`,
      };
      entries.set(e.key, m);
      if (!["at", "weekday", "monthday"].includes(when.kind)) undated.push(m);
    }
    return { entries, undated };
  }

  // ---- Publish and plan. ----

  app.post("/console/calendars/:id/publish", page(timeZone, "calendars:write", async (p) => {
    const id = p.c.req.param("id");
    if (!isUuid(id)) return errorPage(p, 404);
    try {
      const r = await publishCalendar({ ctx: p.ctx, id });
      return p.c.redirect(`/console/calendars/${id}?done=${r.unchanged ? "unchanged" : "published"}`, 303);
    } catch (err) {
      const r = refusal(p, err, () => null);
      if (!r) throw err;
      return calendarMessage(p, id, r.formError ?? p.t("cal.formError"), r.status);
    }
  }));

  app.post("/console/calendars/:id/plan", page(timeZone, "calendars:write", async (p) => {
    const id = p.c.req.param("id");
    if (!isUuid(id)) return errorPage(p, 404);
    const out = await planCalendar({ ctx: p.ctx, id });
    const planned = out.reduce((n, o) => n + (o.outcome === "planned" ? o.planned : 0), 0);
    const ready = out.filter((o) => o.outcome === "planned").length;
    return p.c.redirect(`/console/calendars/${id}?done=planned&n=${planned}&ready=${ready}&waiting=${out.length - ready}`, 303);
  }));

  /** A calendar-wide refusal (publishing a calendar whose owner left): the calendar page would not show it, so a short page says it. */
  async function calendarMessage(p: Page, id: string, message: string, status: number) {
    const cal = await getCalendar({ ctx: p.ctx, id });
    return p.html("cal-message", { cal: { id: cal.id, name: cal.name }, message }, { title: cal.name, section: "calendars", status });
  }

  // ---- Calendar settings: name, audience, sender, quiet hours, dates. ----

  const settingsPage = async (p: Page, cal: CalendarView, form?: FormState, status = 200) => {
    const def = definitionOf(cal);
    const values = form?.values ?? {
      name: def.name,
      description: def.description ?? "",
      segment: def.audience?.segment ?? "",
      groupTags: def.audience?.groups?.tags?.join("、") ?? "",
      calOwner: def.owner ?? "",
      quietStart: def.quietHours?.start ?? "",
      quietEnd: def.quietHours?.end ?? "",
      startDate: def.startDate ?? "",
      endDate: def.endDate ?? "",
    };
    return p.html(
      "cal-settings",
      { cal: { id: cal.id, name: cal.name, relative: cal.kind === "relative", published: cal.status === "published" }, enrollment: cal.kind === "relative" ? audienceText(p, def) : undefined, form: { values, errors: form?.errors ?? {}, formError: form?.formError } },
      { title: p.t("cal.settings.title"), section: "calendars", status },
    );
  };

  const loadWritable = async (p: Page, id: string) => {
    const cal = await getCalendar({ ctx: p.ctx, id });
    return cal.status === "archived" ? null : cal;
  };

  /** The calendar (editable by this person) and the entry named in the path, or the 404 page. */
  const writableEntry = async (p: Page) => {
    const id = p.c.req.param("id");
    if (!id || !isUuid(id)) return errorPage(p, 404);
    const key = p.c.req.param("key")!;
    const cal = await loadWritable(p, id);
    if (!cal) return errorPage(p, 404);
    const def = definitionOf(cal);
    const index = def.entries.findIndex((e) => e.key === key);
    if (index < 0) return errorPage(p, 404);
    return { cal, def, key, index };
  };

  app.get("/console/calendars/:id/settings", page(timeZone, "calendars:write", async (p) => {
    const id = p.c.req.param("id");
    if (!isUuid(id)) return errorPage(p, 404);
    const cal = await loadWritable(p, id);
    return cal ? settingsPage(p, cal) : errorPage(p, 404);
  }));

  app.post("/console/calendars/:id/settings", page(timeZone, "calendars:write", async (p) => {
    const id = p.c.req.param("id");
    if (!isUuid(id)) return errorPage(p, 404);
    const cal = await loadWritable(p, id);
    if (!cal) return errorPage(p, 404);
    const f = await formOf(p.c);
    const def = definitionOf(cal);
    const quietStart = text(f.quietStart);
    const quietEnd = text(f.quietEnd);
    const next: Record<string, unknown> = {
      ...def,
      name: (f.name ?? "").trim(),
      description: text(f.description),
      audience: cal.kind === "relative" ? def.audience : audienceFromForm(f),
      owner: text(f.calOwner),
      quietHours: quietStart || quietEnd ? { start: quietStart, end: quietEnd } : undefined,
      startDate: text(f.startDate),
      endDate: text(f.endDate),
    };
    for (const k of Object.keys(next)) if (next[k] === undefined) delete next[k];
    try {
      await updateCalendar({ ctx: p.ctx, id, input: next });
    } catch (err) {
      const r = refusal(p, err, (path) => (/^entries\[/.test(path) ? null : calendarField(path)));
      if (!r) throw err;
      return settingsPage(p, cal, { values: f, errors: r.errors, formError: r.formError }, r.status);
    }
    return p.c.redirect(`/console/calendars/${id}?done=settings`, 303);
  }));

  // ---- Entries: view, edit, add, remove. ----

  function entryFormModel(p: Page, form: FormState, opts: { kinds: WhenKind[]; isNew: boolean }) {
    const v = form.values;
    return {
      ...form,
      isNew: opts.isNew,
      whenKinds: opts.kinds.map((k) => ({ value: k, label: p.t(`cal.whenKind.${k}`), checked: (v.whenKind ?? opts.kinds[0]) === k })),
      shows: Object.fromEntries(WHEN_KINDS.map((k) => [k, opts.kinds.includes(k)])),
      weekdays: [1, 2, 3, 4, 5, 6, 7].map((n) => ({ value: String(n), label: weekdayLabel(p.t, n), selected: v.weekday === String(n) })),
      kinds: options(ENTRY_KINDS, (k) => labelOr(p.t, `cal.entryKind.${k}`, k), v.kind ?? "text"),
      channels: [{ value: "", label: p.t("cal.channel.auto"), selected: !v.channel }, ...options(["single", "group"] as const, (c) => p.t(`cal.channel.${c}`), v.channel)],
      service: v.service === "on",
      variables: Object.keys(RECIPIENT_VARIABLES).map((n) => `{{${n}}}`).join(" "),
    };
  }

  const entryPage = async (p: Page, cal: CalendarView, key: string | null, form?: FormState, status = 200) => {
    const def = definitionOf(cal);
    const e = key ? def.entries.find((x) => x.key === key) : undefined;
    if (key && !e) return errorPage(p, 404);
    const canWrite = can(p.principal.role, "calendars:write") && cal.status !== "archived";
    const row = key ? cal.entries?.find((r) => r.key === key && !r.removedAt) : undefined;
    const panel = row?.postId && can(p.principal.role, "posts:read") ? reviewPanel(p, await postDetail({ ctx: p.ctx, id: row.postId })) : undefined;
    const values = form?.values ?? (e ? entryValues(e) : { whenKind: cal.kind === "relative" ? "day" : "date", kind: "text", time: "10:00" });
    const kinds = cal.kind === "relative" ? RELATIVE_WHEN : DATED_WHEN;
    const done = p.c.req.query("done");
    return p.html(
      "cal-entry",
      {
        cal: { id: cal.id, name: cal.name, published: cal.status === "published" },
        entry: e ? { key: e.key, title: e.title ?? e.key, whenText: whenText(p.t, entryWhen(e)), kind: labelOr(p.t, `cal.entryKind.${e.kind}`, e.kind), channel: p.t(`cal.channel.${e.channel}`), service: e.service, template: e.template } : undefined,
        badge: panel?.badge ?? reviewBadge(p.t, row ? (row.postStatus ?? "draft") : null),
        flash: done === "saved" ? p.t("cal.done.entrySaved") : done === "added" ? p.t("cal.done.added") : undefined,
        canWrite,
        action: key ? `/console/calendars/${cal.id}/entries/${encodeURIComponent(key)}` : `/console/calendars/${cal.id}/entries`,
        deleteAction: key && canWrite ? `/console/calendars/${cal.id}/entries/${encodeURIComponent(key)}/delete` : undefined,
        form: canWrite ? entryFormModel(p, { values, errors: form?.errors ?? {}, formError: form?.formError }, { kinds, isNew: !key }) : undefined,
        panel,
        noPost: Boolean(e) && !row?.postId,
        rejected: canWrite && row?.postStatus === "rejected",
        previewHref: key ? `/console/calendars/${cal.id}/preview?entry=${encodeURIComponent(key)}#copy` : undefined,
      },
      { title: e ? (e.title ?? e.key) : p.t("cal.entry.new"), section: "calendars", status },
    );
  };

  app.get("/console/calendars/:id/add", page(timeZone, "calendars:write", async (p) => {
    const id = p.c.req.param("id");
    if (!isUuid(id)) return errorPage(p, 404);
    const cal = await loadWritable(p, id);
    return cal ? entryPage(p, cal, null) : errorPage(p, 404);
  }));

  app.get("/console/calendars/:id/entries/:key", page(timeZone, "calendars:read", async (p) => {
    const id = p.c.req.param("id");
    if (!isUuid(id)) return errorPage(p, 404);
    const cal = await getCalendar({ ctx: p.ctx, id });
    return entryPage(p, cal, p.c.req.param("key")!);
  }));

  /** Save the calendar with its entries changed by `change` (the same update as PUT /v1/calendars/{id}); refusals go back to the entry form. */
  const saveEntries = async (p: Page, cal: CalendarView, key: string | null, f: Record<string, string>, change: (entries: Record<string, unknown>[]) => { entries: Record<string, unknown>[]; index: number }, done: string) => {
    const def = definitionOf(cal);
    const { entries, index } = change(def.entries as unknown as Record<string, unknown>[]);
    try {
      await updateCalendar({ ctx: p.ctx, id: cal.id, input: { ...def, entries } });
    } catch (err) {
      const r = refusal(p, err, fieldOfIssue(index, false));
      if (!r) throw err;
      return entryPage(p, cal, key, { values: f, errors: r.errors, formError: r.formError }, r.status);
    }
    const savedKey = key ?? String(entries[index]?.key ?? "");
    return p.c.redirect(done === "removed" ? `/console/calendars/${cal.id}?done=removed` : `/console/calendars/${cal.id}/entries/${encodeURIComponent(savedKey)}?done=${done}`, 303);
  };

  app.post("/console/calendars/:id/entries", page(timeZone, "calendars:write", async (p) => {
    const id = p.c.req.param("id");
    if (!isUuid(id)) return errorPage(p, 404);
    const cal = await loadWritable(p, id);
    if (!cal) return errorPage(p, 404);
    const f = await formOf(p.c);
    const entry = entryFromForm(f, null, definitionOf(cal).variables ?? {});
    return saveEntries(p, cal, null, f, (entries) => ({ entries: [...entries, entry], index: entries.length }), "added");
  }));

  app.post("/console/calendars/:id/entries/:key", page(timeZone, "calendars:write", async (p) => {
    const found = await writableEntry(p);
    if (found instanceof Response) return found;
    const { cal, def, key, index } = found;
    const f = await formOf(p.c);
    const entry = entryFromForm(f, def.entries[index]!, def.variables ?? {});
    return saveEntries(p, cal, key, f, (entries) => ({ entries: entries.map((e, i) => (i === index ? entry : e)), index }), "saved");
  }));

  app.post("/console/calendars/:id/entries/:key/delete", page(timeZone, "calendars:write", async (p) => {
    const found = await writableEntry(p);
    if (found instanceof Response) return found;
    const { cal, def, key, index } = found;
    const f = entryValues(def.entries[index]!);
    return saveEntries(p, cal, key, f, (entries) => ({ entries: entries.filter((_, i) => i !== index), index: -1 }), "removed");
  }));

  // ---- Preview: who gets what when, and the copy a sample contact gets. ----

  app.get("/console/calendars/:id/preview", page(timeZone, "calendars:read", async (p) => {
    const id = p.c.req.param("id");
    if (!isUuid(id)) return errorPage(p, 404);
    const cal = await getCalendar({ ctx: p.ctx, id });
    const def = definitionOf(cal);
    const preview = await previewCalendar({ ctx: p.ctx, id, input: { sample: 20 } });
    const byKey = new Map(def.entries.map((e) => [e.key, e]));
    const chosenKey = byKey.has(p.c.req.query("entry") ?? "") ? p.c.req.query("entry")! : (preview.entries[0]?.key ?? def.entries[0]?.key);
    const chosen = chosenKey ? byKey.get(chosenKey) : undefined;
    const chosenPreview = preview.entries.find((e) => e.key === chosenKey);
    const recipients = (chosenPreview?.sample ?? []).filter((s) => s.contactId || s.chatId);
    const contactId = p.c.req.query("contact");
    const recipient = recipients.find((s) => (s.contactId ?? s.chatId) === contactId) ?? recipients.find((s) => s.status === "planned") ?? recipients[0];
    let copy: { text?: string; error?: string } = {};
    if (chosen) {
      const vars: Record<string, unknown> = { ...sampleValues(chosen) };
      if (recipient) {
        if (recipient.senderName) vars.consultant = recipient.senderName;
        if (chosen.channel === "single") {
          vars.name = recipient.contactName ?? "";
          vars.nickname = recipient.contactName ?? "";
        }
      }
      try {
        copy = { text: renderEntry(chosen, vars) };
      } catch (err) {
        if (!(err instanceof MissingVariableError)) throw err;
        copy = { error: p.t("cal.preview.missing", { variable: err.variable }) };
      }
    }
    const who = (s: { contactName: string | null; chatId: string | null }) => s.contactName ?? (s.chatId ? p.t("cal.preview.chat", { id: s.chatId.slice(0, 10) }) : p.t("cal.preview.unnamed"));
    return p.html(
      "cal-preview",
      {
        cal: { id: cal.id, name: cal.name, status: p.t(`cal.status.${cal.status}`) },
        timeZone: preview.timeZone,
        quiet: `${preview.quietHours.start}–${preview.quietHours.end}`,
        totals: preview.totals,
        conflicts: preview.conflicts.map((c) => ({ entry: byKey.get(c.entry)?.title ?? c.entry, kind: labelOr(p.t, `cal.conflict.${c.kind}`, c.kind), n: c.n, detail: c.detail })),
        entries: preview.entries.map((e) => {
          const d = byKey.get(e.key);
          return {
            key: e.key,
            title: d?.title ?? e.key,
            when: d ? whenText(p.t, entryWhen(d)) : "—",
            channel: p.t(`cal.channel.${e.channel}`),
            service: e.service,
            badge: reviewBadge(p.t, e.postStatus),
            stats: e.stats,
            first: p.fmt.dateTime(e.stats.firstAt),
            last: p.fmt.dateTime(e.stats.lastAt),
            reasons: e.stats.reasons.map((r) => ({ ...reasonText(p.t, r.reason), n: r.n })),
            sample: e.sample.map((s) => ({
              who: who(s),
              sender: s.senderName ?? "—",
              at: p.fmt.dateTime(s.scheduledAt),
              status: s.status,
              statusLabel: labelOr(p.t, `sends.status.${s.status}`, s.status),
              reason: s.reason ? reasonText(p.t, s.reason) : s.moved ? { label: p.t(s.moved === "late" ? "cal.conflict.late" : "cal.conflict.quiet_hours"), detail: s.moved } : undefined,
            })),
          };
        }),
        copy: chosen
          ? {
              entryOptions: def.entries.map((e) => ({ value: e.key, label: e.title ?? e.key, selected: e.key === chosenKey })),
              recipientOptions: recipients.map((s) => ({ value: s.contactId ?? s.chatId, label: `${who(s)}${s.senderName ? ` · ${s.senderName}` : ""}`, selected: s === recipient })),
              recipient: recipient ? who(recipient) : undefined,
              sender: recipient?.senderName ?? undefined,
              at: recipient ? p.fmt.dateTime(recipient.scheduledAt) : undefined,
              text: copy.text,
              error: copy.error,
              attachments: attachmentLines(p, chosen),
            }
          : undefined,
      },
      { title: p.t("cal.preview.title"), section: "calendars" },
    );
  }));

  return app;
}

/** The attachments of an entry, for the preview: a link card, an image, a mini-program, poll options. */
function attachmentLines(p: Page, e: CalendarEntry): string[] {
  const out: string[] = [];
  if (e.link) out.push(p.t("cal.preview.link", { title: e.link.title, url: e.link.url }));
  if (e.image) out.push(p.t("cal.preview.image", { url: e.image.url }));
  if (e.miniprogram) out.push(p.t("cal.preview.mp", { title: e.miniprogram.title }));
  if (e.poll) out.push(p.t("cal.preview.poll", { options: e.poll.options.join(" / ") }));
  return out;
}

