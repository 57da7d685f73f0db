CREATE TABLE "alert_episodes" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"tenant_id" uuid NOT NULL,
	"rule_id" uuid NOT NULL,
	"scope_key" text DEFAULT 'all' NOT NULL,
	"opened_at" timestamp with time zone DEFAULT now() NOT NULL,
	"last_seen_at" timestamp with time zone DEFAULT now() NOT NULL,
	"closed_at" timestamp with time zone,
	"value" double precision,
	"baseline" double precision,
	"detail" jsonb DEFAULT '{}'::jsonb NOT NULL,
	"notified_at" timestamp with time zone
);
--> statement-breakpoint
CREATE TABLE "alert_rules" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"tenant_id" uuid NOT NULL,
	"name" text NOT NULL,
	"metric" text NOT NULL,
	"condition" jsonb NOT NULL,
	"scope" jsonb DEFAULT '{}'::jsonb NOT NULL,
	"enabled" boolean DEFAULT true NOT NULL,
	"created_by_staff_id" uuid,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "analytics_settings" (
	"tenant_id" uuid PRIMARY KEY NOT NULL,
	"config" jsonb DEFAULT '{}'::jsonb NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "follow_ups" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"tenant_id" uuid NOT NULL,
	"contact_id" uuid NOT NULL,
	"staff_id" uuid,
	"clinic_id" uuid,
	"visit_event_id" uuid NOT NULL,
	"kind" text DEFAULT 'post_visit' NOT NULL,
	"due_at" timestamp with time zone NOT NULL,
	"status" text DEFAULT 'open' NOT NULL,
	"completed_at" timestamp with time zone,
	"completed_by_staff_id" uuid,
	"note" text,
	"survey_id" uuid,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "metric_facts" (
	"event_id" uuid PRIMARY KEY NOT NULL,
	"tenant_id" uuid NOT NULL,
	"contact_id" uuid NOT NULL,
	"kind" text NOT NULL,
	"occurred_at" timestamp with time zone NOT NULL,
	"staff_id" uuid,
	"clinic_id" uuid,
	"channel" text,
	"outcome" text,
	"mode" text,
	"reason" text,
	"amount" numeric(14, 2),
	"score" smallint,
	"items" text[]
);
--> statement-breakpoint
CREATE TABLE "surveys" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"tenant_id" uuid NOT NULL,
	"contact_id" uuid NOT NULL,
	"staff_id" uuid,
	"clinic_id" uuid,
	"visit_event_id" uuid,
	"token" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"sent_at" timestamp with time zone,
	"answered_at" timestamp with time zone,
	"score" smallint,
	"comment" text,
	"event_id" uuid
);
--> statement-breakpoint
ALTER TABLE "alert_episodes" ADD CONSTRAINT "alert_episodes_tenant_id_tenants_id_fk" FOREIGN KEY ("tenant_id") REFERENCES "public"."tenants"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "alert_episodes" ADD CONSTRAINT "alert_episodes_rule_id_alert_rules_id_fk" FOREIGN KEY ("rule_id") REFERENCES "public"."alert_rules"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "alert_rules" ADD CONSTRAINT "alert_rules_tenant_id_tenants_id_fk" FOREIGN KEY ("tenant_id") REFERENCES "public"."tenants"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "alert_rules" ADD CONSTRAINT "alert_rules_created_by_staff_id_staff_id_fk" FOREIGN KEY ("created_by_staff_id") REFERENCES "public"."staff"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "analytics_settings" ADD CONSTRAINT "analytics_settings_tenant_id_tenants_id_fk" FOREIGN KEY ("tenant_id") REFERENCES "public"."tenants"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "follow_ups" ADD CONSTRAINT "follow_ups_tenant_id_tenants_id_fk" FOREIGN KEY ("tenant_id") REFERENCES "public"."tenants"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "follow_ups" ADD CONSTRAINT "follow_ups_staff_id_staff_id_fk" FOREIGN KEY ("staff_id") REFERENCES "public"."staff"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "follow_ups" ADD CONSTRAINT "follow_ups_clinic_id_clinics_id_fk" FOREIGN KEY ("clinic_id") REFERENCES "public"."clinics"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "follow_ups" ADD CONSTRAINT "follow_ups_completed_by_staff_id_staff_id_fk" FOREIGN KEY ("completed_by_staff_id") REFERENCES "public"."staff"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "surveys" ADD CONSTRAINT "surveys_tenant_id_tenants_id_fk" FOREIGN KEY ("tenant_id") REFERENCES "public"."tenants"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "surveys" ADD CONSTRAINT "surveys_staff_id_staff_id_fk" FOREIGN KEY ("staff_id") REFERENCES "public"."staff"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "surveys" ADD CONSTRAINT "surveys_clinic_id_clinics_id_fk" FOREIGN KEY ("clinic_id") REFERENCES "public"."clinics"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
CREATE UNIQUE INDEX "alert_episodes_open_uq" ON "alert_episodes" USING btree ("rule_id","scope_key") WHERE "alert_episodes"."closed_at" is null;--> statement-breakpoint
CREATE INDEX "alert_episodes_tenant_idx" ON "alert_episodes" USING btree ("tenant_id","opened_at");--> statement-breakpoint
CREATE INDEX "alert_rules_tenant_idx" ON "alert_rules" USING btree ("tenant_id");--> statement-breakpoint
CREATE UNIQUE INDEX "follow_ups_visit_uq" ON "follow_ups" USING btree ("tenant_id","visit_event_id","kind");--> statement-breakpoint
CREATE INDEX "follow_ups_staff_idx" ON "follow_ups" USING btree ("tenant_id","staff_id","status","due_at");--> statement-breakpoint
CREATE INDEX "follow_ups_due_idx" ON "follow_ups" USING btree ("tenant_id","due_at");--> statement-breakpoint
CREATE INDEX "metric_facts_kind_time_idx" ON "metric_facts" USING btree ("tenant_id","kind","occurred_at");--> statement-breakpoint
CREATE INDEX "metric_facts_staff_idx" ON "metric_facts" USING btree ("tenant_id","staff_id","kind","occurred_at");--> statement-breakpoint
CREATE INDEX "metric_facts_contact_idx" ON "metric_facts" USING btree ("tenant_id","contact_id","occurred_at");--> statement-breakpoint
CREATE UNIQUE INDEX "surveys_token_uq" ON "surveys" USING btree ("token");--> statement-breakpoint
CREATE UNIQUE INDEX "surveys_visit_uq" ON "surveys" USING btree ("tenant_id","visit_event_id");--> statement-breakpoint
CREATE INDEX "surveys_tenant_created_idx" ON "surveys" USING btree ("tenant_id","created_at");--> statement-breakpoint
-- Existing tenants get the conversion feedback tag groups new tenants are created with.
INSERT INTO "tag_groups" ("tenant_id", "key", "name", "exclusive")
SELECT t."id", g.key, g.name, g.exclusive FROM "tenants" t
CROSS JOIN (VALUES ('lost_reason', '未成交原因', false), ('nps', '满意度', true), ('referral', '转介绍', true)) AS g(key, name, exclusive)
ON CONFLICT ("tenant_id", "key") DO NOTHING;
--> statement-breakpoint
INSERT INTO "tags" ("tenant_id", "group_id", "name", "sort_order")
SELECT g."tenant_id", g."id", x.name, x.ord FROM "tag_groups" g
JOIN (VALUES ('lost_reason', '价格敏感', 0), ('lost_reason', '担心效果', 1), ('lost_reason', '恐惧疼痛', 2), ('lost_reason', '时间不便', 3), ('lost_reason', '选择了其他机构', 4),
             ('nps', '推荐者', 0), ('nps', '被动者', 1), ('nps', '贬损者', 2), ('referral', '推荐人', 0), ('referral', '推荐达人', 1)) AS x(grp, name, ord) ON x.grp = g."key"
