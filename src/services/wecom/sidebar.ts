import { eq } from "drizzle-orm";
import { z } from "zod";
import { tenants } from "../../db/schema/index";
import { AppError, ValidationError, zodIssues } from "../../errors";
import type { WecomClient } from "../../wecom/api/client";
import { signableUrl, type JsApiSignature } from "../../wecom/api/jsapi";
import { authorizeUrl, FAKE_AUTHORIZE_PATH, FAKE_JSSDK_PATH, WECOM_AUTHORIZE_URL, WECOM_JSSDK_URLS } from "../../wecom/api/oauth";
import { requirePermission, type Ctx, type ServiceDeps } from "../context";
import { loadWecomApp } from "./settings";

/**
 * The WeCom side of the chat sidebar (聊天工具栏): the tenant's app by the slug in the sidebar's
 * URL, where its JS-SDK and sign-in live, and the wx.config / wx.agentConfig signatures of a page.
 */

/** The JS-SDK APIs the sidebar registers (wx.agentConfig's jsApiList). */
export const SIDEBAR_JS_APIS = ["getContext", "getCurExternalContact", "getCurExternalChat", "sendChatMessage"] as const;

export interface SidebarApp {
  tenantId: string;
  slug: string;
  corpId: string;
  agentId: number;
  client: WecomClient;
}

/** The tenant of a sidebar URL and its WeCom app; null when there is no such tenant or it has no WeCom app. */
export async function sidebarApp(deps: ServiceDeps, slug: string): Promise<{ tenantId: string; app: SidebarApp | null } | null> {
  const [t] = await deps.db.select({ id: tenants.id }).from(tenants).where(eq(tenants.slug, slug));
  if (!t) return null;
  const app = await loadWecomApp(deps, t.id);
  if (!app) return { tenantId: t.id, app: null };
  return { tenantId: t.id, app: { tenantId: t.id, slug, corpId: app.corpId, agentId: app.agentId, client: deps.wecomClient(app) } };
}

/** WECOM_JSSDK_URL, else WeCom's own scripts (live) or the fake's stand-in beside its API (sandbox). */
export function jssdkUrls(deps: ServiceDeps, client: WecomClient): string[] {
  const configured = deps.config.WECOM_JSSDK_URL?.split(/[\s,]+/).filter(Boolean);
  if (configured?.length) return configured;
  return deps.config.WECOM_MODE === "sandbox" ? [new URL(FAKE_JSSDK_PATH, client.baseUrl).toString()] : [...WECOM_JSSDK_URLS];
}

/** Where to send a member to sign in with WeCom (the fake's page in sandbox mode). */
export function wecomSignInUrl(deps: ServiceDeps, app: SidebarApp, input: { redirectUri: string; state: string }): string {
  const base = deps.config.WECOM_MODE === "sandbox" ? new URL(FAKE_AUTHORIZE_PATH, app.client.baseUrl).toString() : WECOM_AUTHORIZE_URL;
  return authorizeUrl(base, { corpId: app.corpId, agentId: app.agentId, redirectUri: input.redirectUri, state: input.state });
}

async function clientOf(ctx: Ctx): Promise<{ client: WecomClient; corpId: string; agentId: number }> {
  const app = await loadWecomApp(ctx.deps, ctx.tenantId);
  if (!app) throw new AppError("PRECONDITION_FAILED", "WeCom is not set up for this tenant (PUT /v1/wecom/settings)");
  return { client: ctx.deps.wecomClient(app), corpId: app.corpId, agentId: app.agentId };
}

export const JsapiConfigInput = z.object({
  /** The page's URL as the browser has it (location.href); `#…` is dropped. */
  url: z.url({ protocol: /^https?$/ }).max(2000),
  /** Origins the page may be on: our public URL and the address this request came to. */
  origins: z.array(z.string()).min(1),
  /** Paths the page may be under (the sidebar of this tenant). */
  pathPrefix: z.string().startsWith("/"),
});

export interface JsapiConfig {
  corpId: string;
  agentId: number;
  /** The URL signed (without `#…`). */
  url: string;
  jsApiList: string[];
  config: JsApiSignature;
  agentConfig: JsApiSignature;
}

/**
 * Signatures of one sidebar page for wx.config (corp ticket) and wx.agentConfig (app ticket). Only
 * pages of our own sidebar are signed (no signing oracle for other pages).
 */
export async function jsapiConfig({ ctx, input }: { ctx: Ctx; input: unknown }): Promise<JsapiConfig> {
  requirePermission(ctx, "scripts:use");
  const p = JsapiConfigInput.safeParse(input);
  if (!p.success) throw new ValidationError(zodIssues(p.error.issues));
  const url = signableUrl(p.data.url);
  const u = new URL(url);
  if (!p.data.origins.includes(u.origin) || !(u.pathname === p.data.pathPrefix || u.pathname.startsWith(`${p.data.pathPrefix}/`))) {
    throw new ValidationError([{ field: "url", message: "is not a page of this sidebar" }]);
  }
  const { client, corpId, agentId } = await clientOf(ctx);
  const [config, agentConfig] = await Promise.all([client.jsapi.sign("corp", url), client.jsapi.sign("agent", url)]);
  return { corpId, agentId, url, jsApiList: [...SIDEBAR_JS_APIS], config, agentConfig };
}

export const RefusedSignatureInput = z.object({
  kind: z.enum(["corp", "agent"]),
  /** The JS-SDK's errCode, or the one in its errMsg (`…?e=40093`); 40093 for "invalid signature". */
  errcode: z.number().int(),
  url: z.url().max(2000),
  timestamp: z.number().int(),
  nonceStr: z.string().min(1).max(64),
  signature: z.string().regex(/^[0-9a-f]{40}$/),
});

/**
 * The JS-SDK refused a signature this tenant's page got: when WeCom's code says the ticket is no
 * longer valid and the signature came from the cached ticket, that ticket is dropped so the next
 * signature uses a fresh one (as the client does for the access token on 40014/42001).
 */
export async function refusedSignature({ ctx, input }: { ctx: Ctx; input: unknown }): Promise<{ refreshed: boolean }> {
  requirePermission(ctx, "scripts:use");
  const p = RefusedSignatureInput.safeParse(input);
  if (!p.success) throw new ValidationError(zodIssues(p.error.issues));
  const { client } = await clientOf(ctx);
  const refreshed = await client.jsapi.refused(p.data.kind, p.data.errcode, { url: signableUrl(p.data.url), timestamp: p.data.timestamp, nonceStr: p.data.nonceStr, signature: p.data.signature });
  ctx.logger.warn({ kind: p.data.kind, errcode: p.data.errcode, refreshed }, "the JS-SDK refused a sidebar signature");
  return { refreshed };
}
