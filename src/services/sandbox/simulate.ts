import { randomUUID } from "node:crypto";
import { and, asc, desc, eq, isNotNull, isNull } from "drizzle-orm";
import { z } from "zod";
import { contacts, staff, wecomChannels, wecomGroupChats } from "../../db/schema/index";
import { AppError, ValidationError, zodIssues } from "../../errors";
import { deliveryOf, sandboxControl, SandboxControlError, type SandboxDelivery } from "../../wecom/sandbox-control";
import { dbOf, requirePermission, type Ctx } from "../context";
import { ingestEvents } from "../events/ingest";
import { sandboxLinkOf, type SandboxLink } from "./link";

/**
 * The sandbox page's simulations: what patients do in WeCom, played against the fake WeCom of this
 * process through its control API. The fake then sends a real callback (AES-encrypted, signed with
 * the tenant's callback token) to Siyu's /wecom/callback endpoint, which verifies, stores and
 * queues it exactly as for the real WeCom; the wecom worker turns it into contacts and events.
 */
export type SandboxStatus =
  | { mode: "live" }
  /** Sandbox mode, but no fake WeCom runs in this process (e.g. the API started apart from `siyu start`). */
  | { mode: "detached" }
  /** The fake is connected to another tenant (the first one). */
  | { mode: "other-tenant" }
  | { mode: "ready"; url: string };

export function sandboxStatus({ ctx }: { ctx: Ctx }): SandboxStatus {
  requirePermission(ctx, "wecom:manage");
  if (ctx.deps.config.WECOM_MODE !== "sandbox") return { mode: "live" };
  const link = sandboxLinkOf(ctx.deps);
  if (!link) return { mode: "detached" };
  if (link.tenantId !== ctx.tenantId) return { mode: "other-tenant" };
  return { mode: "ready", url: link.url };
}

function readyLink(ctx: Ctx): SandboxLink {
  const s = sandboxStatus({ ctx });
  if (s.mode !== "ready") throw new AppError("PRECONDITION_FAILED", `the sandbox WeCom is not available here (${s.mode})`);
  return sandboxLinkOf(ctx.deps)!;
}

export interface SandboxOptions {
  /** Staff with a WeCom userid: who a patient can add. */
  staff: { id: string; name: string; role: string; wecomUserId: string }[];
  /** Channel codes (渠道活码): a patient can scan one. */
  channels: { id: string; name: string; state: string; staffUserIds: string[] }[];
  /** The newest contacts that came from WeCom (with an external_userid). */
  contacts: { id: string; name: string | null; externalUserId: string }[];
  /** Customer groups known from WeCom (not dismissed). */
  groups: { chatId: string; name: string | null }[];
}

/** What the simulation forms offer: the people, channels, WeCom contacts and groups of the tenant. */
export async function sandboxOptions({ ctx }: { ctx: Ctx }): Promise<SandboxOptions> {
  requirePermission(ctx, "wecom:manage");
  const db = dbOf(ctx);
  const [people, channels, recent, groups] = await Promise.all([
    db
      .select({ id: staff.id, name: staff.name, role: staff.role, wecomUserId: staff.wecomUserId })
      .from(staff)
      .where(and(eq(staff.tenantId, ctx.tenantId), eq(staff.active, true), isNotNull(staff.wecomUserId)))
      .orderBy(asc(staff.role), asc(staff.name)),
    db.select({ id: wecomChannels.id, name: wecomChannels.name, state: wecomChannels.state, staffUserIds: wecomChannels.staffUserIds }).from(wecomChannels).where(eq(wecomChannels.tenantId, ctx.tenantId)).orderBy(desc(wecomChannels.createdAt)).limit(100),
    db
      .select({ id: contacts.id, name: contacts.name, externalUserId: contacts.externalUserId })
      .from(contacts)
      .where(and(eq(contacts.tenantId, ctx.tenantId), isNotNull(contacts.externalUserId), isNull(contacts.deletedAt)))
      .orderBy(desc(contacts.createdAt))
      .limit(50),
    db.select({ chatId: wecomGroupChats.chatId, name: wecomGroupChats.name }).from(wecomGroupChats).where(and(eq(wecomGroupChats.tenantId, ctx.tenantId), isNull(wecomGroupChats.dismissedAt))).orderBy(asc(wecomGroupChats.name)).limit(100),
  ]);
  return {
    staff: people.map((p) => ({ ...p, wecomUserId: p.wecomUserId! })),
    channels,
    contacts: recent.map((c) => ({ ...c, externalUserId: c.externalUserId! })),
    groups,
  };
}

export interface SimulationResult {
  /** The patient's external_userid in WeCom. */
  externalUserId: string;
  /** The callback's delivery to Siyu (null: nothing went through the callback path). */
  delivery: SandboxDelivery | null;
}

async function control<T>(link: SandboxLink, action: string, args: Record<string, unknown>): Promise<T> {
  try {
    return await sandboxControl<T>(link.url, action, args);
  } catch (err) {
    // The fake's refusal (an unknown contact, a group that is not there) is the person's to fix.
    if (err instanceof SandboxControlError) throw new AppError("PRECONDITION_FAILED", err.message, { cause: err });
    throw err;
  }
}

