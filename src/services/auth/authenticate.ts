import { randomBytes } from "node:crypto";
import { and, eq, gt, isNull, or, sql } from "drizzle-orm";
import type { Db } from "../../db/client";
import { apiTokens, sessions, staff, tenants } from "../../db/schema/index";
import type { Role } from "../../domain/auth/permissions";
import { verifyPassword } from "../../domain/auth/password";
import { sha256 } from "../../domain/pii/crypto";
import { UnauthenticatedError } from "../../errors";

export interface Principal {
  tenantId: string;
  tenantSlug: string;
  staffId: string;
  name: string;
  role: Role;
  via: "token" | "session";
}

/** Resolve a bearer token to its staff member; null when unknown, revoked, expired or the staff member is inactive. */
export async function authenticateToken(db: Db, token: string, now: Date): Promise<Principal | null> {
  const hash = sha256(token);
  const [row] = await db
    .select({ tokenId: apiTokens.id, lastUsedAt: apiTokens.lastUsedAt, tenantId: staff.tenantId, tenantSlug: tenants.slug, staffId: staff.id, name: staff.name, role: staff.role })
    .from(apiTokens)
    .innerJoin(staff, and(eq(staff.id, apiTokens.staffId), eq(staff.tenantId, apiTokens.tenantId)))
    .innerJoin(tenants, eq(tenants.id, staff.tenantId))
    .where(and(eq(apiTokens.tokenHash, hash), isNull(apiTokens.revokedAt), or(isNull(apiTokens.expiresAt), gt(apiTokens.expiresAt, now)), eq(staff.active, true)))
    .limit(1);
  if (!row) return null;
  // Touch last_used_at at most once a minute: no write per request on the hot path.
  if (!row.lastUsedAt || now.getTime() - row.lastUsedAt.getTime() > 60_000) {
    await db.update(apiTokens).set({ lastUsedAt: now }).where(eq(apiTokens.id, row.tokenId));
  }
  return { tenantId: row.tenantId, tenantSlug: row.tenantSlug, staffId: row.staffId, name: row.name, role: row.role, via: "token" };
}

export async function authenticateSession(db: Db, cookie: string, now: Date): Promise<Principal | null> {
  const [row] = await db
    .select({ tenantId: staff.tenantId, tenantSlug: tenants.slug, staffId: staff.id, name: staff.name, role: staff.role })
    .from(sessions)
    .innerJoin(staff, and(eq(staff.id, sessions.staffId), eq(staff.tenantId, sessions.tenantId)))
    .innerJoin(tenants, eq(tenants.id, staff.tenantId))
    .where(and(eq(sessions.tokenHash, sha256(cookie)), gt(sessions.expiresAt, now), eq(staff.active, true)))
    .limit(1);
  return row ? { ...row, via: "session" } : null;
}

// A fixed hash verified when the email is unknown, so response time does not reveal which emails exist.
const DUMMY_HASH = "scrypt$32768$8$1$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";

/** Console sign-in: returns a new session cookie value (stored hashed) or throws Unauthenticated. */
export async function signIn(
  db: Db,
  input: { tenant: string; email: string; password: string; userAgent?: string | undefined },
  opts: { now: Date; ttlHours: number },
): Promise<{ cookie: string; principal: Principal; expiresAt: Date }> {
  const [row] = await db
    .select({ tenantId: staff.tenantId, tenantSlug: tenants.slug, staffId: staff.id, name: staff.name, role: staff.role, passwordHash: staff.passwordHash, active: staff.active })
    .from(staff)
    .innerJoin(tenants, eq(tenants.id, staff.tenantId))
    .where(and(eq(tenants.slug, input.tenant.trim().toLowerCase()), eq(staff.email, input.email.trim().toLowerCase())))
    .limit(1);
  const ok = await verifyPassword(input.password, row?.passwordHash ?? DUMMY_HASH);
  if (!row || !ok || !row.active || !row.passwordHash) throw new UnauthenticatedError("wrong clinic, email or password");
  const cookie = randomBytes(32).toString("base64url");
  const expiresAt = new Date(opts.now.getTime() + opts.ttlHours * 3600_000);
  await db.insert(sessions).values({ tenantId: row.tenantId, staffId: row.staffId, tokenHash: sha256(cookie), expiresAt, userAgent: input.userAgent?.slice(0, 300) ?? null });
  // Sweep this person's expired sessions while we are here.
  await db.delete(sessions).where(and(eq(sessions.staffId, row.staffId), sql`${sessions.expiresAt} < ${opts.now.toISOString()}::timestamptz`));
  return { cookie, expiresAt, principal: { tenantId: row.tenantId, tenantSlug: row.tenantSlug, staffId: row.staffId, name: row.name, role: row.role, via: "session" } };
}

export async function signOut(db: Db, cookie: string): Promise<void> {
  await db.delete(sessions).where(eq(sessions.tokenHash, sha256(cookie)));
}
