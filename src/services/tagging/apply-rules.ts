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
export async function applyRulesToContact(tx: Tx, ctx: Ctx, contactId: string, trigger: EvalTrigger): Promise<AppliedRules> {
  const { ruleSet, version, exclusiveGroups } = await activeRules(tx, ctx.tenantId);
  const [contact] = await tx
    .select({ source: contacts.source, gender: contacts.gender, sourceState: contacts.sourceState })
    .from(contacts)
    .where(and(eq(contacts.tenantId, ctx.tenantId), eq(contacts.id, contactId)));
  if (!contact) return { changes: [] };
  const tagRows = await tx
    .select({ tagId: tags.id, group: tagGroups.key, name: tags.name })
    .from(tags)
    .innerJoin(tagGroups, eq(tagGroups.id, tags.groupId))
    .where(eq(tags.tenantId, ctx.tenantId));
  const tagId = new Map(tagRows.map((t) => [`${t.group}\u0000${t.name}`, t.tagId]));
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
  const result = evaluate({ fields: contact, tags: currentTags, events: history }, trigger, ctx.deps.now(), ruleSet, exclusiveGroups);
  const eventId = trigger.kind === "event" ? trigger.event.id : null;
  for (const c of result.changes) {
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
  return { changes: result.changes };
}
