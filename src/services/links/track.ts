import { randomBytes } from "node:crypto";
import { and, eq, inArray } from "drizzle-orm";
import type { DbOrTx } from "../../db/client";
import { trackedLinks } from "../../db/schema/index";
import { findUrls, replaceUrls } from "../../domain/links/urls";
import { AppError } from "../../errors";
import type { Ctx } from "../context";

export interface TrackLinksInput {
  sendId: string;
  postId: string;
  contactId: string | null;
  text: string;
  /** What a click on a URL reports: its article id and topic (article_read). Other URLs report themselves. */
  articles?: Record<string, { articleId: string; topic?: string | undefined }> | undefined;
}

const WHOLE_URL_RE = /^https?:\/\/[^\s/?#]+[^\s]*$/i;

/**
 * 10 URL-safe characters, 60 random bits: short enough for a WeCom message, and with codes only
 * ever created per send nobody can walk them (a guess hits one of N live links in 2^60).
 */
export function newLinkCode(): string {
  return randomBytes(8).toString("base64url").slice(0, 10);
}

/**
 * Rewrite every http(s) URL in a send's text to a short tracked link `${PUBLIC_URL}/l/{code}`, one
 * tracked_links row per (send, url). Idempotent: a retried delivery reuses the codes made the
 * first time, so the copy handed to WeCom is the same. A text that is exactly one URL (a link
 * card's url) is tracked whole. Call inside the delivery's transaction.
 */
export async function trackLinks(tx: DbOrTx, ctx: Ctx, input: TrackLinksInput): Promise<string> {
  // A text that is exactly one URL (a link card's url) is tracked whole, even with raw Chinese in it.
  const found = WHOLE_URL_RE.test(input.text) ? [{ url: input.text, start: 0, end: input.text.length }] : findUrls(input.text);
  if (found.length === 0) return input.text;
  const urls = [...new Set(found.map((f) => f.url))];
  const codes = new Map<string, string>();
  // A fresh code could collide with an existing one (2^-60 per pair); the loop just tries again.
  for (let attempt = 0; attempt < 3 && codes.size < urls.length; attempt++) {
    const missing = urls.filter((u) => !codes.has(u));
    await tx
      .insert(trackedLinks)
      .values(
        missing.map((url) => ({
          code: newLinkCode(),
          tenantId: ctx.tenantId,
          sendId: input.sendId,
          postId: input.postId,
          contactId: input.contactId,
          url,
          articleId: input.articles?.[url]?.articleId ?? null,
          topic: input.articles?.[url]?.topic ?? null,
        })),
      )
      .onConflictDoNothing();
    const rows = await tx
      .select({ code: trackedLinks.code, url: trackedLinks.url })
      .from(trackedLinks)
      .where(and(eq(trackedLinks.tenantId, ctx.tenantId), eq(trackedLinks.sendId, input.sendId), inArray(trackedLinks.url, missing)));
    for (const r of rows) codes.set(r.url, r.code);
  }
  if (codes.size < urls.length) throw new AppError("INTERNAL", "could not allocate tracked link codes");
  const base = ctx.deps.config.publicUrl;
  return replaceUrls(input.text, found, (url) => `${base}/l/${codes.get(url)}`);
}
