import { OpenAPIHono, z } from "@hono/zod-openapi";
import { CreateStaffInput, createStaff } from "../../services/staff/create";
import { getStaff, listStaff } from "../../services/staff/list";
import { UpdateStaffInput } from "../../services/staff/schemas";
import { updateStaff } from "../../services/staff/update";
import { createToken, CreateTokenInput, listTokens, revokeToken } from "../../services/tokens/tokens";
import { IdParam, json, jsonBody, problemResponse, route, validationHook } from "../openapi";
import type { AppEnv } from "../types";

const StaffSchema = z
  .object({
    id: z.string(),
    name: z.string(),
    email: z.string(),
    role: z.string(),
    wecomUserId: z.string().nullable(),
    clinicId: z.string().nullable(),
    skills: z.array(z.string()),
    capacity: z.number(),
    shift: z.record(z.string(), z.tuple([z.string(), z.string()])).nullable(),
    active: z.boolean(),
    canSignIn: z.boolean(),
    createdAt: z.string(),
  })
  .openapi("Staff");

const TokenSchema = z
  .object({
    id: z.string(),
    staffId: z.string(),
    name: z.string(),
    prefix: z.string(),
    lastUsedAt: z.string().nullable(),
    expiresAt: z.string().nullable(),
    revokedAt: z.string().nullable(),
    createdAt: z.string(),
  })
  .openapi("ApiToken");

export function staffRoutes() {
  const app = new OpenAPIHono<AppEnv>({ defaultHook: validationHook });
  app.openapi(
    route("staff:read", { method: "get", path: "/", tags: ["staff"], summary: "List staff", responses: { 200: json(z.object({ items: z.array(StaffSchema) }), "All staff of the tenant") } }),
    async (c) => c.json({ items: await listStaff({ ctx: c.get("ctx") }) }, 200),
  );
  app.openapi(
    route("staff:write", {
      method: "post",
      path: "/",
      tags: ["staff"],
      summary: "Add a staff member",
      description: "With a password the person can sign in to the console.",
      request: { body: jsonBody(CreateStaffInput) },
      responses: { 201: json(StaffSchema, "The new staff member"), 409: problemResponse("Email or WeCom userid already used") },
    }),
    async (c) => c.json(await createStaff({ ctx: c.get("ctx"), input: c.req.valid("json") }), 201),
  );
  app.openapi(
    route("staff:read", { method: "get", path: "/{id}", tags: ["staff"], summary: "Get a staff member", request: { params: IdParam }, responses: { 200: json(StaffSchema, "The staff member"), 404: problemResponse("No such staff member") } }),
    async (c) => c.json(await getStaff({ ctx: c.get("ctx"), id: c.req.valid("param").id }), 200),
  );
  app.openapi(
    route("staff:write", {
      method: "patch",
      path: "/{id}",
      tags: ["staff"],
      summary: "Update a staff member (role, active, password, skills, shift ...)",
      description: "Deactivating, changing the role or the password ends the person's console sessions.",
      request: { params: IdParam, body: jsonBody(UpdateStaffInput) },
      responses: { 200: json(StaffSchema, "The updated staff member"), 404: problemResponse("No such staff member") },
    }),
    async (c) => c.json(await updateStaff({ ctx: c.get("ctx"), id: c.req.valid("param").id, input: c.req.valid("json") }), 200),
  );
  return app;
}

export function tokenRoutes() {
  const app = new OpenAPIHono<AppEnv>({ defaultHook: validationHook });
  app.openapi(
    route("tokens:manage", {
      method: "get",
      path: "/",
      tags: ["tokens"],
      summary: "List API tokens",
      request: { query: z.object({ staffId: z.uuid().optional() }) },
      responses: { 200: json(z.object({ items: z.array(TokenSchema) }), "Tokens (never the secret)") },
    }),
    async (c) => c.json({ items: await listTokens({ ctx: c.get("ctx"), staffId: c.req.valid("query").staffId }) }, 200),
  );
  app.openapi(
    route("tokens:manage", {
      method: "post",
      path: "/",
      tags: ["tokens"],
      summary: "Create an API token for a staff member",
      description: "The token is in the response once; only its hash is stored.",
      request: { body: jsonBody(CreateTokenInput) },
      responses: { 201: json(TokenSchema.extend({ token: z.string() }), "The token, shown once") },
    }),
    async (c) => c.json(await createToken({ ctx: c.get("ctx"), input: c.req.valid("json") }), 201),
  );
  app.openapi(
    route("tokens:manage", {
      method: "delete",
      path: "/{id}",
      tags: ["tokens"],
      summary: "Revoke a token",
      request: { params: IdParam },
      responses: { 200: json(TokenSchema, "The revoked token"), 404: problemResponse("No such token") },
    }),
    async (c) => c.json(await revokeToken({ ctx: c.get("ctx"), id: c.req.valid("param").id }), 200),
  );
  return app;
}
