import { eq } from "drizzle-orm";
import { z } from "zod";
import { tenants, wecomSettings } from "../../db/schema/index";
import { NotFoundError, ValidationError, zodIssues } from "../../errors";
import { audit, dbOf, requirePermission, requirePii, withTransaction, type Ctx, type ServiceDeps } from "../context";

export const PutWecomSettingsInput = z.object({
  corpId: z.string().trim().regex(/^(ww|wx)[0-9a-zA-Z]{8,30}$/, "a WeCom CorpID looks like ww0123456789abcdef"),
  agentId: z.number().int().min(1),
  /** The app secret; omit to keep the stored one. */
  secret: z.string().min(8).max(128).optional(),
  /** Callback Token: letters or digits, up to 32. Omit to keep the stored one. */
  callbackToken: z.string().regex(/^[A-Za-z0-9]{1,32}$/, "letters or digits, at most 32").optional(),
  /** EncodingAESKey: exactly 43 letters or digits. Omit to keep the stored one. */
  encodingAesKey: z.string().regex(/^[A-Za-z0-9]{43}$/, "exactly 43 letters or digits").optional(),
});
export type PutWecomSettingsInput = z.infer<typeof PutWecomSettingsInput>;

export interface WecomSettingsView {
  corpId: string;
  agentId: number;
  secretSet: boolean;
  callbackTokenSet: boolean;
  encodingAesKeySet: boolean;
  /** What to enter as the callback URL in the WeCom admin console. */
  callbackUrl: string;
  updatedAt: string;
}

/** Decrypted settings, for services that call WeCom or verify callbacks. Never leaves the server. */
export interface WecomApp {
  tenantId: string;
  corpId: string;
  agentId: number;
  secret: string;
  callbackToken: string;
  encodingAesKey: string;
}

async function slugOf(ctx: Ctx): Promise<string> {
  const [t] = await dbOf(ctx).select({ slug: tenants.slug }).from(tenants).where(eq(tenants.id, ctx.tenantId));
  if (!t) throw new NotFoundError("tenant");
  return t.slug;
}

export async function getWecomSettings({ ctx }: { ctx: Ctx }): Promise<WecomSettingsView> {
  requirePermission(ctx, "wecom:manage");
  const [row] = await dbOf(ctx).select().from(wecomSettings).where(eq(wecomSettings.tenantId, ctx.tenantId));
  if (!row) throw new NotFoundError("WeCom settings (PUT them first)");
  return {
    corpId: row.corpId,
    agentId: row.agentId,
    secretSet: true,
    callbackTokenSet: true,
    encodingAesKeySet: true,
    callbackUrl: `${ctx.deps.config.publicUrl}/wecom/callback/${await slugOf(ctx)}`,
    updatedAt: row.updatedAt.toISOString(),
  };
}

/** Create or update the tenant's WeCom app. Secrets are sealed at rest and never returned; the audit row says which changed. */
export async function putWecomSettings({ ctx, input }: { ctx: Ctx; input: unknown }): Promise<WecomSettingsView> {
  requirePermission(ctx, "wecom:manage");
  const p = PutWecomSettingsInput.safeParse(input);
  if (!p.success) throw new ValidationError(zodIssues(p.error.issues));
  const v = p.data;
  const box = requirePii(ctx);
  await withTransaction(ctx, async (tx, ctx) => {
    const [before] = await tx.select().from(wecomSettings).where(eq(wecomSettings.tenantId, ctx.tenantId)).for("update");
    if (!before) {
      const missing = (["secret", "callbackToken", "encodingAesKey"] as const).filter((k) => !v[k]);
      if (missing.length) throw new ValidationError(missing.map((field) => ({ field, message: "is required the first time" })));
    }
    const row = {
      tenantId: ctx.tenantId,
      corpId: v.corpId,
      agentId: v.agentId,
      secretEnc: v.secret ? box.seal(v.secret) : before!.secretEnc,
      callbackTokenEnc: v.callbackToken ? box.seal(v.callbackToken) : before!.callbackTokenEnc,
      aesKeyEnc: v.encodingAesKey ? box.seal(v.encodingAesKey) : before!.aesKeyEnc,
      updatedAt: ctx.deps.now(),
    };
    await tx.insert(wecomSettings).values(row).onConflictDoUpdate({ target: wecomSettings.tenantId, set: row });
    await audit(tx, ctx, {
      action: before ? "wecom.settings.update" : "wecom.settings.create",
      entityType: "wecom_settings",
      entityId: ctx.tenantId,
      before: before ? { corpId: before.corpId, agentId: before.agentId } : null,
      after: { corpId: v.corpId, agentId: v.agentId, secretChanged: Boolean(v.secret), callbackTokenChanged: Boolean(v.callbackToken), encodingAesKeyChanged: Boolean(v.encodingAesKey) },
    });
  });
  return getWecomSettings({ ctx });
}

/** The tenant's app with secrets unsealed, or null when WeCom is not set up for it. */
export async function loadWecomApp(deps: ServiceDeps, tenantId: string): Promise<WecomApp | null> {
  const [row] = await deps.db.select().from(wecomSettings).where(eq(wecomSettings.tenantId, tenantId));
  if (!row || !deps.pii) return null;
  return {
    tenantId,
    corpId: row.corpId,
    agentId: row.agentId,
    secret: deps.pii.unseal(row.secretEnc),
    callbackToken: deps.pii.unseal(row.callbackTokenEnc),
    encodingAesKey: deps.pii.unseal(row.aesKeyEnc),
  };
}

/** The tenant (by slug) and its app, for the unauthenticated callback endpoint. */
export async function loadWecomAppBySlug(deps: ServiceDeps, slug: string): Promise<WecomApp | null> {
  const [t] = await deps.db.select({ id: tenants.id }).from(tenants).where(eq(tenants.slug, slug));
  return t ? loadWecomApp(deps, t.id) : null;
}
