import { date, integer, pgTable, primaryKey, text, timestamp, uniqueIndex, uuid } from "drizzle-orm/pg-core";
import { staff, tenants } from "./tenancy";

/** A dynamic segment: an expression over tags and facts, evaluated live (never a stored member list). */
export const segments = pgTable(
  "segments",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    tenantId: uuid("tenant_id").notNull().references(() => tenants.id),
    name: text("name").notNull(),
    expression: text("expression").notNull(),
    createdByStaffId: uuid("created_by_staff_id").references(() => staff.id),
    createdAt: timestamp("created_at", { withTimezone: true }).notNull().defaultNow(),
    updatedAt: timestamp("updated_at", { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [uniqueIndex("segments_tenant_name_uq").on(t.tenantId, t.name)],
);

/** Daily segment sizes, for trends. */
export const segmentSnapshots = pgTable(
  "segment_snapshots",
  {
    tenantId: uuid("tenant_id").notNull().references(() => tenants.id),
    segmentId: uuid("segment_id").notNull().references(() => segments.id),
    day: date("day").notNull(),
    size: integer("size").notNull(),
    takenAt: timestamp("taken_at", { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [primaryKey({ columns: [t.segmentId, t.day] })],
);
