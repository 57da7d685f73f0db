import { and, asc, eq } from "drizzle-orm";
import type { Tx } from "../../db/client";
import { contacts, contactTags, events, tagGroups, tagHistory, tags } from "../../db/schema/index";
import { evaluate, type EvalTrigger, type EventFact, type TagChange } from "../../domain/tagging/evaluate";
import type { Ctx } from "../context";
import { activeRules } from "./rule-set";

export interface AppliedRules {
  changes: TagChange[];
}

/**
 * Run the tag rules for one contact inside the caller's transaction and write the changes with
 * provenance (rule id and version, triggering event) and to tag history. The caller holds the
 * contact's row lock, so two events of one contact never race on its tags.
 */
/** The tenant's tag ids by "group\u0000name"; load once and pass it when applying rules to many contacts. */
export async function tenantTagIds(tx: Tx, tenantId: string): Promise<Map<string, string>> {
  const rows = await tx
    .select({ tagId: tags.id, group: tagGroups.key, name: tags.name })
    .from(tags)
    .innerJoin(tagGroups, eq(tagGroups.id, tags.groupId))
    .where(eq(tags.tenantId, tenantId));
  return new Map(rows.map((t) => [`${t.group}\u0000${t.name}`, t.tagId]));
}

export async function applyRulesToContact(tx: Tx, ctx: Ctx, contactId: string, trigger: EvalTrigger | EvalTrigger[], tagIds?: Map<string, string>): Promise<AppliedRules> {
  const triggers = Array.isArray(trigger) ? trigger : [trigger];
  const { ruleSet, version, exclusiveGroups } = await activeRules(tx, ctx.tenantId);
  const [contact] = await tx
    .select({ source: contacts.source, gender: contacts.gender, sourceState: contacts.sourceState })
    .from(contacts)
    .where(and(eq(contacts.tenantId, ctx.tenantId), eq(contacts.id, contactId)));
  if (!contact) return { changes: [] };
  const tagId = tagIds ?? (await tenantTagIds(tx, ctx.tenantId));
  const current = await tx
    .select({ group: tagGroups.key, name: tags.name })
    .from(contactTags)
    .innerJoin(tags, eq(tags.id, contactTags.tagId))
    .innerJoin(tagGroups, eq(tagGroups.id, tags.groupId))
    .where(and(eq(contactTags.tenantId, ctx.tenantId), eq(contactTags.contactId, contactId)));
  const currentTags: Record<string, string[]> = {};
  for (const t of current) (currentTags[t.group] ??= []).push(t.name);
  const history: EventFact[] = (
    await tx
      .select({ id: events.id, type: events.type, occurredAt: events.occurredAt, data: events.payload })
      .from(events)
      .where(and(eq(events.tenantId, ctx.tenantId), eq(events.contactId, contactId)))
      .orderBy(asc(events.occurredAt))
  ).map((e) => ({ ...e, data: e.data }));
  // Several events of one contact (a batch) run in order on the carried tags; only the net change
  // is written, each tag attributed to the last rule and event that set or removed it.
  const now = ctx.deps.now();
  let tagsNow = currentTags;
  const last = new Map<string, { ruleId: string; eventId: string | null }>();
  for (const tr of triggers) {
    const r = evaluate({ fields: contact, tags: tagsNow, events: history }, tr, now, ruleSet, exclusiveGroups);
    for (const c of r.changes) last.set(`${c.group}\u0000${c.tag}`, { ruleId: c.ruleId, eventId: tr.kind === "event" ? tr.event.id : null });
    tagsNow = r.tags;
  }
  const changes = netChanges(currentTags, tagsNow, last);
  for (const c of changes) {
    const eventId = c.eventId;
    const id = tagId.get(`${c.group}\u0000${c.tag}`);
    if (!id) continue; // a tag the tenant deleted: nothing to write
    if (c.action === "add") {
      await tx
        .insert(contactTags)
        .values({ tenantId: ctx.tenantId, contactId, tagId: id, source: "rule", ruleId: c.ruleId, ruleVersion: version, eventId })
        .onConflictDoNothing();
    } else {
      await tx.delete(contactTags).where(and(eq(contactTags.contactId, contactId), eq(contactTags.tagId, id)));
    }
    await tx.insert(tagHistory).values({ tenantId: ctx.tenantId, contactId, tagId: id, action: c.action, source: "rule", ruleId: c.ruleId, ruleVersion: version, eventId });
  }
  return { changes: changes.map(({ eventId: _e, ...c }) => c) };
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