ORDER BY g."tenant_id", x.grp, x.ord
ON CONFLICT ("tenant_id", "group_id", "name") DO NOTHING;
--> statement-breakpoint
-- Facts of the events already applied, credited to each contact's consultant of record today.
INSERT INTO "metric_facts" ("event_id", "tenant_id", "contact_id", "kind", "occurred_at", "staff_id", "clinic_id", "channel", "outcome", "mode", "reason", "amount", "score", "items")
SELECT e."id", e."tenant_id", e."contact_id",
  CASE e."type" WHEN 'appointment_booked' THEN 'appointment' WHEN 'consultation_outcome' THEN 'consultation' WHEN 'survey_answered' THEN 'survey' ELSE e."type" END,
  e."occurred_at", c."owner_staff_id", coalesce(c."clinic_id", s."clinic_id"), coalesce(c."source_state", c."source"),
  e."payload" ->> 'outcome', e."payload" ->> 'mode', e."payload" ->> 'lostReason',
  CASE WHEN jsonb_typeof(e."payload" -> 'amount') = 'number' THEN (e."payload" ->> 'amount')::numeric END,
  CASE WHEN jsonb_typeof(e."payload" -> 'score') = 'number' THEN (e."payload" ->> 'score')::smallint END,
  CASE WHEN jsonb_typeof(e."payload" -> 'items') = 'array' THEN ARRAY(SELECT jsonb_array_elements_text(e."payload" -> 'items')) WHEN e."payload" ? 'item' THEN ARRAY[e."payload" ->> 'item'] END
FROM "events" e JOIN "contacts" c ON c."id" = e."contact_id" LEFT JOIN "staff" s ON s."id" = c."owner_staff_id"
WHERE e."processed_at" IS NOT NULL AND e."type" IN ('appointment_booked', 'visit', 'consultation_outcome', 'purchase', 'refund', 'survey_answered')
ON CONFLICT DO NOTHING;
