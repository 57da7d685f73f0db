-- Leads (issue 6). leads_contact_owner_fk is checked at commit: an open lead's owner and its
-- contact's owner change together in one transaction.
CREATE TABLE "lead_assignments" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"tenant_id" uuid NOT NULL,
	"lead_id" uuid NOT NULL,
	"contact_id" uuid NOT NULL,
	"from_staff_id" uuid,
	"to_staff_id" uuid,
	"kind" text NOT NULL,
	"strategy" text,
	"reason" text,
	"actor_staff_id" uuid,
	"at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "lead_grade_changes" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"tenant_id" uuid NOT NULL,
	"lead_id" uuid NOT NULL,
	"from_grade" text,
	"to_grade" text NOT NULL,
	"score" integer NOT NULL,
	"parts" jsonb NOT NULL,
	"at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "lead_settings" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"tenant_id" uuid NOT NULL,
	"clinic_id" uuid,
	"config" jsonb NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "lead_turns" (
	"tenant_id" uuid NOT NULL,
	"scope" text NOT NULL,
	"staff_id" uuid NOT NULL,
	"turns" integer DEFAULT 0 NOT NULL,
	"last_at" timestamp with time zone
);
--> statement-breakpoint
CREATE TABLE "leads" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"tenant_id" uuid NOT NULL,
	"contact_id" uuid NOT NULL,
	"clinic_id" uuid,
	"status" text DEFAULT 'open' NOT NULL,
	"source" text NOT NULL,
	"source_ref" text,
	"need" text,
	"signal_score" integer DEFAULT 0 NOT NULL,
	"signals" integer DEFAULT 1 NOT NULL,
	"last_signal_at" timestamp with time zone DEFAULT now() NOT NULL,
	"score" integer DEFAULT 0 NOT NULL,
	"grade" text DEFAULT 'D' NOT NULL,
	"owner_staff_id" uuid,
	"active_owner_staff_id" uuid,
	"assigned_at" timestamp with time zone,
	"first_contact_due_at" timestamp with time zone,
	"first_contacted_at" timestamp with time zone,
	"closed_at" timestamp with time zone,
	"closed_reason" text,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "leads_active_owner_open" CHECK ("leads"."active_owner_staff_id" is null or ("leads"."status" = 'open' and "leads"."active_owner_staff_id" = "leads"."owner_staff_id"))
);
--> statement-breakpoint
ALTER TABLE "lead_assignments" ADD CONSTRAINT "lead_assignments_tenant_id_tenants_id_fk" FOREIGN KEY ("tenant_id") REFERENCES "public"."tenants"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "lead_assignments" ADD CONSTRAINT "lead_assignments_lead_id_leads_id_fk" FOREIGN KEY ("lead_id") REFERENCES "public"."leads"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "lead_assignments" ADD CONSTRAINT "lead_assignments_from_staff_id_staff_id_fk" FOREIGN KEY ("from_staff_id") REFERENCES "public"."staff"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "lead_assignments" ADD CONSTRAINT "lead_assignments_to_staff_id_staff_id_fk" FOREIGN KEY ("to_staff_id") REFERENCES "public"."staff"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "lead_assignments" ADD CONSTRAINT "lead_assignments_actor_staff_id_staff_id_fk" FOREIGN KEY ("actor_staff_id") REFERENCES "public"."staff"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "lead_grade_changes" ADD CONSTRAINT "lead_grade_changes_tenant_id_tenants_id_fk" FOREIGN KEY ("tenant_id") REFERENCES "public"."tenants"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "lead_grade_changes" ADD CONSTRAINT "lead_grade_changes_lead_id_leads_id_fk" FOREIGN KEY ("lead_id") REFERENCES "public"."leads"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "lead_settings" ADD CONSTRAINT "lead_settings_tenant_id_tenants_id_fk" FOREIGN KEY ("tenant_id") REFERENCES "public"."tenants"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "lead_settings" ADD CONSTRAINT "lead_settings_clinic_id_clinics_id_fk" FOREIGN KEY ("clinic_id") REFERENCES "public"."clinics"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "lead_turns" ADD CONSTRAINT "lead_turns_tenant_id_tenants_id_fk" FOREIGN KEY ("tenant_id") REFERENCES "public"."tenants"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "lead_turns" ADD CONSTRAINT "lead_turns_staff_id_staff_id_fk" FOREIGN KEY ("staff_id") REFERENCES "public"."staff"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "leads" ADD CONSTRAINT "leads_tenant_id_tenants_id_fk" FOREIGN KEY ("tenant_id") REFERENCES "public"."tenants"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "leads" ADD CONSTRAINT "leads_clinic_id_clinics_id_fk" FOREIGN KEY ("clinic_id") REFERENCES "public"."clinics"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "leads" ADD CONSTRAINT "leads_owner_staff_id_staff_id_fk" FOREIGN KEY ("owner_staff_id") REFERENCES "public"."staff"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
CREATE UNIQUE INDEX "contacts_id_owner_uq" ON "contacts" USING btree ("id","owner_staff_id");--> statement-breakpoint
ALTER TABLE "leads" ADD CONSTRAINT "leads_contact_owner_fk" FOREIGN KEY ("contact_id","active_owner_staff_id") REFERENCES "public"."contacts"("id","owner_staff_id") ON DELETE no action ON UPDATE no action DEFERRABLE INITIALLY DEFERRED;--> statement-breakpoint
CREATE INDEX "lead_assignments_lead_idx" ON "lead_assignments" USING btree ("lead_id","at");--> statement-breakpoint
CREATE INDEX "lead_assignments_tenant_to_idx" ON "lead_assignments" USING btree ("tenant_id","to_staff_id","kind","at");--> statement-breakpoint
CREATE INDEX "lead_grade_changes_lead_idx" ON "lead_grade_changes" USING btree ("lead_id","at");--> statement-breakpoint
CREATE UNIQUE INDEX "lead_settings_scope_uq" ON "lead_settings" USING btree ("tenant_id",coalesce("clinic_id", '00000000-0000-0000-0000-000000000000'::uuid));--> statement-breakpoint
CREATE UNIQUE INDEX "lead_turns_pk" ON "lead_turns" USING btree ("tenant_id","scope","staff_id");--> statement-breakpoint
CREATE UNIQUE INDEX "leads_one_open_per_contact_uq" ON "leads" USING btree ("tenant_id","contact_id") WHERE "leads"."status" = 'open';--> statement-breakpoint
CREATE INDEX "leads_tenant_owner_idx" ON "leads" USING btree ("tenant_id","active_owner_staff_id","grade");--> statement-breakpoint
CREATE INDEX "leads_tenant_pool_idx" ON "leads" USING btree ("tenant_id","created_at") WHERE "leads"."status" = 'open' and "leads"."active_owner_staff_id" is null;--> statement-breakpoint
CREATE INDEX "leads_tenant_created_idx" ON "leads" USING btree ("tenant_id","created_at","id");
--> statement-breakpoint
-- Whoever changes a contact's owner (an edit, an import, a WeCom transfer) moves its open lead along,
-- recorded in lead_assignments: the lead services move both themselves, lead first, so this is a
-- no-op for them.
CREATE FUNCTION "siyu_contact_owner_follows"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO "lead_assignments" ("tenant_id", "lead_id", "contact_id", "from_staff_id", "to_staff_id", "kind", "reason")
    SELECT l."tenant_id", l."id", l."contact_id", l."active_owner_staff_id", NEW."owner_staff_id",
      CASE WHEN NEW."owner_staff_id" IS NULL THEN 'release' ELSE 'reassign' END, 'the contact''s owner changed'
    FROM "leads" l WHERE l."tenant_id" = NEW."tenant_id" AND l."contact_id" = NEW."id" AND l."status" = 'open'
      AND l."active_owner_staff_id" IS DISTINCT FROM NEW."owner_staff_id";
  UPDATE "leads" SET "active_owner_staff_id" = NEW."owner_staff_id", "owner_staff_id" = coalesce(NEW."owner_staff_id", "owner_staff_id"),
      "assigned_at" = CASE WHEN NEW."owner_staff_id" IS NULL THEN NULL ELSE now() END, "updated_at" = now()
    WHERE "tenant_id" = NEW."tenant_id" AND "contact_id" = NEW."id" AND "status" = 'open'
      AND "active_owner_staff_id" IS DISTINCT FROM NEW."owner_staff_id";
  RETURN NULL;
END $$;--> statement-breakpoint
CREATE TRIGGER "contacts_owner_follows" AFTER UPDATE OF "owner_staff_id" ON "contacts"
  FOR EACH ROW WHEN (OLD."owner_staff_id" IS DISTINCT FROM NEW."owner_staff_id") EXECUTE FUNCTION "siyu_contact_owner_follows"();
