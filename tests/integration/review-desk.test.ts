import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Ctx } from "../../src/services/context";
import { systemCtx } from "../../src/services/context";
import { postDetail, postSummaries, reviewDesk } from "../../src/services/posts/review-desk";
import { client, createTestTenant, type StaffKey, type TestTenant } from "../helpers/factories";
import { createTestRuntime, type TestRuntime } from "../helpers/runtime";

/**
 * The review desk the console's reviewers use: the queue by due time (the next send of the
 * calendar entries using each post), per-finding comments that say which text they point at, the
 * history with names, and where a post stands for a calendar's entries.
 */
let t: TestRuntime;
let tenant: TestTenant;
beforeAll(async () => {
  t = await createTestRuntime();
  tenant = await createTestTenant(t.rt.deps);
});
afterAll(async () => {
  await t?.close();
});

const as = (who: StaffKey) => client(t.app, tenant.tokens[who]);
const ctxOf = (who: "admin" | "reviewer" | "marketing" | "manager"): Ctx => ({ ...systemCtx(t.rt.deps, tenant.id, "test"), actor: { kind: "staff", staffId: tenant.staff[who].id, role: who, name: `${who} ${tenant.slug}`, via: "token" } });
/** A local date in Shanghai, n days from now. */
const day = (n: number) => new Intl.DateTimeFormat("sv-SE", { timeZone: "Asia/Shanghai" }).format(new Date(Date.now() + n * 86_400_000));

/** A calendar made and published through the API by marketing: its entries' posts go to review. */
async function publishedCalendar(entries: object[], audience: object = { segment: `source = "desk-${randomBytes(3).toString("hex")}"` }) {
  const key = `desk-${randomBytes(4).toString("hex")}`;
  const created = await as("marketing").post("/v1/calendars", { key, name: key, audience, entries });
  expect(created.status, JSON.stringify(created.body)).toBe(201);
  const published = await as("marketing").post(`/v1/calendars/${created.body.id}/publish`);
  expect(published.status, JSON.stringify(published.body)).toBe(200);
  return { id: created.body.id as string, name: key, posts: Object.fromEntries((published.body.entries as { key: string; postId: string; entryId: string }[]).map((e) => [e.key, e])) };
}

