import { appendFileSync, cpSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { and, eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { auditLog, postReviews } from "../../src/db/schema/index";
import { DEFAULT_COMPLIANCE_DIR } from "../../src/loaders/compliance-rules";
import { systemCtx } from "../../src/services/context";
import { assertSendable, SendRefused } from "../../src/services/posts/posts";
import { client, createTestTenant, type TestTenant } from "../helpers/factories";
import { createTestRuntime, type TestRuntime } from "../helpers/runtime";

let t: TestRuntime;
let tenant: TestTenant;
let rulesDir: string;

beforeAll(async () => {
  // A copy of the shipped lists, so one test can add a term.
  rulesDir = mkdtempSync(path.join(tmpdir(), "siyu-posts-rules-"));
  cpSync(DEFAULT_COMPLIANCE_DIR, rulesDir, { recursive: true });
  t = await createTestRuntime({ COMPLIANCE_RULES_DIR: rulesDir });
  tenant = await createTestTenant(t.rt.deps);
});
afterAll(async () => {
  await t?.close();
  rmSync(rulesDir, { recursive: true, force: true });
});

const as = (who: "admin" | "marketing" | "reviewer" | "consultant") => client(t.app, tenant.tokens[who]);

async function draft(body: string, kind = "community_post", extra: object = {}) {
  const res = await as("marketing").post("/v1/posts", { kind, body, ...extra });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return res.body;
}

async function submitted(body: string, kind = "community_post") {
  const d = await draft(body, kind);
  const res = await as("marketing").post(`/v1/posts/${d.id}/submit`);
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return res.body;
}

const review = (who: "admin" | "reviewer" | "marketing", post: { id: string; contentHash: string }, extra: object = {}) => as(who as "admin").post(`/v1/posts/${post.id}/reviews`, { decision: "approve", contentHash: post.contentHash, ...extra });
const gate = async (id: string) => (await as("marketing").get(`/v1/posts/${id}/gate`)).body;

/** What a send path does: the gate inside its transaction, with the content it is about to send. */
async function trySend(id: string, content: { title: string | null; body: string }): Promise<string | null> {
  try {
    await t.rt.deps.db.transaction((tx) => assertSendable(tx, systemCtx(t.rt.deps, tenant.id, "sender"), id, content));
    return null;
  } catch (err) {
    if (err instanceof SendRefused) return err.message;
    throw err;
  }
}

describe("posts: drafts and findings", () => {
  it("checks copy as written and as rendered with sample data, naming where each finding is", async () => {
    const p = await draft("{{name}}您好，本周{{item}}特惠，欢迎到院咨询。", "community_post", { sampleData: { item: "根治痘痘疗程" } });
    expect(p.status).toBe("draft");
    expect(p.contentHash).toMatch(/^[0-9a-f]{64}$/);
    expect(p.findings).toEqual([expect.objectContaining({ term: "根治", in: "rendered", severity: "block" })]);
    expect(p.blocking).toBe(true);
    const bad = await as("marketing").post("/v1/posts", { kind: "article", body: "{{#if name}}没有结束" });
    expect(bad.status).toBe(422);
    expect(bad.body.errors[0].field).toBe("body");
    const kind = await as("marketing").post("/v1/posts", { kind: "poster", body: "x" });
    expect(kind.body.errors[0].field).toBe("kind");
  });
});

describe("posts: multi-level review with four eyes", () => {
  it("approves a community post at one level; the reviewer's queue shows it, the author's does not", async () => {
    const p = await submitted("本周六护肤讲座，欢迎报名。");
    expect(p).toMatchObject({ status: "in_review", reviewLevel: 1, levelsRequired: 1 });
    // The queue pages through every post awaiting the reviewer, oldest submission first.
    const later = await submitted("下周二义诊活动预告。");
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const page: { body: { items: { id: string; submittedAt: string }[]; nextCursor: string | null } } = await as("reviewer").get(`/v1/reviews/queue?limit=1${cursor ? `&cursor=${cursor}` : ""}`);
      seen.push(...page.body.items.map((x) => x.id));
      cursor = page.body.nextCursor;
    } while (cursor);
    expect(seen.indexOf(p.id)).toBeGreaterThanOrEqual(0);
    expect(seen.indexOf(later.id)).toBeGreaterThan(seen.indexOf(p.id));
    expect(new Set(seen).size).toBe(seen.length);
    const ok = await review("reviewer", p);
    expect(ok.status).toBe(200);
    expect(ok.body).toMatchObject({ status: "approved", reviews: [expect.objectContaining({ level: 1, decision: "approve", contentHash: p.contentHash })] });
    expect(await gate(p.id)).toEqual({ sendable: true, reason: null });
  });

  it("refuses a reviewer their own copy, and one person two levels; a second reviewer completes it", async () => {
    const own = await as("admin").post("/v1/posts", { kind: "community_post", body: "门诊时间调整通知" });
    await as("admin").post(`/v1/posts/${own.body.id}/submit`);
    expect((await as("admin").get("/v1/reviews/queue")).body.items.map((x: { id: string }) => x.id)).not.toContain(own.body.id);
    const self = await review("admin", own.body);
    expect(self.status).toBe(403);

    const p = await submitted("会员日活动提醒：本月25日到院享专属服务。", "mass_message");
    expect(p.levelsRequired).toBe(2);
    const first = await review("reviewer", p);
    expect(first.body).toMatchObject({ status: "in_review", reviewLevel: 2 });
    expect(await gate(p.id)).toEqual({ sendable: false, reason: "the post is in_review, not approved" });
    const again = await review("reviewer", p);
    expect(again.status).toBe(403);
    const second = await review("admin", p);
    expect(second.body.status).toBe("approved");
    expect(await trySend(p.id, { title: null, body: p.body })).toBeNull();
  });

  it("binds approval to the content: a stale hash is refused, and any edit returns the post to draft", async () => {
    const p = await submitted("春季体检套餐上线，欢迎咨询。");
    const stale = await review("reviewer", { id: p.id, contentHash: "0".repeat(64) });
    expect(stale.status).toBe(409);
    await review("reviewer", p);
    const edited = await as("marketing").patch(`/v1/posts/${p.id}`, { body: "春季体检套餐上线，名额有限，欢迎咨询。" });
    expect(edited.body).toMatchObject({ status: "draft", reviewLevel: null });
    expect(edited.body.contentHash).not.toBe(p.contentHash);
    expect(await gate(p.id)).toEqual({ sendable: false, reason: "the post is draft, not approved" });
  });

  it("rejects with comments per finding; the author revises and resubmits", async () => {
    const p = await submitted("第一次来院的顾客，效果最好的项目推荐给您。");
    const finding = p.findings[0];
    const rej = await as("reviewer").post(`/v1/posts/${p.id}/reviews`, { decision: "reject", contentHash: p.contentHash, comments: [{ term: finding.term, start: finding.start, end: finding.end, comment: "改为客观描述" }], note: "请修改绝对化用语" });
    expect(rej.body).toMatchObject({ status: "rejected", reviews: [expect.objectContaining({ decision: "reject", comments: [expect.objectContaining({ comment: "改为客观描述" })] })] });
    expect((await as("marketing").post(`/v1/posts/${p.id}/submit`)).status).toBe(409);
    await as("marketing").patch(`/v1/posts/${p.id}`, { body: "第一次来院的顾客，欢迎预约面诊评估。" });
    const again = await as("marketing").post(`/v1/posts/${p.id}/submit`);
    expect(again.body).toMatchObject({ status: "in_review", findings: [] });
  });

  it("blocking findings need an admin's override with a reason, and the override is audited", async () => {
    const p = await submitted("三次根治痘痘，无效退款。");
    expect(p.blocking).toBe(true);
    const plain = await review("reviewer", p);
    expect(plain.status).toBe(422);
    expect(plain.body.errors[0].field).toBe("overrideReason");
    const notAdmin = await review("reviewer", p, { overrideReason: "领导说可以" });
    expect(notAdmin.status).toBe(403);
    const ok = await review("admin", p, { overrideReason: "经法务确认，为引用的医学文献原文" });
    expect(ok.body.status).toBe("approved");
    const rows = await t.rt.deps.db.select().from(auditLog).where(and(eq(auditLog.tenantId, tenant.id), eq(auditLog.entityId, p.id), eq(auditLog.action, "post.override")));
    expect(rows[0]!.after).toMatchObject({ overrideReason: "经法务确认，为引用的医学文献原文", findings: expect.arrayContaining(["根治"]) });
    expect(await gate(p.id)).toEqual({ sendable: true, reason: null });
  });
});

describe("the send gate", () => {
  it("refuses draft, rejected, edited-after-approval and self-approved copy, and logs each refusal", async () => {
    const d = await draft("欢迎加入本院会员群。");
    expect(await trySend(d.id, d)).toBe("the post is draft, not approved");

    const r = await submitted("本周皮肤管理讲座，欢迎报名。");
    await as("reviewer").post(`/v1/posts/${r.id}/reviews`, { decision: "reject", contentHash: r.contentHash, note: "时间写错" });
    expect(await trySend(r.id, r)).toBe("the post is rejected, not approved");

    const a = await submitted("十二月护肤小贴士：注意保湿。");
    await review("reviewer", a);
    // A sender holding different text than what was approved.
    expect(await trySend(a.id, { title: null, body: `${a.body}名额有限！` })).toBe("the content differs from the approved content");

    // Self-approval slipped in behind the API's back (e.g. a direct database write).
    const s = await submitted("口腔检查预约开放。");
    await t.rt.deps.db.insert(postReviews).values({ tenantId: tenant.id, postId: s.id, level: 1, reviewerStaffId: tenant.staff.marketing.id, decision: "approve", contentHash: s.contentHash });
    await t.rt.deps.db.execute(`update posts set status = 'approved' where id = '${s.id}'`);
    expect(await trySend(s.id, s)).toBe("level 1 was approved by the post's own author");

    const refused = await t.rt.deps.db.select().from(auditLog).where(and(eq(auditLog.tenantId, tenant.id), eq(auditLog.action, "post.send.refused")));
    expect(refused.map((x) => x.entityId)).toEqual(expect.arrayContaining([d.id, r.id, a.id, s.id]));
  });

  it("refuses approved copy when the lists in use gain a blocking term it contains", async () => {
    const p = await submitted("冬季焕肤季，专属护理方案。");
    await review("reviewer", p);
    expect(await trySend(p.id, p)).toBeNull();
    appendFileSync(path.join(rulesDir, "other.tsv"), "焕肤季\tother\tblock\t广告法第九条\t冬季护理\n");
    await new Promise((r) => setTimeout(r, 2100));
    expect(await trySend(p.id, p)).toMatch(/^the lists in use \(version [0-9a-f]{12}\) find blocking terms: 焕肤季$/);
  });
});
