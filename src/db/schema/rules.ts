import { index, integer, jsonb, pgTable, primaryKey, text, timestamp, uuid } from "drizzle-orm/pg-core";
import { staff, tenants } from "./tenancy";

/**
 * Versions of a tenant's tag rule set (params, need dictionary, rules). Exactly one is published
 * at a time; at most one draft; older published versions are archived and can be rolled back to.
 */
export const tagRuleSets = pgTable(
  "tag_rule_sets",
  {
    tenantId: uuid("tenant_id").notNull().references(() => tenants.id),
    version: integer("version").notNull(),
    /** draft | published | archived */
    status: text("status").notNull(),
    definition: jsonb("definition").$type<{ params: Record<string, number>; needs: Record<string, string[]>; rules: unknown[] }>().notNull(),
    note: text("note"),
    createdByStaffId: uuid("created_by_staff_id").references(() => staff.id),
    createdAt: timestamp("created_at", { withTimezone: true }).notNull().defaultNow(),
    publishedAt: timestamp("published_at", { withTimezone: true }),
  },
  (t) => [primaryKey({ columns: [t.tenantId, t.version] }), index("tag_rule_sets_tenant_status_idx").on(t.tenantId, t.status)],
);
