import { OpenAPIHono, z } from "@hono/zod-openapi";
import { Hono } from "hono";
import { CallbackRefused, receiveCallback, verifyCallbackUrl } from "../../services/wecom/receive-callback";
import { getWecomSettings, putWecomSettings, PutWecomSettingsInput } from "../../services/wecom/settings";
import { json, jsonBody, problemResponse, route, validationHook } from "../openapi";
import { problem } from "../problem";
import type { AppEnv, HttpDeps } from "../types";

const SettingsView = z
  .object({
    corpId: z.string(),
    agentId: z.number(),
    secretSet: z.boolean(),
    callbackTokenSet: z.boolean(),
    encodingAesKeySet: z.boolean(),
    callbackUrl: z.string(),
    updatedAt: z.string(),
  })
  .openapi("WecomSettings");

export function wecomSettingsRoutes() {
  const app = new OpenAPIHono<AppEnv>({ defaultHook: validationHook });
  app.openapi(
    route("wecom:manage", {
      method: "get",
      path: "/",
      tags: ["wecom"],
      summary: "The tenant's WeCom app (secrets are never returned)",
      responses: { 200: json(SettingsView, "Settings"), 404: problemResponse("Not set up yet") },
    }),
    async (c) => c.json(await getWecomSettings({ ctx: c.get("ctx") }), 200),
  );
  app.openapi(
    route("wecom:manage", {
      method: "put",
      path: "/",
      tags: ["wecom"],
      summary: "Set the tenant's WeCom app: corp id, agent id, secret, callback token and EncodingAESKey",
      description: "Secrets are sealed at rest (AES-256-GCM) and never returned; omit one to keep the stored value. The answer gives the callback URL to enter in the WeCom admin console.",
      request: { body: jsonBody(PutWecomSettingsInput) },
      responses: { 200: json(SettingsView, "Saved") },
    }),
    async (c) => c.json(await putWecomSettings({ ctx: c.get("ctx"), input: c.req.valid("json") }), 200),
  );
  return app;
}

/**
 * WeCom's callback endpoint (unauthenticated: the signature is the authentication). GET answers
 * URL verification with the exact plaintext; POST stores the event and answers 200 with an empty body.
 */
export function wecomCallbackRoutes(deps: HttpDeps) {
  const app = new Hono<AppEnv>();
  const maxBytes = deps.services.config.WECOM_CALLBACK_MAX_BYTES;
  const refused = (c: Parameters<typeof problem>[0], err: unknown) => {
    if (err instanceof CallbackRefused) {
      c.get("logger").warn({ tenant: c.req.param("tenant"), code: err.code, reason: err.detail }, "wecom callback refused");
    }
    throw err;
  };

  app.get("/:tenant", async (c) => {
    // c.req.query() turns a raw "+" into a space; base64 has no spaces, so map them back.
    const q = c.req.query();
    try {
      const plain = await verifyCallbackUrl({ deps: deps.services, slug: c.req.param("tenant"), query: { ...q, echostr: q.echostr?.replace(/ /g, "+") } });
      return c.body(plain, 200, { "content-type": "text/plain; charset=utf-8" });
    } catch (err) {
      return refused(c, err);
    }
  });

  app.post("/:tenant", async (c) => {
    const declared = Number(c.req.header("content-length") ?? "0");
    if (declared > maxBytes) return problem(c, 413, "PAYLOAD_TOO_LARGE", `callback bodies are limited to ${maxBytes} bytes`);
    const buf = await c.req.arrayBuffer();
    if (buf.byteLength > maxBytes) return problem(c, 413, "PAYLOAD_TOO_LARGE", `callback bodies are limited to ${maxBytes} bytes`);
    try {
      const r = await receiveCallback({ deps: deps.services, slug: c.req.param("tenant"), query: c.req.query(), body: new TextDecoder().decode(buf) });
      c.get("logger").info({ callbackId: r.callbackId, duplicate: r.duplicate }, "wecom callback stored");
      // WeCom reads any 200 as received; an empty body is the documented answer for events.
      return c.body(null, 200);
    } catch (err) {
      return refused(c, err);
    }
  });
  return app;
}
