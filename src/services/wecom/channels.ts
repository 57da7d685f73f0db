import { randomBytes } from "node:crypto";
import { and, desc, eq, inArray, sql } from "drizzle-orm";
import { z } from "zod";
import { contacts, posts, staff, wecomChannels } from "../../db/schema/index";
import { referralState } from "../../domain/contacts/referral";
import { AppError, ConflictError, isUniqueViolation, NotFoundError, ValidationError, zodIssues } from "../../errors";
import { audit, dbOf, requirePermission, withTransaction, type Ctx } from "../context";
import { loadVisibleContact } from "../contacts/internal";
import { loadWecomApp } from "./settings";

export const CreateChannelInput = z.object({
  name: z.string().trim().min(1).max(30),
  /** Siyu staff ids of the consultants new contacts are routed to (their WeCom userids are used). */
  staffIds: z.array(z.uuid()).min(1).max(100),
  /** The state WeCom echoes back; generated when omitted. At most 30 characters. */
  state: z.string().regex(/^[A-Za-z0-9_-]{1,30}$/, "letters, digits, _ and -, at most 30").optional(),
  /** Add without the consultant confirming (WeCom's default). */
  skipVerify: z.boolean().optional(),
  /** A welcome_message post greeting every contact the code brings (sent only once it is approved). */
  welcomePostId: z.uuid().nullish(),
});
export const UpdateChannelInput = CreateChannelInput.pick({ welcomePostId: true }).required();

export interface ChannelView {
  id: string;
  kind: string;
  name: string;
  state: string;
  qrCode: string | null;
  configId: string;
  staffUserIds: string[];
  contactId: string | null;
  welcomePostId: string | null;
  /** Contacts whose channel is this one. */
  contacts: number;
  createdAt: string;
}

const view = (r: typeof wecomChannels.$inferSelect, count = 0): ChannelView => ({
  id: r.id,
  kind: r.kind,
  name: r.name,
  state: r.state,
  qrCode: r.qrCode,
  configId: r.configId,
  staffUserIds: r.staffUserIds,
  contactId: r.contactId,
  welcomePostId: r.welcomePostId,
  contacts: count,
  createdAt: r.createdAt.toISOString(),
});

async function client(ctx: Ctx) {
  const app = await loadWecomApp(ctx.deps, ctx.tenantId);
  if (!app) throw new AppError("PRECONDITION_FAILED", "set up WeCom first (PUT /v1/wecom/settings)");
  return ctx.deps.wecomClient(app);
}

/** A channel QR code (渠道活码) in WeCom for one or more consultants; contacts who scan it carry its state. */
export async function createChannel({ ctx, input }: { ctx: Ctx; input: unknown }): Promise<ChannelView> {
  requirePermission(ctx, "channels:manage");
  const p = CreateChannelInput.safeParse(input);
  if (!p.success) throw new ValidationError(zodIssues(p.error.issues));
  const v = p.data;
  const rows = await dbOf(ctx).select({ id: staff.id, u: staff.wecomUserId, active: staff.active }).from(staff).where(and(eq(staff.tenantId, ctx.tenantId), inArray(staff.id, v.staffIds)));
  const bad = v.staffIds.filter((id) => !rows.some((r) => r.id === id && r.u && r.active));
  if (bad.length) throw new ValidationError([{ field: "staffIds", message: `not active staff with a WeCom userid: ${bad.join(", ")}` }]);
  if (v.welcomePostId) await checkWelcomePost(ctx, v.welcomePostId);
  const state = v.state ?? `ch_${randomBytes(6).toString("base64url")}`;
  const users = rows.map((r) => r.u!);
  const [taken] = await dbOf(ctx).select({ id: wecomChannels.id }).from(wecomChannels).where(and(eq(wecomChannels.tenantId, ctx.tenantId), eq(wecomChannels.state, state)));
  if (taken) throw new ConflictError("a channel with this state exists", [{ field: "state", message: "already used" }]);
  const way = await (await client(ctx)).addContactWay({ type: users.length === 1 ? 1 : 2, scene: 2, remark: v.name.slice(0, 30), state, user: users, skip_verify: v.skipVerify ?? true });
  return withTransaction(ctx, async (tx, ctx) => {
    try {
      const [row] = await tx.insert(wecomChannels).values({ tenantId: ctx.tenantId, kind: "channel", name: v.name, state, configId: way.config_id, qrCode: way.qr_code ?? null, staffUserIds: users, welcomePostId: v.welcomePostId ?? null }).returning();
      await audit(tx, ctx, { action: "channel.create", entityType: "wecom_channel", entityId: row!.id, after: { name: v.name, state, staffUserIds: users, welcomePostId: v.welcomePostId ?? null } });
      return view(row!);
    } catch (err) {
      if (isUniqueViolation(err)) throw new ConflictError("a channel with this state exists", [{ field: "state", message: "already used" }]);
      throw err;
    }
  });
}

