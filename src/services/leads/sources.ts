import { and, eq, inArray } from "drizzle-orm";
import type { Tx } from "../../db/client";
import { contacts, staff, wecomChannels } from "../../db/schema/index";
import type { Ctx } from "../context";
import { audit } from "../context";
import { notifyStaff } from "../notifications/notify";
import { signalLead } from "./leads";

/**
 * A contact added a consultant in WeCom (add_external_contact), inside the transaction that
 * created or refreshed the contact:
 * - through a channel QR code (渠道活码) or a referral code (the `state`): a lead, owned directly by
 *   the consultant who was added (source wecom_qr or referral);
 * - already owned by another consultant: the owner keeps the contact (no 撞单), no lead moves,
 *   and both consultants are told by WeCom app message.
 */
export async function leadFromWecomAdd(tx: Tx, ctx: Ctx, input: { contactId: string; addedStaffId: string | null; previousOwnerId: string | null; state: string | undefined }): Promise<"lead" | "conflict" | "none"> {
  const { contactId, addedStaffId, previousOwnerId } = input;
  if (!addedStaffId) return "none";
  if (previousOwnerId && previousOwnerId !== addedStaffId) {
    await ownerConflict(tx, ctx, { contactId, ownerId: previousOwnerId, addedStaffId });
    return "conflict";
  }
  if (!input.state) return "none";
  const [channel] = await tx.select({ id: wecomChannels.id, kind: wecomChannels.kind, name: wecomChannels.name }).from(wecomChannels).where(and(eq(wecomChannels.tenantId, ctx.tenantId), eq(wecomChannels.state, input.state)));
  if (!channel) return "none";
  await signalLead({
    ctx: { ...ctx, tx },
    input: { contactId, source: channel.kind === "referral" ? "referral" : "wecom_qr", sourceRef: `channel:${channel.id}`, score: 10 },
    direct: addedStaffId,
  });
  return "lead";
}

async function ownerConflict(tx: Tx, ctx: Ctx, o: { contactId: string; ownerId: string; addedStaffId: string }): Promise<void> {
  const people = await tx.select({ id: staff.id, name: staff.name }).from(staff).where(and(eq(staff.tenantId, ctx.tenantId), inArray(staff.id, [o.ownerId, o.addedStaffId])));
  const name = (id: string) => people.find((p) => p.id === id)?.name ?? "另一位顾问";
  const [c] = await tx.select({ name: contacts.name }).from(contacts).where(eq(contacts.id, o.contactId));
  const who = c?.name ? `「${c.name}」` : "一位客户";
  const key = `owner-conflict-${o.contactId}-${o.addedStaffId}`;
  await notifyStaff(tx, ctx, [
    { staffId: o.ownerId, kind: "owner_conflict", contactId: o.contactId, dedupeKey: `${key}-owner`, title: "撞单提醒", body: `客户${who}又添加了顾问 ${name(o.addedStaffId)} 的企业微信。客户仍归属于您，请及时跟进。` },
    { staffId: o.addedStaffId, kind: "owner_conflict", contactId: o.contactId, dedupeKey: `${key}-added`, title: "撞单提醒", body: `客户${who}已归属顾问 ${name(o.ownerId)}，请勿重复跟进；需要协作请联系主管。` },
  ]);
  await audit(tx, ctx, { action: "contact.owner_conflict", entityType: "contact", entityId: o.contactId, after: { ownerStaffId: o.ownerId, addedStaffId: o.addedStaffId, kept: o.ownerId } });
}
