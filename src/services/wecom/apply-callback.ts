import { and, eq, isNotNull, isNull, sql } from "drizzle-orm";
import type { Tx } from "../../db/client";
import { contactFollows, contacts, contactTags, staff, tagGroups, tagHistory, tags, wecomCallbacks, wecomGroupChats } from "../../db/schema/index";
import { referrerFromState } from "../../domain/contacts/referral";
import { WecomError } from "../../wecom/api/errors";
import type { ExternalContactDetail } from "../../wecom/api/types";
import type { WecomCallbackEvent } from "../../wecom/callback/index";
import { audit, systemCtx, withTransaction, type Ctx, type ServiceDeps } from "../context";
import { auditSnapshot } from "../contacts/schemas";
import { ingestEvents } from "../events/ingest";
import { loadWecomApp, type WecomApp } from "./settings";
import { upsertFollow } from "./follows";
import { reconcileTags } from "./sync";
import { markTagsDue } from "../tagging/tag-state";
import { sendChannelWelcome } from "./welcome";
import { leadFromWecomAdd } from "../leads/sources";
import { recordReferralJoined } from "../conversions/referrals";

export type ApplyOutcome = "applied" | "already-processed" | "missing";

const GENDER: Record<number, "male" | "female" | "unknown"> = { 0: "unknown", 1: "male", 2: "female" };
/** Customers that WeCom no longer knows or that have no relation with the staff: details cannot be fetched. */
const GONE = new Set([40096, 84061]);

/**
 * Apply one stored callback. Each step is idempotent (contact upsert, events with keys derived from
 * the callback's dedupe key), so a retried job converges; processed_at is set last.
 */
export async function applyWecomCallback({ deps, tenantId, callbackId }: { deps: ServiceDeps; tenantId: string; callbackId: string }): Promise<ApplyOutcome> {
  const [row] = await deps.db
    .select()
    .from(wecomCallbacks)
    .where(and(eq(wecomCallbacks.tenantId, tenantId), eq(wecomCallbacks.id, callbackId)));
  if (!row) return "missing";
  if (row.processedAt) return "already-processed";
  const ctx = systemCtx(deps, tenantId, "wecom");
  const event = row.decoded as unknown as WecomCallbackEvent;
  const key = `wecom-${row.dedupeKey}`.slice(0, 200);
  const at = new Date(("createTime" in event && typeof event.createTime === "number" ? event.createTime : Math.floor(row.receivedAt.getTime() / 1000)) * 1000).toISOString();

  if (event.kind === "external_contact") {
    switch (event.changeType) {
      case "add_external_contact":
      case "add_half_external_contact":
      case "edit_external_contact": {
        const app = await loadWecomApp(deps, tenantId);
        const detail = app ? await fetchDetail(deps, app, event.externalUserId) : null;
        await upsertContact(ctx, { externalUserId: event.externalUserId, userId: event.userId, state: event.changeType === "edit_external_contact" ? undefined : event.state, detail, at: new Date(at), follow: true, added: event.changeType !== "edit_external_contact" });
        // The channel's welcome message, through the compliance gate, while WeCom's 20-second welcome code lasts.
        if (event.changeType === "add_external_contact" && app && event.state && event.welcomeCode) {
          await sendChannelWelcome(ctx, app, { state: event.state, welcomeCode: event.welcomeCode, externalUserId: event.externalUserId });
        }
        if (event.changeType !== "edit_external_contact") {
          await ingestEvents({
            ctx,
            source: "wecom",
            input: { events: [{ type: "contact_added", externalUserId: event.externalUserId, occurredAt: at, idempotencyKey: key, data: { ...(event.state ? { state: event.state } : {}), staffUserId: event.userId, half: event.changeType === "add_half_external_contact" } }] },
          });
        }
        break;
      }
      case "del_external_contact":
      case "del_follow_user": {
        // del_follow_user: the customer deleted or blocked the consultant (churn); del_external_contact: the consultant removed them.
        const by = event.changeType === "del_follow_user" ? "contact" : "staff";
        const remainingFollows = await removeFollow(ctx, { externalUserId: event.externalUserId, userId: event.userId, by, at: new Date(at) });
        await ingestEvents({
          ctx,
          source: "wecom",
          input: { events: [{ type: "contact_deleted", externalUserId: event.externalUserId, occurredAt: at, idempotencyKey: key, data: { by, staffUserId: event.userId, remainingFollows, ...(event.source ? { wecomSource: event.source } : {}) } }] },
        });
        break;
      }
      case "transfer_fail":
        await withTransaction(ctx, (tx, ctx) =>
          audit(tx, ctx, { action: "wecom.transfer_fail", entityType: "contact_external", entityId: event.externalUserId, after: { takeoverUserId: event.userId, reason: event.failReason ?? null } }),
        );
        break;
    }
  } else if (event.kind === "external_chat" && event.changeType === "update" && (event.updateDetail === "add_member" || event.updateDetail === "del_member")) {
    // Members are staff userids or customers' external ids (wm…/wo…); only customers become events.
    const customers = (event.memChangeList ?? []).filter((m) => /^w[mo]/.test(m));
    if (customers.length) {
      await ingestEvents({
        ctx,
        source: "wecom",
        input: {
          events: customers.map((externalUserId) => ({
            type: event.updateDetail === "add_member" ? "group_joined" : "group_left",
            externalUserId,
            occurredAt: at,
            idempotencyKey: `${key}-${externalUserId}`.slice(0, 200),
            data: { chatId: event.chatId, ...(event.joinScene !== undefined ? { joinScene: event.joinScene } : {}), ...(event.quitScene !== undefined ? { quitScene: event.quitScene } : {}) },
          })),
        },
      });
    }
  }
  else if (event.kind === "external_tag") {
    // WeCom says which tag changed, not how: re-read the corp tags and reconcile (protocol §2.3).
    const app = await loadWecomApp(deps, tenantId);
    if (app) await reconcileTags(deps, tenantId, deps.wecomClient(app));
  } else if (event.kind === "external_chat" && event.changeType === "dismiss") {
    await deps.db.update(wecomGroupChats).set({ dismissedAt: new Date(at) }).where(and(eq(wecomGroupChats.tenantId, tenantId), eq(wecomGroupChats.chatId, event.chatId)));
  }
  // Other chat changes (name, owner, notice) are picked up by `siyu wecom sync`.
  await deps.db
    .update(wecomCallbacks)
    .set({ processedAt: deps.now(), attempts: sql`${wecomCallbacks.attempts} + 1`, lastError: null })
    .where(eq(wecomCallbacks.id, row.id));
  return "applied";
}

