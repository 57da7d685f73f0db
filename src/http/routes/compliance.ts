import { OpenAPIHono, z } from "@hono/zod-openapi";
import { checkCopy, CheckInput } from "../../services/compliance/check";
import { json, jsonBody, route, validationHook } from "../openapi";
import type { AppEnv } from "../types";

const Finding = z
  .object({
    term: z.string().openapi({ description: "The list entry found" }),
    matched: z.string().openapi({ description: "The text as written (the disguised form, if any)" }),
    start: z.number().int().openapi({ description: "UTF-16 offset of the match in the original text" }),
    end: z.number().int().openapi({ description: "UTF-16 offset just past the match" }),
    category: z.string(),
    severity: z.enum(["block", "warn"]),
    basis: z.string().openapi({ description: "The law and article" }),
    suggestion: z.string().openapi({ description: "A compliant wording" }),
  })
  .openapi("ComplianceFinding");

const Report = z
  .object({
    verdict: z.enum(["pass", "warn", "block"]),
    findings: z.array(Finding),
    listVersion: z.string().openapi({ description: "Hash of the banned-word lists the text was checked against" }),
  })
  .openapi("ComplianceReport");

export function complianceRoutes() {
  const app = new OpenAPIHono<AppEnv>({ defaultHook: validationHook });
  app.openapi(
    route("compliance:check", {
      method: "post",
      path: "/check",
      tags: ["compliance"],
      summary: "Check copy against the banned advertising words (广告法, 医疗广告管理办法)",
      description:
        "Finds banned terms also when disguised (full width, traditional characters, separators, zero-width characters and emoji between characters, look-alike letters, repeated characters, pinyin). Each finding carries the law, category, severity and a compliant rewrite; `start`/`end` are UTF-16 offsets into the text as sent. The verdict is `block` when any finding's severity blocks under compliance-rules/policy.yaml, `warn` when there are other findings, else `pass`.",
      request: { body: jsonBody(CheckInput) },
      responses: { 200: json(Report, "The report") },
    }),
    async (c) => c.json(await checkCopy({ ctx: c.get("ctx"), input: c.req.valid("json") }), 200),
  );
  return app;
}
