CREATE TABLE "wecom_callbacks" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"tenant_id" uuid NOT NULL,
	"dedupe_key" text NOT NULL,
	"kind" text NOT NULL,
	"change_type" text,
	"plaintext" text NOT NULL,
	"decoded" jsonb DEFAULT '{}'::jsonb NOT NULL,
	"received_at" timestamp with time zone DEFAULT now() NOT NULL,
	"deliveries" integer DEFAULT 1 NOT NULL,
	"processed_at" timestamp with time zone,
	"attempts" integer DEFAULT 0 NOT NULL,
	"last_error" text
);
--> statement-breakpoint
CREATE TABLE "wecom_settings" (
	"tenant_id" uuid PRIMARY KEY NOT NULL,
	"corp_id" text NOT NULL,
	"agent_id" integer NOT NULL,
	"secret_enc" text NOT NULL,
	"callback_token_enc" text NOT NULL,
	"aes_key_enc" text NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
ALTER TABLE "wecom_callbacks" ADD CONSTRAINT "wecom_callbacks_tenant_id_tenants_id_fk" FOREIGN KEY ("tenant_id") REFERENCES "public"."tenants"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "wecom_settings" ADD CONSTRAINT "wecom_settings_tenant_id_tenants_id_fk" FOREIGN KEY ("tenant_id") REFERENCES "public"."tenants"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
CREATE UNIQUE INDEX "wecom_callbacks_tenant_dedupe_uq" ON "wecom_callbacks" USING btree ("tenant_id","dedupe_key");--> statement-breakpoint
CREATE INDEX "wecom_callbacks_unprocessed_idx" ON "wecom_callbacks" USING btree ("received_at") WHERE processed_at is null;