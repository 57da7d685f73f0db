import { randomBytes } from "node:crypto";
import { and, eq, sql } from "drizzle-orm";
import { sessions, staff, tenants } from "../../db/schema/index";
import { sha256 } from "../../domain/pii/crypto";
import { UnauthenticatedError } from "../../errors";
import { WecomError } from "../../wecom/api/errors";
import { getUserInfo } from "../../wecom/api/oauth";
import type { ServiceDeps } from "../context";
import type { SidebarApp } from "../wecom/sidebar";
import type { Principal } from "./authenticate";

/** Why a WeCom sign-in was refused (the sidebar says it in the person's language). */
export type WecomSignInRefusal = "bad_code" | "not_member" | "no_staff";

export class WecomSignInRefused extends UnauthenticatedError {
  constructor(
    readonly reason: WecomSignInRefusal,
    detail: string,
    readonly wecomUserId?: string,
  ) {
    super(detail);
  }
}

/**
 * Sign in with WeCom (the chat sidebar, inside the WeCom client): the OAuth code comes back from
 * the authorize redirect, WeCom says whose it is (auth/getuserinfo), and the active staff member of
 * the tenant with that WeCom userid (case-insensitive, as WeCom's) gets a session: the same
 * sessions, cookie and lifetime as the console sign-in.
 */
export async function signInWithWecomCode(
  deps: ServiceDeps,
  app: SidebarApp,
  input: { code: string; userAgent?: string | undefined },
): Promise<{ cookie: string; principal: Principal; expiresAt: Date }> {
  let info: Awaited<ReturnType<typeof getUserInfo>>;
  try {
    info = await getUserInfo(app.client, input.code);
  } catch (err) {
    // 40029: the code is unknown, used or expired (single use, 5 minutes); 41008: none.
    if (err instanceof WecomError && (err.errcode === 40029 || err.errcode === 41008)) throw new WecomSignInRefused("bad_code", "the WeCom sign-in code is invalid, used or expired");
    throw err;
  }
  const userid = info.userid;
  if (!userid) throw new WecomSignInRefused("not_member", "this WeCom account is not a member of the clinic's corp");
  const [row] = await deps.db
    .select({ tenantId: staff.tenantId, tenantSlug: tenants.slug, staffId: staff.id, name: staff.name, role: staff.role })
    .from(staff)
    .innerJoin(tenants, eq(tenants.id, staff.tenantId))
    .where(and(eq(staff.tenantId, app.tenantId), sql`lower(${staff.wecomUserId}) = lower(${userid})`, eq(staff.active, true)))
    .limit(1);
  if (!row) throw new WecomSignInRefused("no_staff", "no active staff member has this WeCom userid", userid);
  const now = deps.now();
  const cookie = randomBytes(32).toString("base64url");
  const expiresAt = new Date(now.getTime() + deps.config.SESSION_TTL_HOURS * 3600_000);
  await deps.db.insert(sessions).values({ tenantId: row.tenantId, staffId: row.staffId, tokenHash: sha256(cookie), expiresAt, userAgent: input.userAgent?.slice(0, 300) ?? null });
  await deps.db.delete(sessions).where(and(eq(sessions.staffId, row.staffId), sql`${sessions.expiresAt} < ${now.toISOString()}::timestamptz`));
  deps.logger.info({ tenantId: row.tenantId, staffId: row.staffId }, "signed in with WeCom (chat sidebar)");
  return { cookie, expiresAt, principal: { ...row, via: "session" } };
}
