import { and, asc, eq } from "drizzle-orm";
import { tagGroups, tags } from "../../db/schema/index";
import { dbOf, requirePermission, type Ctx } from "../context";

export interface TagOption {
  /** The group's key (`visit`), as filters spell it: `group:name`. */
  group: string;
  groupName: string;
  name: string;
}

/** Every tag of the tenant by group, for filters and pickers (the console's contact filter). */
export async function listTags({ ctx }: { ctx: Ctx }): Promise<TagOption[]> {
  requirePermission(ctx, "tags:read");
  return dbOf(ctx)
    .select({ group: tagGroups.key, groupName: tagGroups.name, name: tags.name })
    .from(tags)
    .innerJoin(tagGroups, and(eq(tagGroups.id, tags.groupId), eq(tagGroups.tenantId, ctx.tenantId)))
    .where(eq(tags.tenantId, ctx.tenantId))
    .orderBy(asc(tagGroups.key), asc(tags.sortOrder), asc(tags.name));
}
