import { bigserial, index, jsonb, pgTable, text, timestamp, uuid } from "drizzle-orm/pg-core";
import { staff, tenants } from "./tenancy";

/** Who did what to which record, written in the same transaction as the change. */
export const auditLog = pgTable(
  "audit_log",
  {
    id: bigserial("id", { mode: "number" }).primaryKey(),
    tenantId: uuid("tenant_id").notNull().references(() => tenants.id),
    actorStaffId: uuid("actor_staff_id").references(() => staff.id),
    /** staff | system */
    actorKind: text("actor_kind").notNull(),
    /** e.g. contact.create, staff.update, token.revoke */
    action: text("action").notNull(),
    entityType: text("entity_type").notNull(),
    entityId: text("entity_id").notNull(),
    before: jsonb("before").$type<Record<string, unknown> | null>(),
    after: jsonb("after").$type<Record<string, unknown> | null>(),
    requestId: text("request_id"),
    at: timestamp("at", { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [
    index("audit_tenant_at_idx").on(t.tenantId, t.at),
    index("audit_tenant_entity_idx").on(t.tenantId, t.entityType, t.entityId),
  ],
);
