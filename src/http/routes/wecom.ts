import { OpenAPIHono, z } from "@hono/zod-openapi";
import { Hono } from "hono";
import { wecomCallbacks } from "../../metrics";
import { CallbackRefused, receiveCallback, verifyCallbackUrl } from "../../services/wecom/receive-callback";
import { getWecomSettings, putWecomSettings, PutWecomSettingsInput } from "../../services/wecom/settings";
import { getWecomSyncStatus, startWecomSync } from "../../services/wecom/sync";
import { createChannel, CreateChannelInput, listChannels, updateChannel, UpdateChannelInput } from "../../services/wecom/channels";
import { GroupChatTagsInput, listGroupChats, ListGroupChatsInput, setGroupChatTags } from "../../services/wecom/group-chats";
import { IdParam, json, jsonBody, problemResponse, route, validationHook } from "../openapi";
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

const GroupChat = z
  .object({ chatId: z.string(), name: z.string().nullable(), ownerUserId: z.string().nullable(), customerCount: z.number(), memberCount: z.number(), tags: z.array(z.string()), dismissed: z.boolean(), syncedAt: z.string() })
  .openapi("GroupChat");
const ChatParam = z.object({ id: z.string().min(1).max(200).openapi({ param: { name: "id", in: "path" }, description: "The WeCom chat_id" }) });

