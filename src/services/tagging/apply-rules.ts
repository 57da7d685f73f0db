import { and, asc, eq, inArray, sql } from "drizzle-orm";
import type { Tx } from "../../db/client";
import { contacts, contactTags, events, tagGroups, tagHistory, tags } from "../../db/schema/index";
import { evaluate, type ContactFacts, type EvalTrigger, type EventFact, type TagChange } from "../../domain/tagging/evaluate";
import type { Ctx } from "../context";
import { activeRules } from "./rule-set";
import { raiseOpenLeads, signalLead } from "../leads/leads";
import { GRADE_GROUPS, regradeLeadsOf } from "../leads/regrade";
import { NotFoundError } from "../../errors";
import { enrollContact } from "../calendars/enrollment";

/** What the evaluator needs of one contact besides its tags; callers that already hold it pass it in. */
export interface ContactInputs {
  fields: ContactFacts["fields"];
  /** Every event of the contact, ascending by occurredAt. */
  history: EventFact[];
}

/** The tenant's tag ids by "group\u0000name"; load once and pass it when applying rules to many contacts. */
export async function tenantTagIds(tx: Tx, tenantId: string): Promise<Map<string, string>> {
  const rows = await tx
    .select({ tagId: tags.id, group: tagGroups.key, name: tags.name })
    .from(tags)
    .innerJoin(tagGroups, eq(tagGroups.id, tags.groupId))
    .where(eq(tags.tenantId, tenantId));
  return new Map(rows.map((t) => [`${t.group}\u0000${t.name}`, t.tagId]));
}

/** Fields and full event history of many contacts, in two queries. */
export async function loadContactInputs(tx: Tx, tenantId: string, contactIds: string[]): Promise<Map<string, ContactInputs>> {
  const out = new Map<string, ContactInputs>();
  if (!contactIds.length) return out;
  const rows = await tx
    .select({ id: contacts.id, source: contacts.source, gender: contacts.gender, sourceState: contacts.sourceState })
    .from(contacts)
    .where(and(eq(contacts.tenantId, tenantId), inArray(contacts.id, contactIds)));
  for (const r of rows) out.set(r.id, { fields: { source: r.source, gender: r.gender, sourceState: r.sourceState }, history: [] });
  for (const e of await loadHistories(tx, tenantId, contactIds)) out.get(e.contactId)?.history.push(e);
  return out;
}

/** Every event of the given contacts, ordered by contact and time (one index range scan per contact). */
export async function loadHistories(tx: Tx, tenantId: string, contactIds: string[]): Promise<(EventFact & { contactId: string })[]> {
  if (!contactIds.length) return [];
  return tx
    .select({ contactId: events.contactId, id: events.id, type: events.type, occurredAt: events.occurredAt, data: events.payload })
    .from(events)
    .where(and(eq(events.tenantId, tenantId), inArray(events.contactId, contactIds)))
    .orderBy(asc(events.contactId), asc(events.occurredAt));
}

/**
 * Run the tag rules for contacts inside the caller's transaction: each contact's triggers run in
 * order on its carried tags, and the net changes of all contacts are written with provenance (rule
 * id and version, triggering event) in three statements (removals, additions, history). The caller
 * holds the contacts' row locks, so two batches never race on one contact's tags. Returns the changes per contact (contacts without changes are absent).
 */