/** A welcome post must be this tenant's post of kind welcome_message (approval is checked at each send). */
async function checkWelcomePost(ctx: Ctx, postId: string): Promise<void> {
  const [p] = await dbOf(ctx).select({ kind: posts.kind }).from(posts).where(and(eq(posts.tenantId, ctx.tenantId), eq(posts.id, postId)));
  if (!p) throw new ValidationError([{ field: "welcomePostId", message: "no such post" }]);
  if (p.kind !== "welcome_message") throw new ValidationError([{ field: "welcomePostId", message: `is a ${p.kind}, not a welcome_message` }]);
}

/** Set or clear a channel's welcome message. */
export async function updateChannel({ ctx, id, input }: { ctx: Ctx; id: string; input: unknown }): Promise<ChannelView> {
  requirePermission(ctx, "channels:manage");
  const p = UpdateChannelInput.safeParse(input);
  if (!p.success) throw new ValidationError(zodIssues(p.error.issues));
  if (p.data.welcomePostId) await checkWelcomePost(ctx, p.data.welcomePostId);
  return withTransaction(ctx, async (tx, ctx) => {
    const [before] = await tx.select().from(wecomChannels).where(and(eq(wecomChannels.tenantId, ctx.tenantId), eq(wecomChannels.id, id))).for("update");
    if (!before) throw new NotFoundError("no such channel");
    const [row] = await tx.update(wecomChannels).set({ welcomePostId: p.data.welcomePostId ?? null }).where(eq(wecomChannels.id, id)).returning();
    await audit(tx, ctx, { action: "channel.update", entityType: "wecom_channel", entityId: id, before: { welcomePostId: before.welcomePostId }, after: { welcomePostId: row!.welcomePostId } });
    return view(row!);
  });
}

export async function listChannels({ ctx }: { ctx: Ctx }): Promise<ChannelView[]> {
  requirePermission(ctx, "channels:manage");
  const rows = await dbOf(ctx)
    .select({ ch: wecomChannels, n: sql<number>`(select count(*)::int from ${contacts} where ${contacts.tenantId} = ${wecomChannels.tenantId} and ${contacts.sourceState} = ${wecomChannels.state})` })
    .from(wecomChannels)
    .where(eq(wecomChannels.tenantId, ctx.tenantId))
    .orderBy(desc(wecomChannels.createdAt))
    .limit(500);
  return rows.map((r) => view(r.ch, r.n));
}

/**
 * A contact's personal referral code (转介绍): a contact way for the contact's consultant whose state
 * names the contact, so friends who scan it are linked to the referrer. Made once, then reused.
 */
export async function referralCode({ ctx, contactId }: { ctx: Ctx; contactId: string }): Promise<ChannelView> {
  requirePermission(ctx, "contacts:write");
  const contact = await loadVisibleContact(dbOf(ctx), ctx, contactId);
  const [existing] = await dbOf(ctx).select().from(wecomChannels).where(and(eq(wecomChannels.tenantId, ctx.tenantId), eq(wecomChannels.kind, "referral"), eq(wecomChannels.contactId, contactId)));
  if (existing) return view(existing);
  if (!contact.ownerStaffId) throw new AppError("PRECONDITION_FAILED", "the contact has no consultant yet: assign one, then make the referral code");
  const [owner] = await dbOf(ctx).select({ u: staff.wecomUserId }).from(staff).where(and(eq(staff.tenantId, ctx.tenantId), eq(staff.id, contact.ownerStaffId)));
  if (!owner?.u) throw new AppError("PRECONDITION_FAILED", "the contact's consultant has no WeCom userid");
  const state = referralState(contactId);
  const way = await (await client(ctx)).addContactWay({ type: 1, scene: 2, remark: "转介绍", state, user: [owner.u], skip_verify: true });
  return withTransaction(ctx, async (tx, ctx) => {
    const [row] = await tx
      .insert(wecomChannels)
      .values({ tenantId: ctx.tenantId, kind: "referral", name: `转介绍 ${contact.name ?? contactId.slice(0, 8)}`, state, configId: way.config_id, qrCode: way.qr_code ?? null, staffUserIds: [owner.u!], contactId })
      .onConflictDoNothing()
      .returning();
    if (!row) {
      const [again] = await tx.select().from(wecomChannels).where(and(eq(wecomChannels.tenantId, ctx.tenantId), eq(wecomChannels.state, state)));
      return view(again!);
    }
    await audit(tx, ctx, { action: "channel.create", entityType: "wecom_channel", entityId: row.id, after: { kind: "referral", contactId, state } });
    return view(row);
  });
}
