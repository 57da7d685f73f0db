DROP INDEX "contact_tags_tag_contact_idx";--> statement-breakpoint
ALTER TABLE "contact_tags" ADD COLUMN "in_tag_bits" boolean DEFAULT false NOT NULL;--> statement-breakpoint
CREATE INDEX "contact_tags_tag_contact_idx" ON "contact_tags" USING btree ("tag_id","contact_id") WHERE not "contact_tags"."in_tag_bits";