import { and, eq, isNotNull, isNull } from "drizzle-orm";
import { contactFollows, contacts, contactTags, tagGroups, tags } from "../../db/schema/index";
import { WecomError } from "../../wecom/api/errors";
import type { ServiceDeps } from "../context";
import { loadWecomApp } from "./settings";

/**
 * Bring a contact's tags in Siyu's own groups (visit, spending, need, engagement …) to WeCom, for
 * every consultant the contact is a friend of: one mark_tag per relation with all additions and
 * removals together. Queued a few seconds after a tag change, so a burst of changes is one push.
 */
export async function pushContactTags({ deps, tenantId, contactId }: { deps: ServiceDeps; tenantId: string; contactId: string }): Promise<{ relations: number; added: number; removed: number }> {
  const out = { relations: 0, added: 0, removed: 0 };
  const app = await loadWecomApp(deps, tenantId);
  if (!app) return out;
  const [contact] = await deps.db.select({ ext: contacts.externalUserId }).from(contacts).where(and(eq(contacts.tenantId, tenantId), eq(contacts.id, contactId)));
  if (!contact?.ext) return out;
  const managed = await deps.db
    .select({ id: tags.id, wecomTagId: tags.wecomTagId, key: tagGroups.key })
    .from(tags)
    .innerJoin(tagGroups, eq(tagGroups.id, tags.groupId))
    .where(and(eq(tags.tenantId, tenantId), isNotNull(tags.wecomTagId)));
  const ours = managed.filter((t) => !t.key.startsWith("wecom_"));
  if (!ours.length) return out; // tags not linked to WeCom yet: `siyu wecom sync` creates them
  const oursRemote = new Set(ours.map((t) => t.wecomTagId!));
  const want = new Set(
    (await deps.db.select({ tagId: contactTags.tagId }).from(contactTags).where(and(eq(contactTags.tenantId, tenantId), eq(contactTags.contactId, contactId))))
      .map((r) => ours.find((t) => t.id === r.tagId)?.wecomTagId)
      .filter((x): x is string => Boolean(x)),
  );
  const follows = await deps.db.select({ userId: contactFollows.userId }).from(contactFollows).where(and(eq(contactFollows.contactId, contactId), isNull(contactFollows.removedAt)));
  if (!follows.length) return out;
  const client = deps.wecomClient(app);
  let detail;
  try {
    detail = await client.getExternalContact(contact.ext);
  } catch (err) {
    if (err instanceof WecomError && (err.errcode === 40096 || err.errcode === 84061)) return out;
    throw err;
  }
  for (const f of detail.follow_user) {
    if (!follows.some((x) => x.userId === f.userid.toLowerCase())) continue;
    const have = new Set((f.tags ?? []).flatMap((t) => (t.tag_id && oursRemote.has(t.tag_id) ? [t.tag_id] : [])));
    const addTag = [...want].filter((x) => !have.has(x));
    const removeTag = [...have].filter((x) => !want.has(x));
    if (!addTag.length && !removeTag.length) continue;
    await client.markTag({ userId: f.userid, externalUserId: contact.ext, addTag, removeTag });
    out.relations++;
    out.added += addTag.length;
    out.removed += removeTag.length;
  }
  return out;
}
