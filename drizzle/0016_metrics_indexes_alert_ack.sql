ALTER TABLE "alert_episodes" ADD COLUMN "acked_at" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "alert_episodes" ADD COLUMN "acked_by_staff_id" uuid;--> statement-breakpoint
ALTER TABLE "alert_episodes" ADD CONSTRAINT "alert_episodes_acked_by_staff_id_staff_id_fk" FOREIGN KEY ("acked_by_staff_id") REFERENCES "public"."staff"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "lead_sla_breaches_due_idx" ON "lead_sla_breaches" USING btree ("tenant_id","due_at");--> statement-breakpoint
CREATE INDEX "leads_tenant_assigned_idx" ON "leads" USING btree ("tenant_id","assigned_at");--> statement-breakpoint
CREATE INDEX "leads_tenant_first_due_idx" ON "leads" USING btree ("tenant_id","first_contact_due_at");--> statement-breakpoint
CREATE INDEX "sends_tenant_sent_idx" ON "sends" USING btree ("tenant_id","sent_at","calendar_id","contact_id") WHERE "sends"."status" = 'sent';--> statement-breakpoint
CREATE INDEX "sends_tenant_failed_idx" ON "sends" USING btree ("tenant_id","result_at") WHERE "sends"."status" in ('failed', 'over_quota', 'not_friend');--> statement-breakpoint
-- Period reads of the funnel (a kind over a time range) become index-only: the dimensions and values ride along.
DROP INDEX "metric_facts_kind_time_idx";--> statement-breakpoint
CREATE INDEX "metric_facts_kind_time_idx" ON "metric_facts" USING btree ("tenant_id","kind","occurred_at") INCLUDE ("contact_id","staff_id","clinic_id","channel","outcome","amount","score");--> statement-breakpoint
-- Acknowledgements kept in detail.ack before these columns existed.
UPDATE "alert_episodes" SET "acked_at" = ("detail" -> 'ack' ->> 'at')::timestamptz, "acked_by_staff_id" = nullif("detail" -> 'ack' ->> 'staffId', '')::uuid, "detail" = "detail" - 'ack' WHERE "detail" ? 'ack';--> statement-breakpoint
-- Tenants created before alerts existed get the default rules new tenants start with (src/domain/alerts/rules.ts).
INSERT INTO "alert_rules" ("tenant_id", "name", "metric", "condition", "scope", "enabled")
SELECT t."id", r.name, r.metric, r.condition::jsonb, '{}'::jsonb, true FROM "tenants" t
CROSS JOIN (VALUES
  ('成交率低于近4周同星期均值30%', 'deal_rate', '{"kind":"drop_vs_weekday_mean","pct":30,"weeks":4,"minDenominator":10}'),
  ('线索超时激增', 'sla_breaches', '{"kind":"spike_vs_mean","factor":2,"days":14,"minCount":5}'),
  ('群发失败激增', 'send_failures', '{"kind":"spike_vs_mean","factor":3,"days":14,"minCount":10}')
) AS r(name, metric, condition)
WHERE NOT EXISTS (SELECT 1 FROM "alert_rules" a WHERE a."tenant_id" = t."id");