/** The staff member as WeCom knows them; one added to Siyu after the sandbox started is added to the fake first. */
async function wecomUserOf(ctx: Ctx, link: SandboxLink, staffId: string, field: string): Promise<string> {
  const [s] = await dbOf(ctx)
    .select({ name: staff.name, wecomUserId: staff.wecomUserId, active: staff.active })
    .from(staff)
    .where(and(eq(staff.tenantId, ctx.tenantId), eq(staff.id, staffId)));
  if (!s || !s.active) throw new ValidationError([{ field, message: "is not an active staff member of this tenant" }]);
  if (!s.wecomUserId) throw new ValidationError([{ field, message: "has no WeCom userid" }]);
  await sandboxControl(link.url, "createStaff", { userid: s.wecomUserId, name: s.name }).catch((err: Error) => {
    if (!/already exists/.test(err.message)) throw new AppError("PRECONDITION_FAILED", err.message, { cause: err });
  });
  return s.wecomUserId;
}

const optionalText = (max: number) =>
  z
    .string()
    .trim()
    .max(max)
    .optional()
    .transform((v) => v || undefined);

export const SimulateContactAddedInput = z.object({
  /** The consultant the patient adds (a staff member with a WeCom userid). */
  staffId: z.uuid("choose a consultant"),
  /** The patient's WeCom nickname. */
  name: optionalText(50),
  /** The channel code's state (渠道活码), as WeCom reports it in the callback. */
  state: z
    .string()
    .trim()
    .max(30)
    .regex(/^[A-Za-z0-9_\-.:]*$/, "letters, digits, _ - . : only")
    .optional()
    .transform((v) => v || undefined),
});

/** A patient adds a consultant in WeCom (scanning a channel code when `state` is given): add_external_contact. */
export async function simulateContactAdded({ ctx, input }: { ctx: Ctx; input: unknown }): Promise<SimulationResult> {
  requirePermission(ctx, "wecom:manage");
  const link = readyLink(ctx);
  const p = SimulateContactAddedInput.safeParse(input);
  if (!p.success) throw new ValidationError(zodIssues(p.error.issues));
  const userid = await wecomUserOf(ctx, link, p.data.staffId, "staffId");
  const r = await control<{ externalUserId: string }>(link, "customerAddsStaff", { userid, ...(p.data.name ? { name: p.data.name } : {}), ...(p.data.state ? { state: p.data.state } : {}) });
  return { externalUserId: r.externalUserId, delivery: deliveryOf(r) };
}

const ExternalUserId = z.string().trim().min(1, "choose a contact").max(64).regex(/^[A-Za-z0-9_-]+$/, "is not an external_userid");

export const SimulateGroupJoinInput = z
  .object({
    externalUserId: ExternalUserId,
    /** An existing customer group; omitted: a new group owned by `ownerStaffId`. */
    chatId: optionalText(64),
    ownerStaffId: z.uuid().optional(),
    groupName: optionalText(50),
  })
  .superRefine((v, c) => {
    if (!v.chatId && !v.ownerStaffId) c.addIssue({ code: "custom", path: ["ownerStaffId"], message: "choose a group, or an owner for a new group" });
  });

/** A patient joins a customer group by its QR code (a new group first when none is chosen): change_external_chat add_member. */
export async function simulateGroupJoin({ ctx, input }: { ctx: Ctx; input: unknown }): Promise<SimulationResult & { chatId: string }> {
  requirePermission(ctx, "wecom:manage");
  const link = readyLink(ctx);
  const p = SimulateGroupJoinInput.safeParse(input);
  if (!p.success) throw new ValidationError(zodIssues(p.error.issues));
  let chatId = p.data.chatId;
  if (!chatId) {
    const owner = await wecomUserOf(ctx, link, p.data.ownerStaffId!, "ownerStaffId");
    chatId = (await control<{ chatId: string }>(link, "createGroupChat", { owner, name: p.data.groupName ?? "沙箱客户群" })).chatId;
  }
  const r = await control<unknown>(link, "customerJoinsGroup", { chatId, externalUserId: p.data.externalUserId, how: "qr" });
  return { externalUserId: p.data.externalUserId, chatId, delivery: deliveryOf(r) };
}

export const SimulateMessageInput = z.object({
  externalUserId: ExternalUserId,
  text: z.string().trim().min(1, "is required").max(2000),
});

/**
 * A patient writes to their consultant. WeCom sends no contact callback for chat content (it
 * reaches Siyu through chat archiving or the API), so, as `siyu wecom simulate message` does, the
 * message is recorded as a message_received event of the WeCom contact; the rules read it.
 */
export async function simulateMessage({ ctx, input }: { ctx: Ctx; input: unknown }): Promise<SimulationResult> {
  requirePermission(ctx, "wecom:manage");
  readyLink(ctx);
  const p = SimulateMessageInput.safeParse(input);
  if (!p.success) throw new ValidationError(zodIssues(p.error.issues));
  const [known] = await dbOf(ctx)
    .select({ id: contacts.id })
    .from(contacts)
    .where(and(eq(contacts.tenantId, ctx.tenantId), eq(contacts.externalUserId, p.data.externalUserId)));
  if (!known) throw new ValidationError([{ field: "externalUserId", message: "is not a WeCom contact of this tenant" }]);
  await ingestEvents({
    ctx,
    source: "wecom",
    input: { events: [{ type: "message_received", externalUserId: p.data.externalUserId, occurredAt: ctx.deps.now().toISOString(), idempotencyKey: `sandbox-msg-${randomUUID()}`, data: { text: p.data.text } }] },
  });
  return { externalUserId: p.data.externalUserId, delivery: null };
}