export async function recordCallbackFailure(deps: ServiceDeps, callbackId: string, error: string): Promise<void> {
  await deps.db
    .update(wecomCallbacks)
    .set({ attempts: sql`${wecomCallbacks.attempts} + 1`, lastError: error.slice(0, 1000) })
    .where(eq(wecomCallbacks.id, callbackId));
}

async function fetchDetail(deps: ServiceDeps, app: WecomApp, externalUserId: string): Promise<ExternalContactDetail | null> {
  try {
    return await deps.wecomClient(app).getExternalContact(externalUserId);
  } catch (err) {
    if (err instanceof WecomError && GONE.has(err.errcode)) return null;
    throw err;
  }
}

/** Create or refresh the contact from WeCom's detail; the adding consultant becomes owner when there is none. */
async function upsertContact(ctx: Ctx, input: { externalUserId: string; userId: string; state: string | undefined; detail: ExternalContactDetail | null; at: Date; follow: boolean; added: boolean }): Promise<void> {
  await withTransaction(ctx, async (tx, ctx) => {
    const [owner] = await tx
      .select({ id: staff.id })
      .from(staff)
      .where(and(eq(staff.tenantId, ctx.tenantId), sql`lower(${staff.wecomUserId}) = lower(${input.userId})`, eq(staff.active, true)));
    const ec = input.detail?.external_contact;
    const referrerId = referrerFromState(input.state);
    let referrer: string | null = null;
    if (referrerId) {
      const [r] = await tx.select({ id: contacts.id }).from(contacts).where(and(eq(contacts.tenantId, ctx.tenantId), eq(contacts.id, referrerId)));
      referrer = r?.id ?? null;
    }
    const [existing] = await tx
      .select()
      .from(contacts)
      .where(and(eq(contacts.tenantId, ctx.tenantId), eq(contacts.externalUserId, input.externalUserId)))
      .for("update");
    if (!existing) {
      const [row] = await tx
        .insert(contacts)
        .values({
          tenantId: ctx.tenantId,
          externalUserId: input.externalUserId,
          name: ec?.name ?? null,
          unionId: ec?.unionid ?? null,
          gender: ec?.gender !== undefined ? (GENDER[ec.gender] ?? "unknown") : null,
          source: referrer ? "referral" : "wecom",
          sourceState: input.state ?? null,
          referrerContactId: referrer,
          ownerStaffId: owner?.id ?? null,
        })
        .returning();
      await audit(tx, ctx, { action: "contact.create", entityType: "contact", entityId: row!.id, after: { ...auditSnapshot(row!), via: "wecom" } });
      if (input.follow) await upsertFollow(tx, ctx.tenantId, row!.id, input.userId, input.at, input.state);
      if (input.detail) await pullWecomTags(tx, ctx, row!.id, input.detail);
      await markTagsDue(tx, ctx.tenantId, [row!.id]); // the tag bits of the WeCom tags just pulled
      if (input.added) await leadFromWecomAdd(tx, ctx, { contactId: row!.id, addedStaffId: owner?.id ?? null, previousOwnerId: null, state: input.state });
      // Added through a patient's referral code (转介绍): the referrer is credited.
      if (referrer) await recordReferralJoined(ctx, [{ referredContactId: row!.id, referrerContactId: referrer, at: input.at }]);
      return;
    }
    const set: Partial<typeof contacts.$inferInsert> = { updatedAt: ctx.deps.now() };
    // A deletion WeCom reported later than this event (delivered first, out of order) stands.
    if (existing.deletedAt && existing.deletedAt <= input.at) set.deletedAt = null;
    if (ec?.name) set.name = ec.name;
    if (ec?.unionid) set.unionId = ec.unionid;
    if (ec?.gender !== undefined) set.gender = GENDER[ec.gender] ?? "unknown";
    if (!existing.ownerStaffId && owner) set.ownerStaffId = owner.id;
    if (!existing.sourceState && input.state) set.sourceState = input.state;
    if (!existing.referrerContactId && referrer && referrer !== existing.id) set.referrerContactId = referrer;
    const [row] = await tx.update(contacts).set(set).where(eq(contacts.id, existing.id)).returning();
    await audit(tx, ctx, { action: "contact.update", entityType: "contact", entityId: existing.id, before: auditSnapshot(existing), after: { ...auditSnapshot(row!), via: "wecom" } });
    if (input.follow) await upsertFollow(tx, ctx.tenantId, existing.id, input.userId, input.at, input.state);
    if (input.detail) await pullWecomTags(tx, ctx, existing.id, input.detail);
    await markTagsDue(tx, ctx.tenantId, [existing.id]); // fields and WeCom tags may change what time-based rules see
    if (input.added) await leadFromWecomAdd(tx, ctx, { contactId: existing.id, addedStaffId: owner?.id ?? null, previousOwnerId: existing.ownerStaffId, state: input.state });
    if (set.referrerContactId) await recordReferralJoined(ctx, [{ referredContactId: existing.id, referrerContactId: set.referrerContactId, at: input.at }]);
  });
}

