import { Hono } from "hono";
import { can, ownsOnly, seesPii } from "../../domain/auth/permissions";
import { ValidationError } from "../../errors";
import { getContact } from "../../services/contacts/get";
import { listContacts } from "../../services/contacts/list";
import { contactTimeline } from "../../services/contacts/timeline";
import { listContactTags } from "../../services/tags/list-contact-tags";
import { listTags, type TagOption } from "../../services/tags/list-tags";
import type { AppEnv } from "../types";
import type { MessageKey } from "./i18n";
import { page, type Page } from "./kit";
import { timelineItems } from "./present";
import { withQuery } from "./views";

const PAGE_SIZE = 25;
const TIMELINE_SIZE = 30;

/** Contacts list (filters, cursor pages) and the contact page (profile, tags with reasons, timeline). */
export function contactPages(timeZone: string) {
  const app = new Hono<AppEnv>();

  app.get("/console/contacts", page(timeZone, "contacts:read", async (p) => {
    const q = p.c.req.query("q")?.trim() || undefined;
    const tag = p.c.req.query("tag")?.trim() || undefined;
    const cursor = p.c.req.query("cursor") || undefined;
    const own = ownsOnly(p.principal.role);
    const heading = p.t(own ? "contacts.title.own" : "contacts.title");
    const tagOptions = can(p.principal.role, "tags:read") ? await listTags({ ctx: p.ctx }) : [];
    const errors: Record<string, string> = {};
    let result: Awaited<ReturnType<typeof listContacts>> = { items: [], nextCursor: null };
    try {
      result = await listContacts({ ctx: p.ctx, input: { q, tag, cursor, limit: PAGE_SIZE } });
    } catch (err) {
      // A mistyped filter is the person's to fix next to the field; anything else is an error page.
      if (!(err instanceof ValidationError) || !err.issues.every((i) => i.field === "tag" || i.field === "q")) throw err;
      for (const i of err.issues) errors[i.field] = i.field === "tag" ? p.t("contacts.tagInvalid") : i.message;
    }
    const filtered = Boolean(q || tag);
    const known = tagOptions.some((o) => `${o.group}:${o.name}` === tag);
    const empty: MessageKey = filtered ? "contacts.empty.filtered" : own ? "contacts.empty.own" : can(p.principal.role, "contacts:import") ? "contacts.empty.import" : "contacts.empty.none";
    return p.html(
      "contacts",
      {
        heading,
        q,
        tagGroups: groupTags(tagOptions, tag),
        customTag: tag && !known ? tag : undefined,
        errors,
        filtered,
        masked: !seesPii(p.principal.role),
        items: result.items.map((x) => ({ id: x.id, name: x.name, phone: x.phone ?? "—", source: x.source, lastEventAt: p.fmt.dateTime(x.lastEventAt), createdAt: p.fmt.dateTime(x.createdAt) })),
        nextHref: result.nextCursor ? withQuery(p.url, { cursor: result.nextCursor }) : undefined,
        firstHref: cursor ? withQuery(p.url, { cursor: undefined }) : undefined,
        empty: p.t(empty),
      },
      { title: heading, section: "contacts" },
    );
  }));

  app.get("/console/contacts/:id", page(timeZone, "contacts:read", async (p) => {
    const id = p.c.req.param("id")!;
    const before = p.c.req.query("before") || undefined;
    // The contact first: another consultant's contact is a 404 before anything else is read.
    const contact = await getContact({ ctx: p.ctx, id });
    const [tags, timeline, tagOptions] = await Promise.all([
      can(p.principal.role, "tags:read") ? listContactTags({ ctx: p.ctx, contactId: id }) : Promise.resolve([]),
      can(p.principal.role, "events:read") ? contactTimeline({ ctx: p.ctx, contactId: id, input: { before, limit: TIMELINE_SIZE } }) : Promise.resolve({ items: [], nextBefore: null }),
      can(p.principal.role, "tags:read") ? listTags({ ctx: p.ctx }) : Promise.resolve([] as TagOption[]),
    ]);
    const groupNames = new Map(tagOptions.map((o) => [o.group, o.groupName]));
    const onPage = new Set(timeline.items.flatMap((e) => (e.kind === "event" ? [e.id] : [])));
    const name = contact.name ?? p.t("contacts.unnamed");
    const g = contact.gender;
    return p.html(
      "contact",
      {
        contact,
        profile: [
          { label: p.t("contact.phone"), value: contact.phone ?? "—" },
          { label: p.t("contact.gender"), value: g ? p.t(`contact.gender.${g}`) : "—" },
          { label: p.t("contact.source"), value: contact.source },
          { label: p.t("contact.state"), value: contact.sourceState ?? "—" },
          { label: p.t("contact.external"), value: contact.externalUserId ?? "—" },
          { label: p.t("contact.created"), value: p.fmt.dateTime(contact.createdAt) },
          { label: p.t("contact.lastEvent"), value: p.fmt.dateTime(contact.lastEventAt) },
          { label: p.t("contact.optOut"), value: contact.marketingOptOutAt ? p.t("contact.optOut.yes", { at: p.fmt.dateTime(contact.marketingOptOutAt) }) : p.t("contact.optOut.no") },
        ],
        tags: tags.map((x) => ({
          value: `${x.group}:${x.name}`,
          groupName: groupNames.get(x.group) ?? x.group,
          name: x.name,
          reason: reasonText(p, x.source, x.reason.ruleId, x.reason.ruleVersion),
          // The event behind the tag: a link to it when it is on this page of the timeline.
          eventHref: x.reason.eventId && onPage.has(x.reason.eventId) ? `#ev-${x.reason.eventId}` : undefined,
          eventShort: x.reason.eventId?.slice(0, 8),
          since: x.since,
          sinceText: p.fmt.dateTime(x.since),
        })),
        timeline: timelineItems(p.t, p.fmt, timeline.items, () => ""),
        timelineEmpty: p.t("contact.timeline.empty"),
        olderHref: timeline.nextBefore ? withQuery(p.url, { before: timeline.nextBefore }) : undefined,
        newestHref: before ? withQuery(p.url, { before: undefined }) : undefined,
      },
      { title: name, section: "contacts" },
    );
  }));

  return app;
}

function reasonText(p: Page, source: string, ruleId: string | null, version: number | null): string {
  if (source === "rule" && ruleId) return p.t("contact.reason.rule", { rule: ruleId, version: version ?? "?" });
  const key = `contact.reason.${source}` as MessageKey;
  return source === "manual" || source === "import" || source === "wecom" ? p.t(key) : source;
}

function groupTags(options: TagOption[], selected: string | undefined) {
  const groups = new Map<string, { label: string; tags: { value: string; name: string; selected: boolean }[] }>();
  for (const o of options) {
    const value = `${o.group}:${o.name}`;
    let g = groups.get(o.group);
    if (!g) groups.set(o.group, (g = { label: `${o.groupName}（${o.group}）`, tags: [] }));
    g.tags.push({ value, name: o.name, selected: value === selected });
  }
  return [...groups.values()];
}
