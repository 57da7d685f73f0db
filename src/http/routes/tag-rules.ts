import { OpenAPIHono, z } from "@hono/zod-openapi";
import { discardDraft, dryRunDraft, getTagRules, publishDraft, rollbackTo, RuleSetDefinition, saveDraft } from "../../services/tagging/tag-rules";
import { json, jsonBody, problemResponse, route, validationHook } from "../openapi";
import type { AppEnv } from "../types";

const Version = z.object({ version: z.number(), status: z.string(), note: z.string().nullable(), createdAt: z.string(), publishedAt: z.string().nullable(), rules: z.number() }).openapi("TagRuleSetVersion");
const Preview = z.object({ version: z.number(), changes: z.array(z.object({ group: z.string(), tag: z.string(), gains: z.number(), losses: z.number(), sampleGains: z.array(z.string()), sampleLosses: z.array(z.string()) })) }).openapi("TagRulesDryRun");

export function tagRuleRoutes() {
  const app = new OpenAPIHono<AppEnv>({ defaultHook: validationHook });
  app.openapi(
    route("rules:read", {
      method: "get",
      path: "/",
      tags: ["tag rules"],
      summary: "The published rule set, the draft and every version",
      responses: { 200: json(z.object({ published: Version.extend({ definition: z.unknown() }), draft: Version.extend({ definition: z.unknown() }).nullable(), versions: z.array(Version) }), "Rules") },
    }),
    async (c) => c.json(await getTagRules({ ctx: c.get("ctx") }), 200),
  );
  app.openapi(
    route("rules:write", {
      method: "put",
      path: "/draft",
      tags: ["tag rules"],
      summary: "Save the draft rule set (validated; nothing changes until it is published)",
      description: "Body: {rules, params?, needs?, note?} in the language of tagging-rules/ (see its README). A bad rule answers 422 with errors[].field `rules.<rule id>.<path>`.",
      request: { body: jsonBody(RuleSetDefinition) },
      responses: { 200: json(Version, "The draft") },
    }),
    async (c) => c.json(await saveDraft({ ctx: c.get("ctx"), input: c.req.valid("json") }), 200),
  );
  app.openapi(
    route("rules:write", {
      method: "delete",
      path: "/draft",
      tags: ["tag rules"],
      summary: "Discard the draft (kept in the history as discarded; the published rules are untouched)",
      responses: { 200: json(Version, "The discarded draft"), 404: problemResponse("No draft") },
    }),
    async (c) => c.json(await discardDraft({ ctx: c.get("ctx") }), 200),
  );
  app.openapi(
    route("rules:read", {
      method: "post",
      path: "/draft/dry-run",
      tags: ["tag rules"],
      summary: "What publishing the draft would change now: per tag, contacts gaining and losing it, with samples",
      responses: { 200: json(Preview, "Per-tag changes; nothing is written"), 404: problemResponse("No draft") },
    }),
    async (c) => c.json(await dryRunDraft({ ctx: c.get("ctx") }), 200),
  );
  app.openapi(
    route("rules:write", {
      method: "post",
      path: "/draft/publish",
      tags: ["tag rules"],
      summary: "Publish the draft as the new version; every contact is re-tagged (backfill queued)",
      responses: { 200: json(Version, "The published version"), 404: problemResponse("No draft") },
    }),
    async (c) => c.json(await publishDraft({ ctx: c.get("ctx") }), 200),
  );
  app.openapi(
    route("rules:write", {
      method: "post",
      path: "/rollback",
      tags: ["tag rules"],
      summary: "Publish an earlier version again (as a new version); backfill queued",
      request: { body: jsonBody(z.object({ version: z.number().int().min(1) })) },
      responses: { 200: json(Version, "The new published version"), 404: problemResponse("No such published version"), 409: problemResponse("Already published") },
    }),
    async (c) => c.json(await rollbackTo({ ctx: c.get("ctx"), version: c.req.valid("json").version }), 200),
  );
  return app;
}
