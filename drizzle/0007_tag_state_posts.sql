CREATE TABLE "contact_tag_state" (
	"contact_id" uuid PRIMARY KEY NOT NULL,
	"tenant_id" uuid NOT NULL,
	"recheck_at" timestamp with time zone,
	"tag_bits" bigint DEFAULT 0 NOT NULL
);
--> statement-breakpoint
CREATE TABLE "post_reviews" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"tenant_id" uuid NOT NULL,
	"post_id" uuid NOT NULL,
	"level" integer NOT NULL,
	"reviewer_staff_id" uuid NOT NULL,
	"decision" text NOT NULL,
	"content_hash" text NOT NULL,
	"comments" jsonb DEFAULT '[]'::jsonb NOT NULL,
	"note" text,
	"override_reason" text,
	"list_version" text,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "posts" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"tenant_id" uuid NOT NULL,
	"kind" text NOT NULL,
	"title" text,
	"body" text NOT NULL,
	"sample_data" jsonb DEFAULT '{}'::jsonb NOT NULL,
	"status" text DEFAULT 'draft' NOT NULL,
	"content_hash" text NOT NULL,
	"levels_required" integer DEFAULT 1 NOT NULL,
	"review_level" integer,
	"list_version" text,
	"findings" jsonb DEFAULT '[]'::jsonb NOT NULL,
	"created_by_staff_id" uuid,
	"updated_by_staff_id" uuid,
	"submitted_at" timestamp with time zone,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
ALTER TABLE "tags" ADD COLUMN "ordinal" integer;--> statement-breakpoint
ALTER TABLE "wecom_channels" ADD COLUMN "welcome_post_id" uuid;--> statement-breakpoint
ALTER TABLE "post_reviews" ADD CONSTRAINT "post_reviews_tenant_id_tenants_id_fk" FOREIGN KEY ("tenant_id") REFERENCES "public"."tenants"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "post_reviews" ADD CONSTRAINT "post_reviews_post_id_posts_id_fk" FOREIGN KEY ("post_id") REFERENCES "public"."posts"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "post_reviews" ADD CONSTRAINT "post_reviews_reviewer_staff_id_staff_id_fk" FOREIGN KEY ("reviewer_staff_id") REFERENCES "public"."staff"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "posts" ADD CONSTRAINT "posts_tenant_id_tenants_id_fk" FOREIGN KEY ("tenant_id") REFERENCES "public"."tenants"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "posts" ADD CONSTRAINT "posts_created_by_staff_id_staff_id_fk" FOREIGN KEY ("created_by_staff_id") REFERENCES "public"."staff"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "posts" ADD CONSTRAINT "posts_updated_by_staff_id_staff_id_fk" FOREIGN KEY ("updated_by_staff_id") REFERENCES "public"."staff"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "post_reviews_post_idx" ON "post_reviews" USING btree ("post_id","created_at");--> statement-breakpoint
CREATE UNIQUE INDEX "post_reviews_level_hash_uq" ON "post_reviews" USING btree ("post_id","content_hash","level");--> statement-breakpoint
CREATE INDEX "posts_tenant_status_idx" ON "posts" USING btree ("tenant_id","status","submitted_at");--> statement-breakpoint
CREATE INDEX "posts_tenant_created_idx" ON "posts" USING btree ("tenant_id","created_at","id");--> statement-breakpoint
CREATE UNIQUE INDEX "tags_tenant_ordinal_uq" ON "tags" USING btree ("tenant_id","ordinal");--> statement-breakpoint
-- Room on each page for HOT updates (passes rewrite many rows), yet dense enough to scan for counts.
ALTER TABLE "contact_tag_state" SET (fillfactor = 90);
--> statement-breakpoint
-- Every tag gets its bit: 0, 1, 2 … per tenant, in creation order.
UPDATE "tags" t SET "ordinal" = x.n FROM (SELECT "id", row_number() OVER (PARTITION BY "tenant_id" ORDER BY "created_at", "id") - 1 AS n FROM "tags") x WHERE t."id" = x."id";
--> statement-breakpoint
CREATE FUNCTION "siyu_tag_ordinal"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW."ordinal" IS NULL THEN
    PERFORM pg_advisory_xact_lock(hashtext('siyu-tag-ordinal-' || NEW."tenant_id"::text));
    NEW."ordinal" := coalesce((SELECT max("ordinal") + 1 FROM "tags" WHERE "tenant_id" = NEW."tenant_id"), 0);
  END IF;
  RETURN NEW;
END $$;
--> statement-breakpoint
CREATE TRIGGER "tags_ordinal" BEFORE INSERT ON "tags" FOR EACH ROW EXECUTE FUNCTION "siyu_tag_ordinal"();
--> statement-breakpoint
-- Every contact has its state row from the start, due for the nightly pass, however it was created.
CREATE FUNCTION "siyu_contact_tag_state"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO "contact_tag_state" ("contact_id", "tenant_id", "recheck_at") VALUES (NEW."id", NEW."tenant_id", '-infinity')
  ON CONFLICT ("contact_id") DO UPDATE SET "recheck_at" = '-infinity';
  RETURN NEW;
END $$;
--> statement-breakpoint
CREATE TRIGGER "contacts_tag_state" AFTER INSERT ON "contacts" FOR EACH ROW EXECUTE FUNCTION "siyu_contact_tag_state"();
--> statement-breakpoint
INSERT INTO "contact_tag_state" ("contact_id", "tenant_id", "recheck_at", "tag_bits")
SELECT c."id", c."tenant_id", '-infinity', coalesce((SELECT bit_or(1::bigint << t."ordinal") FROM "contact_tags" ct JOIN "tags" t ON t."id" = ct."tag_id" WHERE ct."contact_id" = c."id" AND t."ordinal" < 63), 0)
FROM "contacts" c ON CONFLICT DO NOTHING;
