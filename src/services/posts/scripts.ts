import { and, desc, eq, inArray, sql } from "drizzle-orm";
import { z } from "zod";
import { posts } from "../../db/schema/index";
import { renderPost } from "../../domain/compliance/posts";
import { ConflictError, NotFoundError, ValidationError, zodIssues } from "../../errors";
import { loadVisibleContact } from "../contacts/internal";
import { audit, dbOf, requirePermission, withTransaction, type Ctx } from "../context";
import { cursorText, decodeCursor, encodeCursor, type Page } from "../pagination";
import { sidebarGroupChat } from "../wecom/sidebar-group";
import { assertSendable, SendRefused, type GateRecipient } from "./posts";

/**
 * The script library (话术库) of the chat sidebar: posts of kind `one_to_one`, written and reviewed
 * like any copy. The library lists the approved ones; a consultant's tap releases one through the
 * send gate (approved, every level by someone else, the content still the approved content and the
 * one the consultant saw, no blocking term in the lists in use, the contact not opted out), audited,
 * and only then is the text handed to the page, which puts it into the chat (sendChatMessage).
 */

export const SCRIPT_KIND = "one_to_one" as const;
/** Statuses of approved copy (scheduled and sent posts stay approved: approval binds to the content). */
const APPROVED = ["approved", "scheduled", "sent"] as const;
const PREVIEW_CHARS = 120;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export interface ScriptView {
  id: string;
  title: string | null;
  /** The start of the copy as it will read in this chat (variables filled as at release). */
  preview: string;
  /** What the consultant saw: a release names it, and is refused when the script changed since. */
  contentHash: string;
  updatedAt: string;
}

export const ListScriptsInput = z.object({
  cursor: z.string().max(500).optional(),
  limit: z.coerce.number().int().min(1).max(100).default(20),
  /** The customer of the chat: previews read as they will be sent ({{name}} filled; empty in a group). */
  name: z.string().max(100).optional(),
});

/** The copy as a release would render it (variables filled), cut short. */
function previewOf(post: { body: string; sampleData: Record<string, unknown> }, vars: Record<string, unknown>): string {
  let text: string;
  try {
    text = renderPost(post.body, { ...post.sampleData, ...vars });
  } catch {
    text = post.body;
  }
  return text.length > PREVIEW_CHARS ? `${text.slice(0, PREVIEW_CHARS)}…` : text;
}

/** Approved scripts, newest first (cursor paging). */
export async function listScripts({ ctx, input }: { ctx: Ctx; input?: unknown }): Promise<Page<ScriptView>> {
  requirePermission(ctx, "scripts:use");
  const p = ListScriptsInput.safeParse(input ?? {});
  if (!p.success) throw new ValidationError(zodIssues(p.error.issues));
  const name = p.data.name ?? "";
  const vars = { name, nickname: name, consultant: ctx.actor.kind === "staff" ? ctx.actor.name : "" };
  const after = decodeCursor(p.data.cursor);
  if (p.data.cursor && !after) throw new ValidationError([{ field: "cursor", message: "is not a cursor this list gave" }]);
  const rows = await dbOf(ctx)
    .select({ post: posts, at: cursorText(posts.createdAt) })
    .from(posts)
    .where(
      and(
        eq(posts.tenantId, ctx.tenantId),
        eq(posts.kind, SCRIPT_KIND),
        inArray(posts.status, [...APPROVED]),
        after ? sql`(${posts.createdAt}, ${posts.id}) < (${after.at}::timestamptz, ${after.id}::uuid)` : undefined,
      ),
    )
    .orderBy(desc(posts.createdAt), desc(posts.id))
    .limit(p.data.limit + 1);
  const page = rows.slice(0, p.data.limit);
  const last = page[page.length - 1];
  return {
    items: page.map(({ post }) => ({
      id: post.id,
      title: post.title,
      preview: previewOf(post, vars),
      contentHash: post.contentHash,
      updatedAt: post.updatedAt.toISOString(),
    })),
    nextCursor: rows.length > p.data.limit && last ? encodeCursor(last.at, last.post.id) : null,
  };
}

