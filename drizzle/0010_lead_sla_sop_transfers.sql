CREATE TABLE "lead_contact_attempts" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"tenant_id" uuid NOT NULL,
	"lead_id" uuid NOT NULL,
	"contact_id" uuid NOT NULL,
	"staff_id" uuid,
	"channel" text NOT NULL,
	"outcome" text NOT NULL,
	"note" text,
	"at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "lead_sla_breaches" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"tenant_id" uuid NOT NULL,
	"lead_id" uuid NOT NULL,
	"staff_id" uuid NOT NULL,
	"due_at" timestamp with time zone NOT NULL,
	"breached_at" timestamp with time zone DEFAULT now() NOT NULL,
	"action" text NOT NULL,
	"to_staff_id" uuid
);
--> statement-breakpoint
CREATE TABLE "lead_tasks" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"tenant_id" uuid NOT NULL,
	"lead_id" uuid NOT NULL,
	"contact_id" uuid NOT NULL,
	"staff_id" uuid,
	"template_id" uuid,
	"step_key" text NOT NULL,
	"title" text NOT NULL,
	"post_id" uuid,
	"due_at" timestamp with time zone NOT NULL,
	"status" text DEFAULT 'open' NOT NULL,
	"completed_at" timestamp with time zone,
	"completed_by_staff_id" uuid,
	"skip_reason" text,
	"sent_at" timestamp with time zone,
	"send_ref" text,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "sop_templates" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"tenant_id" uuid NOT NULL,
	"clinic_id" uuid,
	"name" text NOT NULL,
	"match" jsonb NOT NULL,
	"steps" jsonb NOT NULL,
	"priority" integer DEFAULT 0 NOT NULL,
	"active" boolean DEFAULT true NOT NULL,
	"created_by_staff_id" uuid,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "staff_notifications" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"tenant_id" uuid NOT NULL,
	"staff_id" uuid NOT NULL,
	"kind" text NOT NULL,
	"lead_id" uuid,
	"contact_id" uuid,
	"title" text NOT NULL,
	"body" text NOT NULL,
	"dedupe_key" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"sent_at" timestamp with time zone,
	"outcome" text,
	"attempts" integer DEFAULT 0 NOT NULL,
	"last_error" text
);
--> statement-breakpoint
CREATE TABLE "wecom_transfers" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"tenant_id" uuid NOT NULL,
	"contact_id" uuid NOT NULL,
	"external_user_id" text NOT NULL,
	"handover_staff_id" uuid NOT NULL,
	"takeover_staff_id" uuid NOT NULL,
	"kind" text NOT NULL,
	"status" text NOT NULL,
	"errcode" integer,
	"detail" text,
	"requested_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
