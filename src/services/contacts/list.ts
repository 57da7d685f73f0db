import { and, desc, eq, exists, getTableColumns, ilike, isNull, or, sql, type SQL } from "drizzle-orm";
import { z } from "zod";
import { contacts, contactTags, tagGroups, tags } from "../../db/schema/index";
import { ownsOnly } from "../../domain/auth/permissions";
import { normalizePhone } from "../../domain/pii/phone";
import { ValidationError, zodIssues } from "../../errors";
import { dbOf, requirePermission, type Ctx } from "../context";
import { cursorText, decodeCursor, encodeCursor, type Page } from "../pagination";
import { toContactView, type ContactView } from "./schemas";

export const ListContactsInput = z.object({
  /** A tag id, or `group:name` such as `visit:复诊`. */
  tag: z.string().min(1).max(200).optional(),
  /** A staff id, `me`, or `none` for unowned contacts. */
  owner: z.string().min(1).max(64).optional(),
  source: z.string().min(1).max(64).optional(),
  /** Name (contains), phone (exact) or external user id (exact). */
  q: z.string().trim().min(1).max(100).optional(),
  includeDeleted: z.enum(["true", "false"]).transform((v) => v === "true").optional(),
  cursor: z.string().max(500).optional(),
  limit: z.coerce.number().int().min(1).max(200).default(50),
});
export type ListContactsInput = z.infer<typeof ListContactsInput>;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** `where`: an extra condition over `contacts c` (a segment), for callers that checked their own permission. */
export async function listContacts({ ctx, input, where }: { ctx: Ctx; input: unknown; where?: SQL }): Promise<Page<ContactView>> {
  requirePermission(ctx, "contacts:read");
  const parsed = ListContactsInput.safeParse(input);
  if (!parsed.success) throw new ValidationError(zodIssues(parsed.error.issues));
  const v = parsed.data;
  const db = dbOf(ctx);
  const conds: SQL[] = [eq(contacts.tenantId, ctx.tenantId)];
  if (ctx.actor.kind === "staff" && ownsOnly(ctx.actor.role)) conds.push(eq(contacts.ownerStaffId, ctx.actor.staffId));
  if (!v.includeDeleted) conds.push(isNull(contacts.deletedAt));
  if (v.owner === "none") conds.push(isNull(contacts.ownerStaffId));
  else if (v.owner === "me") conds.push(eq(contacts.ownerStaffId, ctx.actor.kind === "staff" ? ctx.actor.staffId : "00000000-0000-0000-0000-000000000000"));
  else if (v.owner) {
    if (!UUID.test(v.owner)) throw new ValidationError([{ field: "owner", message: "must be a staff id, me or none" }]);
    conds.push(eq(contacts.ownerStaffId, v.owner));
  }
  if (v.source) conds.push(eq(contacts.source, v.source));
  if (v.tag) conds.push(tagCondition(ctx, v.tag));
  // Probed per listed contact (a page needs a few), not a semi-join over every contact of the tenant.
  if (where) conds.push(sql`exists (select 1 from contacts c where c.id = ${contacts.id} and c.tenant_id = ${ctx.tenantId} and ${where})`);
  if (v.q) {
    const phone = normalizePhone(v.q);
    const alts: SQL[] = [ilike(contacts.name, `%${v.q.replace(/[\\%_]/g, (c) => `\\${c}`)}%`), eq(contacts.externalUserId, v.q)];
    if (phone.ok && ctx.deps.pii) alts.push(eq(contacts.phoneHash, ctx.deps.pii.hash(phone.e164)));
    conds.push(or(...alts)!);
  }
  const cursor = decodeCursor(v.cursor);
  if (cursor) {
    conds.push(sql`(${contacts.createdAt}, ${contacts.id}) < (${cursor.at}::timestamptz, ${cursor.id}::uuid)`);
  }
  // created_at has microseconds; the cursor carries them as text (a JS Date would drop them and skip rows).
  const rows = await db
    .select({ ...getTableColumns(contacts), cursorAt: cursorText(contacts.createdAt) })
    .from(contacts)
    .where(and(...conds))
    .orderBy(desc(contacts.createdAt), desc(contacts.id))
    .limit(v.limit + 1);
  const more = rows.length > v.limit;
  const page = more ? rows.slice(0, v.limit) : rows;
  const last = page.at(-1);
  const role = ctx.actor.kind === "staff" ? ctx.actor.role : "system";
  return {
    items: page.map((r) => toContactView(r, role, ctx.deps.pii)),
    nextCursor: more && last ? encodeCursor(last.cursorAt, last.id) : null,
  };
}

function tagCondition(ctx: Ctx, tag: string): SQL {
  if (UUID.test(tag)) {
    return exists(
      sql`(select 1 from ${contactTags} where ${contactTags.contactId} = ${contacts.id} and ${contactTags.tenantId} = ${ctx.tenantId} and ${contactTags.tagId} = ${tag})`,
    );
  }
  const i = tag.indexOf(":");
  if (i <= 0 || i === tag.length - 1) throw new ValidationError([{ field: "tag", message: "must be a tag id or group:name, e.g. visit:复诊" }]);
  const group = tag.slice(0, i);
  const name = tag.slice(i + 1);
  return exists(
    sql`(select 1 from ${contactTags} join ${tags} on ${tags.id} = ${contactTags.tagId} join ${tagGroups} on ${tagGroups.id} = ${tags.groupId}
      where ${contactTags.contactId} = ${contacts.id} and ${contactTags.tenantId} = ${ctx.tenantId}
      and ${tagGroups.key} = ${group} and ${tags.name} = ${name})`,
  );
}
