import { createRoute, z, type RouteConfig } from "@hono/zod-openapi";
import type { MiddlewareHandler } from "hono";
import { can, PERMISSIONS, type Permission } from "../domain/auth/permissions";
import { zodIssues } from "../errors";
import { problem } from "./problem";
import type { AppEnv } from "./types";

export const ProblemSchema = z
  .object({
    type: z.string(),
    title: z.string(),
    status: z.number().int(),
    detail: z.string(),
    code: z.string(),
    requestId: z.string().optional(),
    errors: z.array(z.object({ field: z.string(), message: z.string() })).optional(),
  })
  .openapi("Problem");

export const problemResponse = (description: string) => ({
  description,
  content: { "application/problem+json": { schema: ProblemSchema } },
});

export const ERROR_RESPONSES = {
  401: problemResponse("Not signed in, or the token is unknown, revoked or expired"),
  403: problemResponse("The caller's role may not do this"),
  422: problemResponse("A field is invalid; `errors` names each one"),
} as const;

/** Refuse a role before anything else about the request is looked at. */
function requirePermission(permission: Permission): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const p = c.get("principal");
    if (!p) return problem(c, 401, "UNAUTHENTICATED", "sign in or send `Authorization: Bearer <token>`");
    if (!can(p.role, permission)) return problem(c, 403, "FORBIDDEN", `the ${p.role} role may not ${permission.replace(":", " ")}`);
    return next();
  };
}

/**
 * A documented, role-checked route. The permission and the roles holding it are written into the
 * OpenAPI document (x-permission, x-roles), which the security tests walk route by route.
 */
export function route<const R extends RouteConfig>(permission: Permission, r: R) {
  return createRoute({
    ...r,
    security: [{ bearer: [] }, { session: [] }],
    "x-permission": permission,
    "x-roles": [...PERMISSIONS[permission]],
    middleware: [requirePermission(permission)],
    responses: { ...ERROR_RESPONSES, ...r.responses },
  } as R);
}

/** The validation hook shared by every route: a 422 problem naming each failing field. */
export function validationHook(result: { success: boolean; error?: { issues: readonly { path: readonly PropertyKey[]; message: string }[] }; target?: string }, c: Parameters<typeof problem>[0]) {
  if (!result.success && result.error) {
    const issues = zodIssues(result.error.issues);
    return problem(c, 422, "VALIDATION_FAILED", issues.map((i) => `${i.field}: ${i.message}`).join("; "), issues);
  }
  return undefined;
}

export const IdParam = z.object({ id: z.uuid().openapi({ param: { name: "id", in: "path" } }) });

export const json = <T extends z.ZodType>(schema: T, description: string) => ({
  description,
  content: { "application/json": { schema } },
});

export const jsonBody = <T extends z.ZodType>(schema: T) => ({
  required: true,
  content: { "application/json": { schema } },
});
