import { OpenAPIHono, z } from "@hono/zod-openapi";
import { createPost, getPost, listPosts, ListPostsQuery, PostInput, PostPatch, postGate, reviewPost, ReviewInput, reviewQueue, submitPost, updatePost } from "../../services/posts/posts";
import { IdParam, json, jsonBody, problemResponse, route, validationHook } from "../openapi";
import type { AppEnv } from "../types";

const Finding = z.object({ term: z.string(), matched: z.string(), start: z.number(), end: z.number(), category: z.string(), severity: z.enum(["block", "warn"]), basis: z.string(), suggestion: z.string(), in: z.enum(["title", "body", "rendered"]) });
const Review = z.object({ level: z.number(), reviewerStaffId: z.string(), decision: z.enum(["approve", "reject"]), contentHash: z.string(), comments: z.array(z.object({ term: z.string(), start: z.number(), end: z.number(), in: z.enum(["title", "body", "rendered"]).optional(), comment: z.string() })), note: z.string().nullable(), overrideReason: z.string().nullable(), at: z.string() });
const Post = z
  .object({
    id: z.string(),
    kind: z.string(),
    title: z.string().nullable(),
    body: z.string(),
    sampleData: z.record(z.string(), z.unknown()),
    status: z.enum(["draft", "in_review", "approved", "rejected", "scheduled", "sent"]),
    contentHash: z.string().openapi({ description: "SHA-256 of kind, title and body; approvals bind to it" }),
    levelsRequired: z.number(),
    reviewLevel: z.number().nullable(),
    listVersion: z.string().nullable(),
    findings: z.array(Finding),
    blocking: z.boolean(),
    createdByStaffId: z.string().nullable(),
    submittedAt: z.string().nullable(),
    createdAt: z.string(),
    updatedAt: z.string(),
    reviews: z.array(Review).optional(),
  })
  .openapi("Post");
const Page = z.object({ items: z.array(Post), nextCursor: z.string().nullable() });

export function postRoutes() {
  const app = new OpenAPIHono<AppEnv>({ defaultHook: validationHook });
  app.openapi(
    route("posts:write", {
      method: "post",
      path: "/",
      tags: ["posts"],
      summary: "Write copy (a draft): checked against the banned-word lists as written and rendered with sample data",
      description: "kind: community_post | mass_message | welcome_message | article | moments | one_to_one (scripts consultants insert into chats from the chat sidebar). body may be a handlebars template ({{name}}, {{clinic}} …); sampleData fills it for the rendered check.",
      request: { body: jsonBody(PostInput) },
      responses: { 201: json(Post, "The draft with its findings") },
    }),
    async (c) => c.json(await createPost({ ctx: c.get("ctx"), input: c.req.valid("json") }), 201),
  );
  app.openapi(
    route("posts:read", { method: "get", path: "/", tags: ["posts"], summary: "Posts, newest first, by status and kind", request: { query: ListPostsQuery }, responses: { 200: json(Page, "A page of posts") } }),
    async (c) => c.json(await listPosts({ ctx: c.get("ctx"), input: c.req.valid("query") }), 200),
  );
  app.openapi(
    route("posts:read", { method: "get", path: "/{id}", tags: ["posts"], summary: "A post with its findings and every review decision", request: { params: IdParam }, responses: { 200: json(Post, "The post"), 404: problemResponse("No such post") } }),
    async (c) => c.json(await getPost({ ctx: c.get("ctx"), id: c.req.valid("param").id }), 200),
  );
  app.openapi(
    route("posts:write", {
      method: "patch",
      path: "/{id}",
      tags: ["posts"],
      summary: "Edit copy: any edit returns the post to draft (approvals bind to the content they saw)",
      request: { params: IdParam, body: jsonBody(PostPatch) },
      responses: { 200: json(Post, "The post, a draft again"), 404: problemResponse("No such post"), 409: problemResponse("The post was sent") },
    }),
    async (c) => c.json(await updatePost({ ctx: c.get("ctx"), id: c.req.valid("param").id, input: c.req.valid("json") }), 200),
  );
  app.openapi(
    route("posts:write", {
      method: "post",
      path: "/{id}/submit",
      tags: ["posts"],
      summary: "Submit a draft for review (levels per content kind, compliance-rules/policy.yaml)",
      request: { params: IdParam },
      responses: { 200: json(Post, "The post, in review at level 1"), 404: problemResponse("No such post"), 409: problemResponse("Not a draft") },
    }),
    async (c) => c.json(await submitPost({ ctx: c.get("ctx"), id: c.req.valid("param").id }), 200),
  );
  app.openapi(
    route("posts:review", {
      method: "post",
      path: "/{id}/reviews",
      tags: ["posts"],
      summary: "Approve or reject the post at its current level, bound to the content hash you read",
      description:
        "Refused: your own copy (403), a second level by the same reviewer (403), content changed since (409), approving blocking findings without overrideReason (422) or as a non-admin (403). Comments may point at findings ({term, start, end, in?, comment}; `in` is the finding's text: title, body or rendered). Approving the last level approves the post; rejecting rejects it.",
      request: { params: IdParam, body: jsonBody(ReviewInput) },
      responses: { 200: json(Post, "The post with every decision"), 404: problemResponse("No such post"), 409: problemResponse("Not in review, or changed since read") },
    }),
    async (c) => c.json(await reviewPost({ ctx: c.get("ctx"), id: c.req.valid("param").id, input: c.req.valid("json") }), 200),
  );
  app.openapi(
    route("posts:read", {
      method: "get",
      path: "/{id}/gate",
      tags: ["posts"],
      summary: "Whether the post could be sent now, and if not why (the send gate's test, without sending)",
      request: { params: IdParam },
      responses: { 200: json(z.object({ sendable: z.boolean(), reason: z.string().nullable() }), "The gate's answer"), 404: problemResponse("No such post") },
    }),
    async (c) => c.json(await postGate({ ctx: c.get("ctx"), id: c.req.valid("param").id }), 200),
  );
  return app;
}

export function reviewRoutes() {
  const app = new OpenAPIHono<AppEnv>({ defaultHook: validationHook });
  app.openapi(
    route("posts:review", {
      method: "get",
      path: "/queue",
      tags: ["posts"],
      summary: "Posts awaiting a decision you may make (not your own, not a level you reviewed), oldest submission first, with findings",
      request: { query: z.object({ limit: z.coerce.number().int().min(1).max(200).optional(), cursor: z.string().optional() }) },
      responses: { 200: json(Page, "The queue") },
    }),
    async (c) => c.json(await reviewQueue({ ctx: c.get("ctx"), input: c.req.valid("query") }), 200),
  );
  return app;
}
