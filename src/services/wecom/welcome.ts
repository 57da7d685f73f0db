import { and, eq } from "drizzle-orm";
import { contacts, posts, wecomChannels } from "../../db/schema/index";
import { renderPost } from "../../domain/compliance/posts";
import type { WecomApp } from "./settings";
import { audit, type Ctx } from "../context";
import { assertSendable, SendRefused } from "../posts/posts";

export type WelcomeOutcome = "none" | "sent" | "refused" | "failed";

/**
 * Greet a contact who came through a channel QR code with the channel's welcome message: the
 * post must pass the compliance gate (approved, unchanged, no new blocking term), then it is
 * filled with the contact's name and sent with WeCom's single-use welcome code (valid 20 s, so
 * it is never retried). Every send and refusal is audited.
 */
export async function sendChannelWelcome(ctx: Ctx, app: WecomApp, input: { state: string; welcomeCode: string; externalUserId: string }): Promise<WelcomeOutcome> {
  const db = ctx.deps.db;
  const [channel] = await db.select().from(wecomChannels).where(and(eq(wecomChannels.tenantId, ctx.tenantId), eq(wecomChannels.state, input.state)));
  if (!channel?.welcomePostId) return "none";
  const [post] = await db.select().from(posts).where(and(eq(posts.tenantId, ctx.tenantId), eq(posts.id, channel.welcomePostId)));
  if (!post) return "none";
  try {
    await db.transaction((tx) => assertSendable(tx, { ...ctx, tx }, post.id, { title: post.title, body: post.body }));
  } catch (err) {
    if (err instanceof SendRefused) return "refused";
    throw err;
  }
  const [contact] = await db.select({ id: contacts.id, name: contacts.name }).from(contacts).where(and(eq(contacts.tenantId, ctx.tenantId), eq(contacts.externalUserId, input.externalUserId)));
  const name = contact?.name ?? "";
  const text = renderPost(post.body, { ...post.sampleData, name, nickname: name });
  try {
    await ctx.deps.wecomClient(app).sendWelcomeMsg({ welcomeCode: input.welcomeCode, text: { content: text } });
  } catch (err) {
    ctx.logger.warn({ err: (err as Error).message, postId: post.id, channel: channel.id }, "welcome message not sent");
    await audit(db, ctx, { action: "post.send.failed", entityType: "post", entityId: post.id, after: { kind: "welcome", channelId: channel.id, contactId: contact?.id ?? null, error: (err as Error).message.slice(0, 300) } });
    return "failed";
  }
  await audit(db, ctx, { action: "post.send", entityType: "post", entityId: post.id, after: { kind: "welcome", channelId: channel.id, contactId: contact?.id ?? null, contentHash: post.contentHash } });
  return "sent";
}