describe("review desk", () => {
  it("orders the queue by the next send of each post's entry, then copy timed per recipient, then posts outside calendars; pages by cursor", async () => {
    const loose = await as("marketing").post("/v1/posts", { kind: "community_post", body: "欢迎加入祛痘交流群，有问题随时问。" });
    expect((await as("marketing").post(`/v1/posts/${loose.body.id}/submit`)).status).toBe(200);
    const later = await publishedCalendar([{ key: "later", when: { date: day(5), time: "10:00" }, kind: "text", template: "五天后的护肤讲座，欢迎报名。" }]);
    const soon = await publishedCalendar([
      { key: "soon", when: { date: day(1), time: "10:00" }, kind: "text", template: "明天上午的护肤小贴士。" },
      { key: "weekly", when: { weekday: 1, time: "11:00" }, kind: "text", template: "每周一的护肤问答。" },
    ]);
    const rel = await publishedCalendar([{ key: "d3", when: { day: 3, time: "10:00" }, kind: "text", template: "术后第三天，注意防晒。", service: true }], { enrollment: { on: { event: "visit" } } });

    const desk = await reviewDesk({ ctx: ctxOf("reviewer"), input: {} });
    const ids = desk.items.map((i) => i.post.id);
    const at = (id: string) => ids.indexOf(id);
    // Dated entries by their time (the weekly one's next Monday lies 0-7 days out); copy timed per recipient and posts outside calendars after them, by submission.
    expect(at(soon.posts.soon!.postId)).toBeLessThan(at(later.posts.later!.postId));
    const weeklyDue = desk.items.find((i) => i.post.id === soon.posts.weekly!.postId)!.dueAt!;
    expect(new Date(weeklyDue).getTime()).toBeGreaterThan(Date.now() - 60_000);
    expect(new Date(weeklyDue).getTime()).toBeLessThanOrEqual(Date.now() + 8 * 86_400_000);
    for (const dated of [soon.posts.soon!, soon.posts.weekly!, later.posts.later!]) {
      expect(at(dated.postId)).toBeLessThan(at(loose.body.id));
      expect(at(dated.postId)).toBeLessThan(at(rel.posts.d3!.postId));
    }
    expect(at(loose.body.id)).toBeLessThan(at(rel.posts.d3!.postId));
    const soonItem = desk.items[at(soon.posts.soon!.postId)]!;
    expect(soonItem.dueAt).toBe(new Date(`${day(1)}T02:00:00.000Z`).toISOString());
    expect(soonItem.uses).toEqual([expect.objectContaining({ calendarId: soon.id, calendarName: soon.name, entryKey: "soon", when: { kind: "at", at: `${day(1)}T10:00` } })]);
    expect(desk.items[at(rel.posts.d3!.postId)]!.dueAt).toBeNull();
    expect(desk.items[at(loose.body.id)]!.uses).toEqual([]);

    // Two at a time, the same order.
    const seen: string[] = [];
    let cursor: string | undefined;
    do {
      const page = await reviewDesk({ ctx: ctxOf("reviewer"), input: { limit: 2, cursor } });
      expect(page.items.length).toBeLessThanOrEqual(2);
      seen.push(...page.items.map((i) => i.post.id));
      cursor = page.nextCursor ?? undefined;
    } while (cursor);
    expect(seen).toEqual(ids);
    await expect(reviewDesk({ ctx: ctxOf("reviewer"), input: { cursor: "nonsense" } })).rejects.toMatchObject({ status: 422 });
    // Marketing writes copy and does not review it.
    await expect(reviewDesk({ ctx: ctxOf("marketing"), input: {} })).rejects.toMatchObject({ status: 403 });
  });

  it("stores per-finding comments with the text they point at, shows the history with names, and sums a post up for the calendar", async () => {
    const cal = await publishedCalendar([{ key: "best", when: { date: day(2), time: "10:00" }, kind: "text", template: "我们的祛痘效果最好，欢迎咨询。" }]);
    const postId = cal.posts.best!.postId;
    const detail = await postDetail({ ctx: ctxOf("reviewer"), id: postId });
    const finding = detail.post.findings.find((f) => f.term === "效果最好")!;
    expect(finding).toMatchObject({ in: "body", severity: "block", category: "absolute" });
    expect(detail.authorName).toBe(`marketing ${tenant.slug}`);
    expect(detail.uses.map((u) => u.entryKey)).toEqual(["best"]);

    // The API takes `in` with a comment (and still the shape without it).
    const res = await as("reviewer").post(`/v1/posts/${postId}/reviews`, {
      decision: "reject",
      contentHash: detail.post.contentHash,
      comments: [{ term: finding.term, start: finding.start, end: finding.end, in: finding.in, comment: "绝对化用语，改为“效果因人而异”" }],
      note: "请修改后再提交",
    });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body.reviews[0].comments).toEqual([{ term: "效果最好", start: finding.start, end: finding.end, in: "body", comment: "绝对化用语，改为“效果因人而异”" }]);
    const after = await postDetail({ ctx: ctxOf("marketing"), id: postId });
    expect(after.post.status).toBe("rejected");
    expect(after.post.reviews).toEqual([expect.objectContaining({ decision: "reject", level: 1, reviewerName: `reviewer ${tenant.slug}`, note: "请修改后再提交", comments: [expect.objectContaining({ in: "body", comment: "绝对化用语，改为“效果因人而异”" })] })]);

    const sums = await postSummaries({ ctx: ctxOf("marketing"), ids: [postId, "not-a-uuid"] });
    expect([...sums.keys()]).toEqual([postId]);
    expect(sums.get(postId)).toMatchObject({ status: "rejected", blocking: true, findings: 1, levelsRequired: 2, lastDecision: { decision: "reject", level: 1, reviewerName: `reviewer ${tenant.slug}`, comments: 1, note: "请修改后再提交" } });
    // Managers read calendars, not posts.
    await expect(postSummaries({ ctx: ctxOf("manager"), ids: [postId] })).rejects.toMatchObject({ status: 403 });

    // The fixed copy is a new post in review (two levels for 1:1 mass messages): the reviewer approves level 1, then only the admin has it.
    const cal2 = await publishedCalendar([{ key: "fixed", when: { date: day(2), time: "10:00" }, kind: "text", template: "祛痘效果因人而异，欢迎咨询。" }]);
    const fixed = await postDetail({ ctx: ctxOf("reviewer"), id: cal2.posts.fixed!.postId });
    expect(fixed.post.findings).toEqual([]);
    expect((await as("reviewer").post(`/v1/posts/${fixed.post.id}/reviews`, { decision: "approve", contentHash: fixed.post.contentHash })).status).toBe(200);
    expect((await reviewDesk({ ctx: ctxOf("reviewer"), input: { limit: 200 } })).items.some((i) => i.post.id === fixed.post.id)).toBe(false);
    expect((await reviewDesk({ ctx: ctxOf("admin"), input: { limit: 200 } })).items.find((i) => i.post.id === fixed.post.id)?.post.reviewLevel).toBe(2);
    expect((await postSummaries({ ctx: ctxOf("marketing"), ids: [fixed.post.id] })).get(fixed.post.id)).toMatchObject({ status: "in_review", reviewLevel: 2, lastDecision: { decision: "approve", level: 1 } });
  });
});
