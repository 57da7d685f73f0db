import { createHash } from "node:crypto";
import type { Tx } from "../../db/client";
import type { posts } from "../../db/schema/index";
import { analyzeTemplate, entryAttachments, MissingVariableError, renderEntry, RECIPIENT_VARIABLES, type CalendarEntry } from "../../domain/calendars/index";
import { renderPost } from "../../domain/compliance/posts";
import { perRecipientCopy } from "../../domain/delivery/schedule";
import { findUrls } from "../../domain/links/urls";
import type { Attachment } from "../../wecom/api/types";
import type { Ctx } from "../context";
import { trackLinks } from "../links/track";
import { loadWecomApp } from "../wecom/settings";

/**
 * The copy of a send: the approved post's body (the template the reviewers approved, which the
 * gate compares) rendered with the entry's fixed variables and the recipient's own (name,
 * nickname, consultant, clinic, link), links rewritten to tracked short links per send, plus the
 * attachment the entry's kind needs (a link card, an image).
 */

type PostRow = typeof posts.$inferSelect;

/** One recipient as the renderer needs it. */
export interface Recipient {
  sendId: string;
  contactId: string | null;
  chatId: string | null;
  externalUserId: string | null;
  name: string | null;
  nickname: string | null;
  clinic: string | null;
}

export interface Copy {
  text: string;
  attachments: Attachment[];
}

export const TEXT_MAX_BYTES = 4000;

/** Values that differ per recipient ({{consultant}} is the sender's name: the same for a whole batch). */
const RECIPIENT_KEYS = Object.keys(RECIPIENT_VARIABLES).filter((k) => k !== "consultant");

/** The entry as approved: its definition with the post's body (what the reviewers approved and the gate compares) as template. */
const approvedEntry = (post: PostRow, def: CalendarEntry): CalendarEntry => ({ ...def, template: post.body });

/**
 * Whether the post goes out as one WeCom message per recipient: a mass message carries one text
 * for all its recipients, so copy that names the recipient, or carries a link (tracked per send:
 * a link card, {{link}}, a URL in the text), cannot be shared. Everything else goes out as one
 * message per sender and minute. Group chats have no per-recipient values: only links split them.
 */
export function sendsPerRecipient(post: PostRow, def: CalendarEntry | null, group: boolean): boolean {
  if (def?.link) return true;
  if (def) {
    if (!group && analyzeTemplate(post.body).variables.some((v) => RECIPIENT_KEYS.includes(v))) return true;
    try {
      return findUrls(renderCopy(post, def, null, "顾问")).length > 0;
    } catch (err) {
      if (err instanceof MissingVariableError) return true;
      throw err;
    }
  }
  if (group) return findUrls(renderPost(post.body, post.sampleData)).length > 0;
  return perRecipientCopy(post.body, renderPost(post.body, post.sampleData));
}

/**
 * The text before link tracking for one recipient (null: the shared copy of a batch, or a group
 * chat): the entry's renderEntry with the recipient's values (fixed values win, fallbacks fill
 * gaps; MissingVariableError when neither), or for a plain post its template with sampleData.
 */
export function renderCopy(post: PostRow, def: CalendarEntry | null, r: Recipient | null, consultant: string | null): string {
  if (def) {
    const vars: Record<string, unknown> = { ...(consultant ? { consultant } : {}), ...(r ? { name: r.name, nickname: r.nickname ?? r.name, clinic: r.clinic } : {}) };
    return renderEntry(approvedEntry(post, def), vars);
  }
  const own = r ? { name: r.name ?? "", nickname: r.nickname ?? r.name ?? "", ...(r.clinic ? { clinic: r.clinic } : {}) } : {};
  return renderPost(post.body, { ...post.sampleData, ...own, ...(consultant ? { consultant } : {}) });
}

/**
 * The entry's attachments for WeCom: a link card (article, livestream), an image, or a
 * mini-program card, whose cover WeCom wants as uploaded media (pic_media_id: coverMediaId). A
 * card whose cover cannot be had (no picUrl, unreachable, not a JPG/PNG) goes without the card:
 * the text carries the entry.
 */
