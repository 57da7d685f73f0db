DROP INDEX "sends_post_contact_uq";--> statement-breakpoint
DROP INDEX "sends_post_chat_uq";--> statement-breakpoint
ALTER TABLE "sends" ADD COLUMN "occurrence" text DEFAULT '' NOT NULL;--> statement-breakpoint
CREATE UNIQUE INDEX "sends_post_contact_occ_uq" ON "sends" USING btree ("post_id","contact_id","occurrence") WHERE "sends"."contact_id" is not null;--> statement-breakpoint
CREATE UNIQUE INDEX "sends_post_chat_occ_uq" ON "sends" USING btree ("post_id","chat_id","occurrence") WHERE "sends"."chat_id" is not null;--> statement-breakpoint
CREATE INDEX "sends_sending_idx" ON "sends" USING btree ("sent_at") WHERE "sends"."status" = 'sending';