import { sql } from "drizzle-orm";
import { check, foreignKey, index, integer, jsonb, pgTable, text, timestamp, uniqueIndex, uuid } from "drizzle-orm/pg-core";
import { contacts } from "./contacts";
import { clinics, staff, tenants } from "./tenancy";

export const LEAD_STATUSES = ["open", "converted", "lost"] as const;
export const LEAD_GRADES = ["A", "B", "C", "D"] as const;

/**
 * A sales opportunity on a contact. Invariants the database holds, not just the code:
 * - one open lead per contact (partial unique index);
 * - an open lead's owner is the contact's owner: (contact_id, active_owner_staff_id) references
 *   contacts (id, owner_staff_id), checked at commit, so no lead is owned by a consultant who does
 *   not own the contact (no 撞单) and a contact never has two owners through two leads;
 * - active_owner_staff_id is set only while the lead is open (NULL: in the pool, 公海).
 * owner_staff_id stays the consultant of record after the lead closes (scorecards).
 */
export const leads = pgTable(
  "leads",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    tenantId: uuid("tenant_id").notNull().references(() => tenants.id),
    contactId: uuid("contact_id").notNull(),
    clinicId: uuid("clinic_id").references(() => clinics.id),
    status: text("status", { enum: LEAD_STATUSES }).notNull().default("open"),
    /** Where the first signal came from: rule, api, import, wecom_qr, pool, ... */
    source: text("source").notNull(),
    /** The rule id, channel id or import batch behind the source. */
    sourceRef: text("source_ref"),
    /** The need type the lead is about (skill match), when known. */
    need: text("need"),
    /** Sum of the signals' scores (a repeat signal raises it). */
    signalScore: integer("signal_score").notNull().default(0),
    signals: integer("signals").notNull().default(1),
    lastSignalAt: timestamp("last_signal_at", { withTimezone: true }).notNull().defaultNow(),
    /** Grading score (0-100) and grade, recomputed when their inputs change. */
    score: integer("score").notNull().default(0),
    grade: text("grade", { enum: LEAD_GRADES }).notNull().default("D"),
    ownerStaffId: uuid("owner_staff_id").references(() => staff.id),
    activeOwnerStaffId: uuid("active_owner_staff_id"),
    assignedAt: timestamp("assigned_at", { withTimezone: true }),
    /** First-contact deadline of the current owner (SLA), and when contact happened. */
    firstContactDueAt: timestamp("first_contact_due_at", { withTimezone: true }),
    firstContactedAt: timestamp("first_contacted_at", { withTimezone: true }),
    closedAt: timestamp("closed_at", { withTimezone: true }),
    closedReason: text("closed_reason"),
    createdAt: timestamp("created_at", { withTimezone: true }).notNull().defaultNow(),
    updatedAt: timestamp("updated_at", { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [
    uniqueIndex("leads_one_open_per_contact_uq").on(t.tenantId, t.contactId).where(sql`${t.status} = 'open'`),
    index("leads_tenant_owner_idx").on(t.tenantId, t.activeOwnerStaffId, t.grade),
    index("leads_tenant_pool_idx").on(t.tenantId, t.createdAt).where(sql`${t.status} = 'open' and ${t.activeOwnerStaffId} is null`),
    index("leads_tenant_created_idx").on(t.tenantId, t.createdAt, t.id),
    check("leads_active_owner_open", sql`${t.activeOwnerStaffId} is null or (${t.status} = 'open' and ${t.activeOwnerStaffId} = ${t.ownerStaffId})`),
    foreignKey({ name: "leads_contact_owner_fk", columns: [t.contactId, t.activeOwnerStaffId], foreignColumns: [contacts.id, contacts.ownerStaffId] }),
  ],
);

/** Every change of a lead's owner (or to and from the pool), with who did it and why. */
export const leadAssignments = pgTable(
  "lead_assignments",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    tenantId: uuid("tenant_id").notNull().references(() => tenants.id),
    leadId: uuid("lead_id").notNull().references(() => leads.id),
    contactId: uuid("contact_id").notNull(),
    fromStaffId: uuid("from_staff_id").references(() => staff.id),
    /** NULL: to the pool. */
    toStaffId: uuid("to_staff_id").references(() => staff.id),
    /** assign (by strategy), direct (the contact added this consultant), claim (from the pool), reassign, reclaim (SLA), release, resign. */
    kind: text("kind").notNull(),
    /** The strategy step that chose the consultant (assign), e.g. skill, round_robin. */
    strategy: text("strategy"),
    reason: text("reason"),
    actorStaffId: uuid("actor_staff_id").references(() => staff.id),
    at: timestamp("at", { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [index("lead_assignments_lead_idx").on(t.leadId, t.at), index("lead_assignments_tenant_to_idx").on(t.tenantId, t.toStaffId, t.kind, t.at)],
);

/** Grade changes: from, to, the score and what it was made of. */
export const leadGradeChanges = pgTable(
  "lead_grade_changes",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    tenantId: uuid("tenant_id").notNull().references(() => tenants.id),
    leadId: uuid("lead_id").notNull().references(() => leads.id),
    fromGrade: text("from_grade"),
    toGrade: text("to_grade").notNull(),
    score: integer("score").notNull(),
    parts: jsonb("parts").$type<Record<string, number>>().notNull(),
    at: timestamp("at", { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [index("lead_grade_changes_lead_idx").on(t.leadId, t.at)],
);

/**
 * Lead settings per tenant (clinic_id NULL) and per clinic: grading weights and thresholds, the
 * assignment chain, pool claim cap, SLAs. A clinic without its own row uses the tenant's.
 */
export const leadSettings = pgTable(
  "lead_settings",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    tenantId: uuid("tenant_id").notNull().references(() => tenants.id),
    clinicId: uuid("clinic_id").references(() => clinics.id),
    config: jsonb("config").$type<Record<string, unknown>>().notNull(),
    updatedAt: timestamp("updated_at", { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [uniqueIndex("lead_settings_scope_uq").on(t.tenantId, sql`coalesce(${t.clinicId}, '00000000-0000-0000-0000-000000000000'::uuid)`)],
);

/** Round-robin and weighted turns per consultant within a scope (tenant or clinic), for fair shares. */
export const leadTurns = pgTable(
  "lead_turns",
  {
    tenantId: uuid("tenant_id").notNull().references(() => tenants.id),
    /** "tenant" or the clinic id. */
    scope: text("scope").notNull(),
    staffId: uuid("staff_id").notNull().references(() => staff.id),
    turns: integer("turns").notNull().default(0),
    lastAt: timestamp("last_at", { withTimezone: true }),
  },
  (t) => [uniqueIndex("lead_turns_pk").on(t.tenantId, t.scope, t.staffId)],
);
