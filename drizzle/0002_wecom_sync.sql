CREATE TABLE "wecom_group_chats" (
	"tenant_id" uuid NOT NULL,
	"chat_id" text NOT NULL,
	"name" text,
	"owner_user_id" text,
	"notice" text,
	"status" integer DEFAULT 0 NOT NULL,
	"member_version" text,
	"member_count" integer DEFAULT 0 NOT NULL,
	"customer_count" integer DEFAULT 0 NOT NULL,
	"dismissed_at" timestamp with time zone,
	"synced_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "wecom_sync_runs" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"tenant_id" uuid NOT NULL,
	"status" text DEFAULT 'queued' NOT NULL,
	"phase" text DEFAULT 'tags' NOT NULL,
	"position" jsonb DEFAULT '{}'::jsonb NOT NULL,
	"counts" jsonb DEFAULT '{}'::jsonb NOT NULL,
	"total_batches" integer DEFAULT 0 NOT NULL,
	"error" text,
	"locked_until" timestamp with time zone,
	"started_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	"finished_at" timestamp with time zone
);
--> statement-breakpoint
ALTER TABLE "wecom_group_chats" ADD CONSTRAINT "wecom_group_chats_tenant_id_tenants_id_fk" FOREIGN KEY ("tenant_id") REFERENCES "public"."tenants"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "wecom_sync_runs" ADD CONSTRAINT "wecom_sync_runs_tenant_id_tenants_id_fk" FOREIGN KEY ("tenant_id") REFERENCES "public"."tenants"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
CREATE UNIQUE INDEX "wecom_group_chats_tenant_chat_uq" ON "wecom_group_chats" USING btree ("tenant_id","chat_id");--> statement-breakpoint
CREATE INDEX "wecom_sync_runs_tenant_idx" ON "wecom_sync_runs" USING btree ("tenant_id","started_at");