ALTER TABLE "lead_contact_attempts" ADD CONSTRAINT "lead_contact_attempts_tenant_id_tenants_id_fk" FOREIGN KEY ("tenant_id") REFERENCES "public"."tenants"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "lead_contact_attempts" ADD CONSTRAINT "lead_contact_attempts_lead_id_leads_id_fk" FOREIGN KEY ("lead_id") REFERENCES "public"."leads"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "lead_contact_attempts" ADD CONSTRAINT "lead_contact_attempts_staff_id_staff_id_fk" FOREIGN KEY ("staff_id") REFERENCES "public"."staff"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "lead_sla_breaches" ADD CONSTRAINT "lead_sla_breaches_tenant_id_tenants_id_fk" FOREIGN KEY ("tenant_id") REFERENCES "public"."tenants"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "lead_sla_breaches" ADD CONSTRAINT "lead_sla_breaches_lead_id_leads_id_fk" FOREIGN KEY ("lead_id") REFERENCES "public"."leads"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "lead_sla_breaches" ADD CONSTRAINT "lead_sla_breaches_staff_id_staff_id_fk" FOREIGN KEY ("staff_id") REFERENCES "public"."staff"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "lead_sla_breaches" ADD CONSTRAINT "lead_sla_breaches_to_staff_id_staff_id_fk" FOREIGN KEY ("to_staff_id") REFERENCES "public"."staff"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "lead_tasks" ADD CONSTRAINT "lead_tasks_tenant_id_tenants_id_fk" FOREIGN KEY ("tenant_id") REFERENCES "public"."tenants"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "lead_tasks" ADD CONSTRAINT "lead_tasks_lead_id_leads_id_fk" FOREIGN KEY ("lead_id") REFERENCES "public"."leads"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "lead_tasks" ADD CONSTRAINT "lead_tasks_staff_id_staff_id_fk" FOREIGN KEY ("staff_id") REFERENCES "public"."staff"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "lead_tasks" ADD CONSTRAINT "lead_tasks_template_id_sop_templates_id_fk" FOREIGN KEY ("template_id") REFERENCES "public"."sop_templates"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "lead_tasks" ADD CONSTRAINT "lead_tasks_completed_by_staff_id_staff_id_fk" FOREIGN KEY ("completed_by_staff_id") REFERENCES "public"."staff"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "sop_templates" ADD CONSTRAINT "sop_templates_tenant_id_tenants_id_fk" FOREIGN KEY ("tenant_id") REFERENCES "public"."tenants"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "sop_templates" ADD CONSTRAINT "sop_templates_clinic_id_clinics_id_fk" FOREIGN KEY ("clinic_id") REFERENCES "public"."clinics"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "sop_templates" ADD CONSTRAINT "sop_templates_created_by_staff_id_staff_id_fk" FOREIGN KEY ("created_by_staff_id") REFERENCES "public"."staff"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "staff_notifications" ADD CONSTRAINT "staff_notifications_tenant_id_tenants_id_fk" FOREIGN KEY ("tenant_id") REFERENCES "public"."tenants"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "staff_notifications" ADD CONSTRAINT "staff_notifications_staff_id_staff_id_fk" FOREIGN KEY ("staff_id") REFERENCES "public"."staff"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "wecom_transfers" ADD CONSTRAINT "wecom_transfers_tenant_id_tenants_id_fk" FOREIGN KEY ("tenant_id") REFERENCES "public"."tenants"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "wecom_transfers" ADD CONSTRAINT "wecom_transfers_handover_staff_id_staff_id_fk" FOREIGN KEY ("handover_staff_id") REFERENCES "public"."staff"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "wecom_transfers" ADD CONSTRAINT "wecom_transfers_takeover_staff_id_staff_id_fk" FOREIGN KEY ("takeover_staff_id") REFERENCES "public"."staff"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "lead_contact_attempts_lead_idx" ON "lead_contact_attempts" USING btree ("lead_id","at");--> statement-breakpoint
CREATE UNIQUE INDEX "lead_sla_breaches_deadline_uq" ON "lead_sla_breaches" USING btree ("lead_id","due_at");--> statement-breakpoint
CREATE INDEX "lead_sla_breaches_tenant_idx" ON "lead_sla_breaches" USING btree ("tenant_id","staff_id","breached_at");--> statement-breakpoint
CREATE UNIQUE INDEX "lead_tasks_step_uq" ON "lead_tasks" USING btree ("lead_id","template_id","step_key");--> statement-breakpoint
CREATE INDEX "lead_tasks_staff_due_idx" ON "lead_tasks" USING btree ("tenant_id","staff_id","status","due_at");--> statement-breakpoint
CREATE INDEX "lead_tasks_lead_idx" ON "lead_tasks" USING btree ("lead_id","due_at");--> statement-breakpoint
CREATE INDEX "sop_templates_tenant_idx" ON "sop_templates" USING btree ("tenant_id","active");--> statement-breakpoint
CREATE UNIQUE INDEX "staff_notifications_dedupe_uq" ON "staff_notifications" USING btree ("tenant_id","dedupe_key");--> statement-breakpoint
CREATE INDEX "staff_notifications_staff_idx" ON "staff_notifications" USING btree ("tenant_id","staff_id","created_at");--> statement-breakpoint
CREATE INDEX "staff_notifications_unsent_idx" ON "staff_notifications" USING btree ("created_at") WHERE "staff_notifications"."sent_at" is null;--> statement-breakpoint
CREATE INDEX "wecom_transfers_tenant_idx" ON "wecom_transfers" USING btree ("tenant_id","handover_staff_id","requested_at");--> statement-breakpoint
CREATE INDEX "wecom_transfers_contact_idx" ON "wecom_transfers" USING btree ("tenant_id","contact_id","requested_at");--> statement-breakpoint
CREATE INDEX "leads_sla_due_idx" ON "leads" USING btree ("first_contact_due_at") WHERE "leads"."status" = 'open' and "leads"."active_owner_staff_id" is not null and "leads"."first_contacted_at" is null;--> statement-breakpoint
-- The contact-owner trigger (0009) also hands the lead's open SOP tasks to the new owner.
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
      "assigned_at" = CASE WHEN NEW."owner_staff_id" IS NULL THEN NULL ELSE now() END, "updated_at" = now()
    WHERE "tenant_id" = NEW."tenant_id" AND "contact_id" = NEW."id" AND "status" = 'open'
      AND "active_owner_staff_id" IS DISTINCT FROM NEW."owner_staff_id";
  RETURN NULL;
END $$;
