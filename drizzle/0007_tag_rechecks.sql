CREATE TABLE "contact_tag_rechecks" (
	"contact_id" uuid PRIMARY KEY NOT NULL,
	"tenant_id" uuid NOT NULL,
	"recheck_at" timestamp with time zone
);
--> statement-breakpoint
-- Room on each page for HOT updates: a tag pass rewrites most rows, never an indexed column.
ALTER TABLE "contact_tag_rechecks" SET (fillfactor = 50);
--> statement-breakpoint
-- Every contact starts due for the nightly pass, however it was created (API, import, events, WeCom).
CREATE FUNCTION "siyu_contact_tag_recheck"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO "contact_tag_rechecks" ("contact_id", "tenant_id", "recheck_at") VALUES (NEW."id", NEW."tenant_id", '-infinity')
  ON CONFLICT ("contact_id") DO UPDATE SET "recheck_at" = '-infinity';
  RETURN NEW;
END $$;
--> statement-breakpoint
CREATE TRIGGER "contacts_tag_recheck" AFTER INSERT ON "contacts" FOR EACH ROW EXECUTE FUNCTION "siyu_contact_tag_recheck"();
--> statement-breakpoint
INSERT INTO "contact_tag_rechecks" ("contact_id", "tenant_id", "recheck_at") SELECT "id", "tenant_id", '-infinity' FROM "contacts" ON CONFLICT DO NOTHING;
