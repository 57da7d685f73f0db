-- The contact-owner trigger (0009, 0010) also restarts the first-contact clock: the new owner has
-- not contacted the patient yet, and the old owner's deadline is not theirs. The deadline is left
-- empty here (it depends on the owner's shift and the SLA settings) and the minute SLA sweep sets
-- it and arms its timers.
CREATE OR REPLACE FUNCTION "siyu_contact_owner_follows"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO "lead_assignments" ("tenant_id", "lead_id", "contact_id", "from_staff_id", "to_staff_id", "kind", "reason")
    SELECT l."tenant_id", l."id", l."contact_id", l."active_owner_staff_id", NEW."owner_staff_id",
      CASE WHEN NEW."owner_staff_id" IS NULL THEN 'release' ELSE 'reassign' END, 'the contact''s owner changed'
    FROM "leads" l WHERE l."tenant_id" = NEW."tenant_id" AND l."contact_id" = NEW."id" AND l."status" = 'open'
      AND l."active_owner_staff_id" IS DISTINCT FROM NEW."owner_staff_id";
  UPDATE "lead_tasks" t SET "staff_id" = NEW."owner_staff_id"
    FROM "leads" l WHERE l."tenant_id" = NEW."tenant_id" AND l."contact_id" = NEW."id" AND l."status" = 'open'
      AND l."active_owner_staff_id" IS DISTINCT FROM NEW."owner_staff_id"
      AND t."lead_id" = l."id" AND t."status" = 'open';
  UPDATE "leads" SET "active_owner_staff_id" = NEW."owner_staff_id", "owner_staff_id" = coalesce(NEW."owner_staff_id", "owner_staff_id"),
      "assigned_at" = CASE WHEN NEW."owner_staff_id" IS NULL THEN NULL ELSE now() END,
      "first_contact_due_at" = NULL, "first_contacted_at" = NULL, "updated_at" = now()
    WHERE "tenant_id" = NEW."tenant_id" AND "contact_id" = NEW."id" AND "status" = 'open'
      AND "active_owner_staff_id" IS DISTINCT FROM NEW."owner_staff_id";
  RETURN NULL;
END $$;