async function attachmentsOf(ctx: Ctx, def: CalendarEntry | null, link?: string): Promise<Attachment[]> {
  if (!def) return [];
  const out: Attachment[] = [];
  for (const a of entryAttachments(def, link ? { link } : {})) {
    if (a.msgtype !== "miniprogram") {
      out.push(a as Attachment);
      continue;
    }
    const media = a.miniprogram.picUrl ? await coverMediaId(ctx, a.miniprogram.picUrl) : null;
    if (media) out.push({ msgtype: "miniprogram", miniprogram: { title: a.miniprogram.title, pic_media_id: media, appid: a.miniprogram.appid, page: a.miniprogram.page } });
    else ctx.logger.warn({ entry: def.key, picUrl: a.miniprogram.picUrl ?? null }, "mini-program card sent without its card: no cover image could be uploaded");
  }
  return out;
}

/** Covers uploaded per tenant (one WeCom corp each) and picture, reused while WeCom keeps them (3 days; reuploaded after 2.5). */
const covers = new Map<string, { mediaId: string; until: number }>();
const COVER_TTL_MS = 60 * 3_600_000;
const COVER_MAX_BYTES = 10 * 1024 * 1024;

/** Fetch a mini-program cover (JPG or PNG, at most 10 MB) and upload it to WeCom as temporary media. */
export async function coverMediaId(ctx: Ctx, picUrl: string): Promise<string | null> {
  const key = `${ctx.tenantId} ${picUrl}`;
  const now = ctx.deps.now().getTime();
  const hit = covers.get(key);
  if (hit && hit.until > now) return hit.mediaId;
  const app = await loadWecomApp(ctx.deps, ctx.tenantId);
  if (!app) return null;
  try {
    const res = await fetch(picUrl, { signal: AbortSignal.timeout(10_000), redirect: "follow" });
    const type = (res.headers.get("content-type") ?? "").split(";")[0]!.trim().toLowerCase();
    if (!res.ok || !/^image\/(jpeg|png)$/.test(type)) throw new Error(`HTTP ${res.status} ${type || "no content-type"}: not a JPG or PNG`);
    const data = new Uint8Array(await res.arrayBuffer());
    if (!data.length || data.length > COVER_MAX_BYTES) throw new Error(`${data.length} bytes: WeCom takes 1 byte to 10 MB`);
    const name = new URL(picUrl).pathname.split("/").pop() || `cover.${type === "image/png" ? "png" : "jpg"}`;
    const r = await ctx.deps.wecomClient(app).uploadMedia({ type: "image", filename: name, contentType: type, data });
    covers.set(key, { mediaId: r.media_id, until: now + COVER_TTL_MS });
    return r.media_id;
  } catch (err) {
    ctx.logger.warn({ picUrl, err: (err as Error).message }, "could not upload a mini-program cover");
    return null;
  }
}

/**
 * The final copy of one send (per-recipient messages) with its links tracked (tracked_links rows
 * in the caller's transaction; a retry reuses the codes, so the copy is the same), or of a batch
 * (`r` null: no links, by sendsPerRecipient).
 */
export async function finishCopy(tx: Tx, ctx: Ctx, post: PostRow, def: CalendarEntry | null, r: Recipient | null, consultant: string | null): Promise<Copy> {
  const text = renderCopy(post, def, r, consultant);
  if (!r) return { text, attachments: await attachmentsOf(ctx, def) };
  const articles = def?.link ? { [def.link.url]: { articleId: def.link.articleId ?? def.key, topic: def.link.topic } } : undefined;
  const track = (t: string) => trackLinks(tx, ctx, { sendId: r.sendId, postId: post.id, contactId: r.contactId, text: t, articles });
  const link = def?.link ? await track(def.link.url) : undefined;
  return { text: await track(text), attachments: await attachmentsOf(ctx, def, link) };
}

/** What sends.rendered_hash holds: SHA-256 of the text handed to WeCom (get_groupmsg_list_v2 returns it). */
export function textHash(text: string): string {
  return createHash("sha256").update(text).digest("hex");
}

export function utf8Bytes(s: string): number {
  return Buffer.byteLength(s, "utf8");
}