export function wecomRoutes() {
  const app = new OpenAPIHono<AppEnv>({ defaultHook: validationHook });
  app.openapi(
    route("channels:manage", {
      method: "get",
      path: "/group-chats",
      tags: ["wecom"],
      summary: "Customer group chats (synced from WeCom) with Siyu's labels, by chat id, cursor-paginated",
      request: { query: ListGroupChatsInput },
      responses: { 200: json(z.object({ items: z.array(GroupChat), nextCursor: z.string().nullable() }), "A page of chats") },
    }),
    async (c) => c.json(await listGroupChats({ ctx: c.get("ctx"), input: c.req.valid("query") }), 200),
  );
  app.openapi(
    route("channels:manage", {
      method: "put",
      path: "/group-chats/{id}/tags",
      tags: ["wecom"],
      summary: "Label a group chat (e.g. 祛痘交流群): calendars with audience.groups.tags reach the chats carrying any of their labels",
      request: { params: ChatParam, body: jsonBody(GroupChatTagsInput) },
      responses: { 200: json(GroupChat, "The chat with its labels"), 404: problemResponse("No such group chat") },
    }),
    async (c) => c.json(await setGroupChatTags({ ctx: c.get("ctx"), chatId: c.req.valid("param").id, input: c.req.valid("json") }), 200),
  );
  app.openapi(
    route("wecom:manage", {
      method: "get",
      path: "/settings",
      tags: ["wecom"],
      summary: "The tenant's WeCom app (secrets are never returned)",
      responses: { 200: json(SettingsView, "Settings"), 404: problemResponse("Not set up yet") },
    }),
    async (c) => c.json(await getWecomSettings({ ctx: c.get("ctx") }), 200),
  );
  app.openapi(
    route("wecom:manage", {
      method: "put",
      path: "/settings",
      tags: ["wecom"],
      summary: "Set the tenant's WeCom app: corp id, agent id, secret, callback token and EncodingAESKey",
      description: "Secrets are sealed at rest (AES-256-GCM) and never returned; omit one to keep the stored value. The answer gives the callback URL to enter in the WeCom admin console.",
      request: { body: jsonBody(PutWecomSettingsInput) },
      responses: { 200: json(SettingsView, "Saved") },
    }),
    async (c) => c.json(await putWecomSettings({ ctx: c.get("ctx"), input: c.req.valid("json") }), 200),
  );
  const SyncRun = z
    .object({ id: z.string(), status: z.string(), phase: z.string(), batch: z.number(), totalBatches: z.number(), counts: z.record(z.string(), z.number()), error: z.string().nullable(), startedAt: z.string(), finishedAt: z.string().nullable() })
    .openapi("WecomSyncRun");
  app.openapi(
    route("wecom:manage", {
      method: "post",
      path: "/sync",
      tags: ["wecom"],
      summary: "Start (or resume) a full sync with WeCom: tags both ways, every follow user's customers, every customer group",
      description: "Runs in the wecom worker. A failed or interrupted run resumes from its last page; `restart: true` starts over.",
      request: { body: jsonBody(z.object({ restart: z.boolean().optional() })) },
      responses: { 202: json(SyncRun, "Queued; poll GET /v1/wecom/sync"), 412: problemResponse("WeCom is not set up") },
    }),
    async (c) => c.json(await startWecomSync({ ctx: c.get("ctx"), restart: c.req.valid("json").restart ?? false }), 202),
  );
  app.openapi(
    route("wecom:manage", {
      method: "get",
      path: "/sync",
      tags: ["wecom"],
      summary: "Progress of the latest sync",
      responses: { 200: json(SyncRun, "The latest run"), 404: problemResponse("No sync has run yet") },
    }),
    async (c) => c.json(await getWecomSyncStatus({ ctx: c.get("ctx") }), 200),
  );
  app.openapi(
    route("channels:manage", {
      method: "post",
      path: "/channels",
      tags: ["wecom"],
      summary: "Create a channel QR code (渠道活码) for one or more consultants",
      description: "Contacts who add a consultant through it carry its state as their channel (contacts.sourceState).",
      request: { body: jsonBody(CreateChannelInput) },
      responses: { 201: json(ChannelSchema, "The channel with its QR code"), 409: problemResponse("State already used"), 412: problemResponse("WeCom is not set up") },
    }),
    async (c) => c.json(await createChannel({ ctx: c.get("ctx"), input: c.req.valid("json") }), 201),
  );
  app.openapi(
    route("channels:manage", {
      method: "get",
      path: "/channels",
      tags: ["wecom"],
      summary: "Channels and referral codes, with how many contacts each brought",
      responses: { 200: json(z.object({ items: z.array(ChannelSchema) }), "Newest first") },
    }),
    async (c) => c.json({ items: await listChannels({ ctx: c.get("ctx") }) }, 200),
  );
  app.openapi(
    route("channels:manage", {
      method: "patch",
      path: "/channels/{id}",
      tags: ["wecom"],
      summary: "Set or clear a channel's welcome message (a welcome_message post; sent through the compliance gate)",
      request: { params: IdParam, body: jsonBody(UpdateChannelInput) },
      responses: { 200: json(ChannelSchema, "The channel"), 404: problemResponse("No such channel") },
    }),
    async (c) => c.json(await updateChannel({ ctx: c.get("ctx"), id: c.req.valid("param").id, input: c.req.valid("json") }), 200),
  );
  return app;
}

export const ChannelSchema = z
  .object({ id: z.string(), kind: z.string(), name: z.string(), state: z.string(), qrCode: z.string().nullable(), configId: z.string(), staffUserIds: z.array(z.string()), contactId: z.string().nullable(), welcomePostId: z.string().nullable(), contacts: z.number(), createdAt: z.string() })
  .openapi("WecomChannel");

/**
 * WeCom's callback endpoint (unauthenticated: the signature is the authentication). GET answers
 * URL verification with the exact plaintext; POST stores the event and answers 200 with an empty body.
 */
export function wecomCallbackRoutes(deps: HttpDeps) {
  const app = new Hono<AppEnv>();
  const maxBytes = deps.services.config.WECOM_CALLBACK_MAX_BYTES;
  const refused = (c: Parameters<typeof problem>[0], err: unknown) => {
    if (err instanceof CallbackRefused) {
      wecomCallbacks.inc({ outcome: `refused_${err.code.toLowerCase()}` });
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
      wecomCallbacks.inc({ outcome: r.duplicate ? "duplicate" : "stored" });
      // WeCom reads any 200 as received; an empty body is the documented answer for events.
      return c.body(null, 200);
    } catch (err) {
      return refused(c, err);
    }
  });
  return app;
}
