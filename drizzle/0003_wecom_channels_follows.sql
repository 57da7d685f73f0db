CREATE TABLE "contact_follows" (
	"tenant_id" uuid NOT NULL,
	"contact_id" uuid NOT NULL,
	"user_id" text NOT NULL,
	"state" text,
	"add_way" integer,
	"added_at" timestamp with time zone NOT NULL,
	"removed_at" timestamp with time zone,
	"removed_by" text,
	CONSTRAINT "contact_follows_contact_id_user_id_pk" PRIMARY KEY("contact_id","user_id")
);
--> statement-breakpoint
CREATE TABLE "wecom_channels" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"tenant_id" uuid NOT NULL,
	"kind" text NOT NULL,
	"name" text NOT NULL,
	"state" text NOT NULL,
	"config_id" text NOT NULL,
	"qr_code" text,
	"staff_user_ids" text[] NOT NULL,
	"contact_id" uuid,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
ALTER TABLE "contact_follows" ADD CONSTRAINT "contact_follows_tenant_id_tenants_id_fk" FOREIGN KEY ("tenant_id") REFERENCES "public"."tenants"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "contact_follows" ADD CONSTRAINT "contact_follows_contact_id_contacts_id_fk" FOREIGN KEY ("contact_id") REFERENCES "public"."contacts"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "wecom_channels" ADD CONSTRAINT "wecom_channels_tenant_id_tenants_id_fk" FOREIGN KEY ("tenant_id") REFERENCES "public"."tenants"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "contact_follows_tenant_user_idx" ON "contact_follows" USING btree ("tenant_id","user_id");--> statement-breakpoint
CREATE UNIQUE INDEX "wecom_channels_tenant_state_uq" ON "wecom_channels" USING btree ("tenant_id","state");--> statement-breakpoint
CREATE INDEX "wecom_channels_tenant_contact_idx" ON "wecom_channels" USING btree ("tenant_id","contact_id");