export async function applyRulesToContacts(
  tx: Tx,
  ctx: Ctx,
  items: { contactId: string; triggers: EvalTrigger[] }[],
  opts: { tagIds?: Map<string, string> | undefined; inputs?: Map<string, ContactInputs> } = {},
): Promise<Map<string, TagChange[]>> {
  const out = new Map<string, TagChange[]>();
  if (!items.length) return out;
  const { ruleSet, version, exclusiveGroups } = await activeRules(tx, ctx.tenantId);
  const contactIds = items.map((i) => i.contactId);
  const inputs = opts.inputs ?? (await loadContactInputs(tx, ctx.tenantId, contactIds));
  const tagId = opts.tagIds ?? (await tenantTagIds(tx, ctx.tenantId));
  const current = await tx
    .select({ contactId: contactTags.contactId, group: tagGroups.key, name: tags.name })
    .from(contactTags)
    .innerJoin(tags, eq(tags.id, contactTags.tagId))
    .innerJoin(tagGroups, eq(tagGroups.id, tags.groupId))
    .where(and(eq(contactTags.tenantId, ctx.tenantId), inArray(contactTags.contactId, contactIds)));
  const tagsOf = new Map<string, Record<string, string[]>>();
  for (const t of current) {
    let m = tagsOf.get(t.contactId);
    if (!m) tagsOf.set(t.contactId, (m = {}));
    (m[t.group] ??= []).push(t.name);
  }
  const now = ctx.deps.now();
  const adds: (typeof contactTags.$inferInsert)[] = [];
  const removes: { contactId: string; tagId: string }[] = [];
  const history: (typeof tagHistory.$inferInsert)[] = [];
  const leadSignals: LeadSignal[] = [];
  const enrolls: { contactId: string; ruleId: string; calendar: string; eventId: string }[] = [];
  for (const { contactId, triggers } of items) {
    const input = inputs.get(contactId);
    if (!input) continue; // no such contact (deleted row): nothing to tag
    const before = tagsOf.get(contactId) ?? {};
    // Several events of one contact run in order on the carried tags; only the net change is
    // written, each tag attributed to the last rule and event that set or removed it.
    let tagsNow = before;
    const last = new Map<string, { ruleId: string; eventId: string | null }>();
    for (const tr of triggers) {
      const r = evaluate({ fields: input.fields, tags: tagsNow, events: input.history }, tr, now, ruleSet, exclusiveGroups);
      for (const c of r.changes) last.set(`${c.group}\u0000${c.tag}`, { ruleId: c.ruleId, eventId: tr.kind === "event" ? tr.event.id : null });
      tagsNow = r.tags;
      for (const e of r.effects) {
        if (e.kind === "lead" && tr.kind === "event") leadSignals.push({ contactId, ruleId: e.ruleId, source: e.source, score: e.score, eventId: tr.event.id, eventType: tr.event.type });
        if (e.kind === "enroll" && tr.kind === "event") enrolls.push({ contactId, ruleId: e.ruleId, calendar: e.calendar, eventId: tr.event.id });
      }
    }
    const changes = netChanges(before, tagsNow, last);
    if (!changes.length) continue;
    out.set(
      contactId,
      changes.map(({ eventId: _e, ...c }) => c),
    );
    for (const c of changes) {
      const id = tagId.get(`${c.group}\u0000${c.tag}`);
      if (!id) continue; // a tag the tenant deleted: nothing to write
      if (c.action === "add") adds.push({ tenantId: ctx.tenantId, contactId, tagId: id, source: "rule", ruleId: c.ruleId, ruleVersion: version, eventId: c.eventId });
      else removes.push({ contactId, tagId: id });
      history.push({ tenantId: ctx.tenantId, contactId, tagId: id, action: c.action, source: "rule", ruleId: c.ruleId, ruleVersion: version, eventId: c.eventId });
    }
  }
  if (removes.length) {
    const pairs = sql.join(
      removes.map((r) => sql`(${r.contactId}::uuid, ${r.tagId}::uuid)`),
      sql`, `,
    );
    await tx.delete(contactTags).where(and(eq(contactTags.tenantId, ctx.tenantId), sql`(${contactTags.contactId}, ${contactTags.tagId}) in (${pairs})`));
  }
  if (adds.length) await tx.insert(contactTags).values(adds).onConflictDoNothing();
  if (history.length) await tx.insert(tagHistory).values(history);
  await openRuleLeads(tx, ctx, leadSignals, tagsOf, out);
  // `enroll` actions: into a relative calendar by its key, once while enrolled (events only, like leads).
  for (const e of enrolls) {
    const r = await enrollContact(tx, ctx, { calendar: { key: e.calendar }, contactId: e.contactId, source: "rule", sourceRef: `rule:${e.ruleId}:${e.eventId}`.slice(0, 200) });
    if (!r.enrolled && r.reason !== "already") ctx.logger.warn({ ruleId: e.ruleId, calendar: e.calendar, reason: r.reason }, "enroll action did nothing");
  }
  // Open leads follow the tags their grade reads (a signalled lead was just regraded).
  const signalled = new Set(leadSignals.map((s) => s.contactId));
  await regradeLeadsOf(tx, ctx, [...out].filter(([id, changes]) => !signalled.has(id) && changes.some((c) => GRADE_GROUPS.has(c.group))).map(([id]) => id));
  return out;
}

