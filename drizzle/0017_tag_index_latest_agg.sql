DROP INDEX "contact_tags_tenant_tag_contact_idx";--> statement-breakpoint
CREATE INDEX "contact_tags_tag_contact_idx" ON "contact_tags" USING btree ("tag_id","contact_id");--> statement-breakpoint
-- siyu_latest(at, id, v): v of the row with the greatest (at, id), the rules' `last` metric in the
-- set-based evaluator. An ordered aggregate (array_agg(v order by at desc, id desc))[1] starts a
-- sort for every contact of a chunk even when no event matches its filter; this one only steps on
-- the events that match.
CREATE TYPE "siyu_latest_state" AS ("at" timestamptz, "id" uuid, "v" float8);--> statement-breakpoint
CREATE FUNCTION "siyu_latest_step"("s" "siyu_latest_state", "at" timestamptz, "id" uuid, "v" float8) RETURNS "siyu_latest_state"
  LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT CASE WHEN s IS NULL OR (at, id) > ((s).at, (s).id) THEN ROW(at, id, v)::siyu_latest_state ELSE s END
$$;--> statement-breakpoint
CREATE FUNCTION "siyu_latest_final"("s" "siyu_latest_state") RETURNS float8
  LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT (s).v $$;--> statement-breakpoint
CREATE AGGREGATE "siyu_latest"(timestamptz, uuid, float8) (SFUNC = "siyu_latest_step", STYPE = "siyu_latest_state", FINALFUNC = "siyu_latest_final");