export const ReleaseScriptInput = z
  .object({
    /** The content hash the library showed: a script changed since is refused. */
    contentHash: z.string().regex(/^[0-9a-f]{64}$/, "a content hash the library gave"),
    /** The customer of the single chat (their name fills {{name}}; an opt-out refuses marketing copy). */
    contactId: z.uuid().optional(),
    /** The customer group of a group chat. */
    chatId: z.string().min(1).max(200).optional(),
  })
  .strict()
  .refine((v) => !(v.contactId && v.chatId), { message: "a chat is either a single chat (contactId) or a group (chatId)", path: ["chatId"] });

/** Why a release was refused: changed since approval (or since the library was opened), not approved, or the gate's other checks. */
export type ScriptRefusal = "changed" | "not_approved" | "gate";

export class ScriptRefused extends ConflictError {
  constructor(
    readonly reason: ScriptRefusal,
    detail: string,
  ) {
    super(detail, [{ field: "contentHash", message: detail }]);
  }
}

/**
 * Release one script into a chat: re-check the gate now, audit, return the text to insert. Refused
 * (ScriptRefused, 409, audited as post.send.refused): the content is no longer what the consultant
 * saw or what was approved, the script is not approved, or the gate finds another reason.
 * Consultants: only into chats with their own contacts or groups (others: 404).
 */
export async function releaseScript({ ctx, id, input }: { ctx: Ctx; id: string; input: unknown }): Promise<{ postId: string; contentHash: string; text: string }> {
  requirePermission(ctx, "scripts:use");
  const p = ReleaseScriptInput.safeParse(input);
  if (!p.success) throw new ValidationError(zodIssues(p.error.issues));
  if (!UUID.test(id)) throw new NotFoundError("script");
  const db = dbOf(ctx);
  const contact = p.data.contactId ? await loadVisibleContact(db, ctx, p.data.contactId) : null;
  if (contact?.deletedAt) throw new NotFoundError("contact");
  if (p.data.chatId && !(await sidebarGroupChat({ ctx, chatId: p.data.chatId }))) throw new NotFoundError("group chat");
  const where = { contactId: contact?.id ?? null, chatId: p.data.chatId ?? null };

  const [post] = await db.select().from(posts).where(and(eq(posts.tenantId, ctx.tenantId), eq(posts.id, id)));
  if (!post || post.kind !== SCRIPT_KIND) throw new NotFoundError("script");
  if (post.contentHash !== p.data.contentHash) {
    const detail = (APPROVED as readonly string[]).includes(post.status) ? "the script changed since the library was opened" : `the script changed after approval and is ${post.status} now`;
    await audit(ctx.deps.db, ctx, { action: "post.send.refused", entityType: "post", entityId: id, after: { reason: detail, channel: "sidebar", seen: p.data.contentHash, current: post.contentHash, ...where } });
    ctx.logger.warn({ postId: id, reason: detail }, "script release refused");
    throw new ScriptRefused("changed", detail);
  }
  const recipient: GateRecipient | undefined = contact ? { contactId: contact.id, service: false } : undefined;
  return withTransaction(ctx, async (tx, ctx) => {
    let approved;
    try {
      // The gate compares the content about to be sent with the approved content, and audits a refusal.
      approved = await assertSendable(tx, ctx, id, { title: post.title, body: post.body }, recipient);
    } catch (err) {
      if (!(err instanceof SendRefused)) throw err;
      const reason: ScriptRefusal = /differs from the approved content/.test(err.message) ? "changed" : /not approved/.test(err.message) ? "not_approved" : "gate";
      throw new ScriptRefused(reason, err.message);
    }
    const name = contact?.name ?? "";
    const consultant = ctx.actor.kind === "staff" ? ctx.actor.name : "";
    const text = renderPost(approved.body, { ...approved.sampleData, name, nickname: name, consultant });
    await audit(tx, ctx, { action: "post.script.release", entityType: "post", entityId: id, after: { contentHash: approved.contentHash, channel: "sidebar", ...where } });
    return { postId: id, contentHash: approved.contentHash, text };
  });
}
