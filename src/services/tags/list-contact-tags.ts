import { and, asc, eq } from "drizzle-orm";
import { contactTags, tagGroups, tags } from "../../db/schema/index";
import { dbOf, requirePermission, type Ctx } from "../context";
import { loadVisibleContact } from "../contacts/internal";

export interface ContactTagView {
  group: string;
  name: string;
  since: string;
  source: string;
  reason: { ruleId: string | null; ruleVersion: number | null; eventId: string | null };
}

/** Current tags of a contact with why each is there. */
export async function listContactTags({ ctx, contactId }: { ctx: Ctx; contactId: string }): Promise<ContactTagView[]> {
  requirePermission(ctx, "tags:read");
  const db = dbOf(ctx);
  await loadVisibleContact(db, ctx, contactId);
  const rows = await db
    .select({
      group: tagGroups.key,
      name: tags.name,
      since: contactTags.addedAt,
      source: contactTags.source,
      ruleId: contactTags.ruleId,
      ruleVersion: contactTags.ruleVersion,
      eventId: contactTags.eventId,
    })
    .from(contactTags)
    .innerJoin(tags, eq(tags.id, contactTags.tagId))
    .innerJoin(tagGroups, eq(tagGroups.id, tags.groupId))
    .where(and(eq(contactTags.tenantId, ctx.tenantId), eq(contactTags.contactId, contactId)))
    .orderBy(asc(tagGroups.key), asc(tags.sortOrder), asc(tags.name));
  return rows.map((r) => ({
    group: r.group,
    name: r.name,
    since: r.since.toISOString(),
    source: r.source,
    reason: { ruleId: r.ruleId, ruleVersion: r.ruleVersion, eventId: r.eventId },
  }));
}
