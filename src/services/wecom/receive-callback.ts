import { eq, sql } from "drizzle-orm";
import { wecomCallbacks } from "../../db/schema/index";
import { AppError } from "../../errors";
import { jobId } from "../../queue/catalog";
import { callbackDedupeKey, CallbackParseError, parseCallbackEnvelope, parseCallbackXml } from "../../wecom/callback/index";
import { aesKeyFromEncodingAesKey, decryptMessage, verifySignature, WecomCryptoError } from "../../wecom/crypto";
import type { ServiceDeps } from "../context";
import { loadWecomAppBySlug, type WecomApp } from "./settings";

export interface CallbackQuery {
  msg_signature?: string | undefined;
  timestamp?: string | undefined;
  nonce?: string | undefined;
  echostr?: string | undefined;
}

/** Why a callback was refused; the route answers with its status and WeCom will retry (or the admin sees it). */
export class CallbackRefused extends AppError {}

async function appFor(deps: ServiceDeps, slug: string): Promise<WecomApp> {
  const app = await loadWecomAppBySlug(deps, slug);
  if (!app) throw new CallbackRefused("NOT_FOUND", `no WeCom app is set up for tenant "${slug}"`);
  return app;
}

function checkParams(deps: ServiceDeps, q: CallbackQuery, needEcho: boolean): { signature: string; timestamp: string; nonce: string } {
  const missing = (["msg_signature", "timestamp", "nonce", ...(needEcho ? ["echostr"] : [])] as const).filter((k) => !q[k as keyof CallbackQuery]);
  if (missing.length) {
    throw new CallbackRefused("MALFORMED_REQUEST", `missing query parameter ${missing.join(", ")}`, { issues: missing.map((field) => ({ field, message: "is required" })) });
  }
  const ts = Number(q.timestamp);
  const window = deps.config.WECOM_CALLBACK_WINDOW_SECONDS;
  if (!Number.isInteger(ts) || Math.abs(deps.now().getTime() / 1000 - ts) > window) {
    throw new CallbackRefused("UNAUTHENTICATED", `timestamp is outside the ${window}-second window`, { issues: [{ field: "timestamp", message: "stale or in the future" }] });
  }
  return { signature: q.msg_signature!, timestamp: q.timestamp!, nonce: q.nonce! };
}

function open(app: WecomApp, encrypt: string, q: { signature: string; timestamp: string; nonce: string }): string {
  if (!verifySignature(app.callbackToken, q.timestamp, q.nonce, encrypt, q.signature)) {
    throw new CallbackRefused("UNAUTHENTICATED", "msg_signature does not match", { issues: [{ field: "msg_signature", message: "does not match" }] });
  }
  try {
    // The library WeCom publishes does not check the receive id; we do (it must be our corp).
    return decryptMessage(aesKeyFromEncodingAesKey(app.encodingAesKey), encrypt, app.corpId).message;
  } catch (err) {
    if (err instanceof WecomCryptoError && err.code === -40005) throw new CallbackRefused("FORBIDDEN", "the message was encrypted for another corp", { cause: err });
    if (err instanceof WecomCryptoError) throw new CallbackRefused("MALFORMED_REQUEST", `cannot decrypt: ${err.message}`, { cause: err });
    throw err;
  }
}

/** GET: URL verification. Returns the exact plaintext WeCom expects as the body. */
export async function verifyCallbackUrl({ deps, slug, query }: { deps: ServiceDeps; slug: string; query: CallbackQuery }): Promise<string> {
  const q = checkParams(deps, query, true);
  const app = await appFor(deps, slug);
  return open(app, query.echostr!, q);
}

export interface ReceiveResult {
  callbackId: string;
  duplicate: boolean;
}

/**
 * POST: verify, decrypt, parse, store once (dedupe key per tenant), enqueue. Nothing is stored when
 * any check fails. A retried delivery is counted, not stored again.
 */
export async function receiveCallback({ deps, slug, query, body }: { deps: ServiceDeps; slug: string; query: CallbackQuery; body: string }): Promise<ReceiveResult> {
  const q = checkParams(deps, query, false);
  const app = await appFor(deps, slug);
  let envelope;
  try {
    envelope = parseCallbackEnvelope(body, { maxBytes: deps.config.WECOM_CALLBACK_MAX_BYTES });
  } catch (err) {
    if (err instanceof CallbackParseError) throw new CallbackRefused("MALFORMED_REQUEST", `bad envelope: ${err.message}`, { cause: err });
    throw err;
  }
  const plaintext = open(app, envelope.encrypt, q);
  let event;
  try {
    event = parseCallbackXml(plaintext);
  } catch (err) {
    if (err instanceof CallbackParseError) throw new CallbackRefused("MALFORMED_REQUEST", `bad event: ${err.message}`, { cause: err });
    throw err;
  }
  const dedupeKey = callbackDedupeKey(event);
  const [row] = await deps.db
    .insert(wecomCallbacks)
    .values({
      tenantId: app.tenantId,
      dedupeKey,
      kind: event.kind,
      changeType: "changeType" in event ? (event.changeType ?? null) : null,
      plaintext,
      decoded: event as unknown as Record<string, unknown>,
    })
    .onConflictDoUpdate({ target: [wecomCallbacks.tenantId, wecomCallbacks.dedupeKey], set: { deliveries: sql`${wecomCallbacks.deliveries} + 1` } })
    .returning({ id: wecomCallbacks.id, deliveries: wecomCallbacks.deliveries, processedAt: wecomCallbacks.processedAt });
  const duplicate = row!.deliveries > 1;
  // Two edits in the same second have the same plaintext as a retry. Events whose handling only
  // re-reads WeCom's current state are applied again on every delivery, so none is lost; the
  // others stay applied once.
  const rereads = event.kind === "external_tag" || (event.kind === "external_contact" && event.changeType === "edit_external_contact");
  let processedAt = row!.processedAt;
  if (duplicate && rereads && processedAt) {
    await deps.db.update(wecomCallbacks).set({ processedAt: null }).where(eq(wecomCallbacks.id, row!.id));
    processedAt = null;
  }
  if (!processedAt) {
    await deps.producer
      .enqueue("process-wecom-callback", { tenantId: app.tenantId, callbackId: row!.id }, { jobId: jobId("wc", row!.id, String(row!.deliveries)) })
      .catch((err: Error) => deps.logger.warn({ err: err.message, callbackId: row!.id }, "callback stored but not enqueued; the sweeper will enqueue it"));
  }
  return { callbackId: row!.id, duplicate };
}
