import { z } from "zod";
import { tagGroups, tags, tenants } from "../../db/schema/index";
import { DEFAULT_TAG_GROUPS } from "../../domain/tagging/default-groups";
import { ConflictError, isUniqueViolation, ValidationError, zodIssues } from "../../errors";
import type { ServiceDeps } from "../context";
import { seedDefaultSopTemplate } from "../leads/sop";
import { seedDefaultAlertRules } from "../alerts/rules";

export const CreateTenantInput = z.object({
  slug: z.string().regex(/^[a-z0-9][a-z0-9-]{1,62}$/, "lowercase letters, digits and dashes"),
  name: z.string().trim().min(1).max(100),
  timezone: z.string().min(1).max(64).optional(),
});
export type CreateTenantInput = z.infer<typeof CreateTenantInput>;

/** A new tenant with the default tag groups, follow-up SOP and anomaly alert rules. System operation (tenants are provisioned, not self-served). */
export async function createTenant({ deps, input }: { deps: ServiceDeps; input: unknown }): Promise<typeof tenants.$inferSelect> {
  const p = CreateTenantInput.safeParse(input);
  if (!p.success) throw new ValidationError(zodIssues(p.error.issues));
  const timezone = p.data.timezone ?? deps.config.TIMEZONE;
  try {
    Intl.DateTimeFormat("en", { timeZone: timezone });
  } catch {
    throw new ValidationError([{ field: "timezone", message: "is not an IANA time zone such as Asia/Shanghai" }]);
  }
  try {
    return await deps.db.transaction(async (tx) => {
      const [t] = await tx.insert(tenants).values({ slug: p.data.slug, name: p.data.name, timezone }).returning();
      for (const g of DEFAULT_TAG_GROUPS) {
        const [group] = await tx.insert(tagGroups).values({ tenantId: t!.id, key: g.key, name: g.name, exclusive: g.exclusive }).returning();
        await tx.insert(tags).values(g.tags.map((name, i) => ({ tenantId: t!.id, groupId: group!.id, name, sortOrder: i })));
      }
      await seedDefaultSopTemplate(tx, t!.id);
      await seedDefaultAlertRules(tx, t!.id);
      return t!;
    });
  } catch (err) {
    if (isUniqueViolation(err)) throw new ConflictError("a tenant with this slug exists", [{ field: "slug", message: "already used" }]);
    throw err;
  }
}