interface LeadSignal {
  contactId: string;
  ruleId: string;
  source: string;
  score: number | undefined;
  eventId: string;
  eventType: string;
}

/**
 * `lead` actions of rules that fired on events: open a lead for the contact (or raise its open
 * one), in the events' transaction, after the tags are written (the grade reads them). One signal
 * per contact and rule per batch. Contacts are already locked by the caller, so the lock order
 * (contacts, then the tenant's lead lock) holds. Leads come from events only: a backfill or the
 * nightly pass re-derives tags from history and opens no lead for the past.
 */
async function openRuleLeads(tx: Tx, ctx: Ctx, signals: LeadSignal[], tagsBefore: Map<string, Record<string, string[]>>, changes: Map<string, TagChange[]>): Promise<void> {
  const seen = new Set<string>();
  const inputs: { contactId: string; source: string; sourceRef: string; need?: string; score?: number }[] = [];
  for (const s of signals) {
    const key = `${s.contactId} ${s.ruleId}`;
    if (seen.has(key)) continue;
    seen.add(key);
    const needs = [...(tagsBefore.get(s.contactId)?.need ?? []), ...(changes.get(s.contactId) ?? []).filter((c) => c.group === "need" && c.action === "add").map((c) => c.tag)];
    inputs.push({ contactId: s.contactId, source: s.source, sourceRef: `rule:${s.ruleId}:${s.eventType}`.slice(0, 200), ...(needs.length ? { need: needs[needs.length - 1]! } : {}), ...(s.score !== undefined ? { score: s.score } : {}) });
  }
  // Contacts with an open lead (most signals, once a contact has one) are raised in bulk; the
  // others open a lead one by one (grading, routing under the tenant's lead lock).
  const raised = await raiseOpenLeads(tx, ctx, inputs, (contactId) => tagsAfter(tagsBefore.get(contactId) ?? {}, changes.get(contactId) ?? []));
  for (const input of inputs) {
    if (raised.has(input.contactId)) continue;
    try {
      await signalLead({ ctx: { ...ctx, tx }, input });
    } catch (err) {
      // A contact deleted by these very events opens no lead; anything else fails the batch (and is retried).
      if (!(err instanceof NotFoundError)) throw err;
    }
  }
}

/** A contact's tags after a batch: the tags before, with the batch's changes applied. */
function tagsAfter(before: Record<string, string[]>, changes: readonly TagChange[]): Record<string, string[]> {
  const out: Record<string, string[]> = Object.fromEntries(Object.entries(before).map(([g, t]) => [g, [...t]]));
  for (const c of changes) {
    const list = out[c.group] ?? [];
    out[c.group] = c.action === "add" ? (list.includes(c.tag) ? list : [...list, c.tag]) : list.filter((t) => t !== c.tag);
  }
  return out;
}

function netChanges(before: Record<string, string[]>, after: Record<string, string[]>, last: Map<string, { ruleId: string; eventId: string | null }>): (TagChange & { eventId: string | null })[] {
  const out: (TagChange & { eventId: string | null })[] = [];
  for (const g of new Set([...Object.keys(before), ...Object.keys(after)])) {
    const b = new Set(before[g] ?? []);
    const a = new Set(after[g] ?? []);
    const why = (t: string) => last.get(`${g}\u0000${t}`) ?? { ruleId: "?", eventId: null };
    for (const t of b) if (!a.has(t)) out.push({ action: "remove", group: g, tag: t, ...why(t) });
    for (const t of a) if (!b.has(t)) out.push({ action: "add", group: g, tag: t, ...why(t) });
  }
  return out;
}
