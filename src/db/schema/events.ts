import { sql } from "drizzle-orm";
import { index, integer, jsonb, pgTable, text, timestamp, uniqueIndex, uuid } from "drizzle-orm/pg-core";
import { contacts } from "./contacts";
import { tenants } from "./tenancy";

/**
 * The inbox of everything that happened to a contact. A row is written before the event is
 * acknowledged; processed_at marks that the events worker applied it.
 */
export const events = pgTable(
  "events",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    tenantId: uuid("tenant_id").notNull().references(() => tenants.id),
    contactId: uuid("contact_id").notNull().references(() => contacts.id),
    type: text("type").notNull(),
    occurredAt: timestamp("occurred_at", { withTimezone: true }).notNull(),
    receivedAt: timestamp("received_at", { withTimezone: true }).notNull().defaultNow(),
    /** api | import | wecom | console | system */
    source: text("source").notNull(),
    idempotencyKey: text("idempotency_key").notNull(),
    payload: jsonb("payload").$type<Record<string, unknown>>().notNull().default(sql`'{}'::jsonb`),
    processedAt: timestamp("processed_at", { withTimezone: true }),
    attempts: integer("attempts").notNull().default(0),
    lastError: text("last_error"),
  },
  (t) => [
    uniqueIndex("events_tenant_idempotency_uq").on(t.tenantId, t.idempotencyKey),
    index("events_tenant_contact_time_idx").on(t.tenantId, t.contactId, t.occurredAt),
    index("events_tenant_type_time_idx").on(t.tenantId, t.type, t.occurredAt),
    // The sweeper looks only at the unprocessed tail.
    index("events_unprocessed_idx").on(t.receivedAt).where(sql`processed_at is null`),
  ],
);
