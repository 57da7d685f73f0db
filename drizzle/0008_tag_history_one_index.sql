-- tag_history keeps one index: its primary key, which also serves a contact's timeline.
DROP INDEX "tag_history_tenant_contact_idx";--> statement-breakpoint
ALTER TABLE "tag_history" DROP CONSTRAINT "tag_history_pkey";--> statement-breakpoint
ALTER TABLE "tag_history" ADD CONSTRAINT "tag_history_pkey" PRIMARY KEY("tenant_id","contact_id","at","id");--> statement-breakpoint
-- Each connection takes ids a hundred at a time instead of locking the sequence for every row.
ALTER SEQUENCE "tag_history_id_seq" CACHE 100;