/**
 * Tags of groups that WeCom owns (made in its admin console, mirrored as `wecom_…`) follow WeCom:
 * the detail lists every consultant's tags on this customer, so the local set becomes exactly that.
 * Siyu's own groups are left alone here (the rules own them; sync pushes them to WeCom).
 */
async function pullWecomTags(tx: Tx, ctx: Ctx, contactId: string, detail: ExternalContactDetail): Promise<void> {
  const remoteIds = new Set(detail.follow_user.flatMap((f) => (f.tags ?? []).flatMap((t) => (t.tag_id && t.type === 1 ? [t.tag_id] : []))));
  const mirrored = await tx
    .select({ id: tags.id, wecomTagId: tags.wecomTagId })
    .from(tags)
    .innerJoin(tagGroups, eq(tagGroups.id, tags.groupId))
    .where(and(eq(tags.tenantId, ctx.tenantId), isNotNull(tags.wecomTagId), sql`${tagGroups.key} like 'wecom\_%'`));
  const current = new Set((await tx.select({ tagId: contactTags.tagId }).from(contactTags).where(and(eq(contactTags.tenantId, ctx.tenantId), eq(contactTags.contactId, contactId)))).map((r) => r.tagId));
  for (const t of mirrored) {
    const want = remoteIds.has(t.wecomTagId!);
    const have = current.has(t.id);
    if (want && !have) {
      await tx.insert(contactTags).values({ tenantId: ctx.tenantId, contactId, tagId: t.id, source: "wecom" }).onConflictDoNothing();
      await tx.insert(tagHistory).values({ tenantId: ctx.tenantId, contactId, tagId: t.id, action: "add", source: "wecom" });
    } else if (!want && have) {
      await tx.delete(contactTags).where(and(eq(contactTags.contactId, contactId), eq(contactTags.tagId, t.id)));
      await tx.insert(tagHistory).values({ tenantId: ctx.tenantId, contactId, tagId: t.id, action: "remove", source: "wecom" });
    }
  }
}

/** Mark the relation removed (unless re-added later) and return how many consultants the contact still follows. */
async function removeFollow(ctx: Ctx, input: { externalUserId: string; userId: string; by: "staff" | "contact"; at: Date }): Promise<number> {
  return withTransaction(ctx, async (tx, ctx) => {
    const [c] = await tx.select({ id: contacts.id }).from(contacts).where(and(eq(contacts.tenantId, ctx.tenantId), eq(contacts.externalUserId, input.externalUserId)));
    if (!c) return 0;
    await tx
      .update(contactFollows)
      .set({ removedAt: input.at, removedBy: input.by })
      .where(and(eq(contactFollows.contactId, c.id), eq(contactFollows.userId, input.userId.toLowerCase()), sql`${contactFollows.addedAt} <= ${input.at.toISOString()}::timestamptz`));
    const [n] = await tx.select({ n: sql<number>`count(*)::int` }).from(contactFollows).where(and(eq(contactFollows.contactId, c.id), isNull(contactFollows.removedAt)));
    return n?.n ?? 0;
  });
}
