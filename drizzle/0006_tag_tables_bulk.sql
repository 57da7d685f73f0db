ALTER TABLE "contact_tags" DROP CONSTRAINT "contact_tags_tenant_id_tenants_id_fk";
--> statement-breakpoint
ALTER TABLE "contact_tags" DROP CONSTRAINT "contact_tags_contact_id_contacts_id_fk";
--> statement-breakpoint
ALTER TABLE "contact_tags" DROP CONSTRAINT "contact_tags_tag_id_tags_id_fk";
--> statement-breakpoint
ALTER TABLE "contact_tags" DROP CONSTRAINT "contact_tags_actor_staff_id_staff_id_fk";
--> statement-breakpoint
ALTER TABLE "tag_history" DROP CONSTRAINT "tag_history_tenant_id_tenants_id_fk";
--> statement-breakpoint
ALTER TABLE "tag_history" DROP CONSTRAINT "tag_history_contact_id_contacts_id_fk";
--> statement-breakpoint
ALTER TABLE "tag_history" DROP CONSTRAINT "tag_history_tag_id_tags_id_fk";
--> statement-breakpoint
ALTER TABLE "tag_history" DROP CONSTRAINT "tag_history_actor_staff_id_staff_id_fk";
--> statement-breakpoint
DROP INDEX "contact_tags_tenant_tag_idx";--> statement-breakpoint
CREATE INDEX "contacts_deleted_idx" ON "contacts" USING btree ("id") WHERE deleted_at is not null;--> statement-breakpoint
CREATE INDEX "contact_tags_tenant_tag_contact_idx" ON "contact_tags" USING btree ("tenant_id","tag_id","contact_id");