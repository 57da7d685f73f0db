import { and, desc, eq, isNull } from "drizzle-orm";
import { z } from "zod";
import { apiTokens, staff } from "../../db/schema/index";
import { sha256 } from "../../domain/pii/crypto";
import { NotFoundError, ValidationError, zodIssues } from "../../errors";
import { audit, dbOf, requirePermission, withTransaction, type Ctx } from "../context";
import { generateToken } from "./internal";

export const CreateTokenInput = z.object({
  staffId: z.uuid(),
  name: z.string().trim().min(1).max(100),
  /** Days until it expires; omit for no expiry. */
  expiresInDays: z.number().int().min(1).max(3650).optional(),
});

export interface TokenView {
  id: string;
  staffId: string;
  name: string;
  prefix: string;
  lastUsedAt: string | null;
  expiresAt: string | null;
  revokedAt: string | null;
  createdAt: string;
}

function view(r: typeof apiTokens.$inferSelect): TokenView {
  return {
    id: r.id,
    staffId: r.staffId,
    name: r.name,
    prefix: r.prefix,
    lastUsedAt: r.lastUsedAt?.toISOString() ?? null,
    expiresAt: r.expiresAt?.toISOString() ?? null,
    revokedAt: r.revokedAt?.toISOString() ?? null,
    createdAt: r.createdAt.toISOString(),
  };
}

export async function createToken({ ctx, input }: { ctx: Ctx; input: unknown }): Promise<TokenView & { token: string }> {
  requirePermission(ctx, "tokens:manage");
  const p = CreateTokenInput.safeParse(input);
  if (!p.success) throw new ValidationError(zodIssues(p.error.issues));
  return withTransaction(ctx, async (tx, ctx) => {
    const [s] = await tx.select({ id: staff.id }).from(staff).where(and(eq(staff.tenantId, ctx.tenantId), eq(staff.id, p.data.staffId)));
    if (!s) throw new ValidationError([{ field: "staffId", message: "no such staff member" }]);
    const { token, prefix } = generateToken();
    const expiresAt = p.data.expiresInDays ? new Date(ctx.deps.now().getTime() + p.data.expiresInDays * 86_400_000) : null;
    const [row] = await tx.insert(apiTokens).values({ tenantId: ctx.tenantId, staffId: s.id, name: p.data.name, prefix, tokenHash: sha256(token), expiresAt }).returning();
    await audit(tx, ctx, { action: "token.create", entityType: "api_token", entityId: row!.id, after: { staffId: s.id, name: p.data.name, prefix } });
    return { ...view(row!), token };
  });
}

export async function listTokens({ ctx, staffId }: { ctx: Ctx; staffId?: string | undefined }): Promise<TokenView[]> {
  requirePermission(ctx, "tokens:manage");
  const conds = [eq(apiTokens.tenantId, ctx.tenantId)];
  if (staffId) conds.push(eq(apiTokens.staffId, staffId));
  const rows = await dbOf(ctx).select().from(apiTokens).where(and(...conds)).orderBy(desc(apiTokens.createdAt)).limit(500);
  return rows.map(view);
}

export async function revokeToken({ ctx, id }: { ctx: Ctx; id: string }): Promise<TokenView> {
  requirePermission(ctx, "tokens:manage");
  return withTransaction(ctx, async (tx, ctx) => {
    const [row] = await tx
      .update(apiTokens)
      .set({ revokedAt: ctx.deps.now() })
      .where(and(eq(apiTokens.tenantId, ctx.tenantId), eq(apiTokens.id, id), isNull(apiTokens.revokedAt)))
      .returning();
    if (!row) {
      const [exists] = await tx.select().from(apiTokens).where(and(eq(apiTokens.tenantId, ctx.tenantId), eq(apiTokens.id, id)));
      if (!exists) throw new NotFoundError("token");
      return view(exists);
    }
    await audit(tx, ctx, { action: "token.revoke", entityType: "api_token", entityId: id, before: { revokedAt: null }, after: { revokedAt: row.revokedAt?.toISOString() } });
    return view(row);
  });
}

/** Make `token` a valid token of this staff member under `name`, revoking older tokens of that name (ADMIN_TOKEN at start). */
export async function ensureNamedToken({ ctx, staffId, name, token }: { ctx: Ctx; staffId: string; name: string; token: string }): Promise<void> {
  await withTransaction(ctx, async (tx, ctx) => {
    const hash = sha256(token);
    const [current] = await tx.select().from(apiTokens).where(eq(apiTokens.tokenHash, hash));
    if (current && current.tenantId === ctx.tenantId && current.staffId === staffId && !current.revokedAt) return;
    if (current) {
      // Same secret already used elsewhere (or revoked): re-point it deliberately.
      await tx.update(apiTokens).set({ tenantId: ctx.tenantId, staffId, name, revokedAt: null, expiresAt: null }).where(eq(apiTokens.id, current.id));
    } else {
      await tx
        .update(apiTokens)
        .set({ revokedAt: ctx.deps.now() })
        .where(and(eq(apiTokens.tenantId, ctx.tenantId), eq(apiTokens.name, name), isNull(apiTokens.revokedAt)));
      await tx.insert(apiTokens).values({ tenantId: ctx.tenantId, staffId, name, prefix: token.slice(0, 6) + "…", tokenHash: hash });
    }
    await audit(tx, ctx, { action: "token.ensure", entityType: "api_token", entityId: name, after: { staffId, name } });
  });
}
