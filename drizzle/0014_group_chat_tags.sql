ALTER TABLE "wecom_group_chats" ADD COLUMN "tags" text[] DEFAULT '{}'::text[] NOT NULL;--> statement-breakpoint
CREATE INDEX "wecom_group_chats_tags_idx" ON "wecom_group_chats" USING gin ("tags");