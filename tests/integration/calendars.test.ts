import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { serve, type ServerType } from "@hono/node-server";
import { and, eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { auditLog, calendarEntries, posts } from "../../src/db/schema/index";
import { DEFAULT_CALENDARS_DIR, loadCalendarFile } from "../../src/loaders/calendars";
import { runSiyu } from "../helpers/cli";
import { client, createTestTenant, type ApiResponse, type TestTenant } from "../helpers/factories";
import { createTestRuntime, type TestRuntime } from "../helpers/runtime";

let t: TestRuntime;
let tenant: TestTenant;
let dir: string;

beforeAll(async () => {
  t = await createTestRuntime();
  tenant = await createTestTenant(t.rt.deps);
  dir = mkdtempSync(path.join(tmpdir(), "siyu-calendars-"));
});
afterAll(async () => {
  await t?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const as = (who: "admin" | "marketing" | "reviewer" | "manager") => client(t.app, tenant.tokens[who]);
const fields = (res: ApiResponse): string[] => ((res.body?.errors ?? []) as { field: string }[]).map((e) => e.field);
const shipped = (name: string) => path.join(DEFAULT_CALENDARS_DIR, name);

/** A copy of a shipped calendar with its text edited, in its own folder. */
function edited(name: string, edit: (yaml: string) => string, folder = mkdtempSync(path.join(dir, "lint-"))): string {
  const file = path.join(folder, name);
  writeFileSync(file, edit(readFileSync(shipped(name), "utf8")));
  return file;
}

/** A calendar definition read from a shipped file (what `siyu calendar publish` sends). */
async function definitionOf(name: string) {
  const { calendar, issues } = await loadCalendarFile(shipped(name));
  expect(issues).toEqual([]);
  return calendar!;
}

async function entriesOf(calendarId: string) {
  return t.rt.deps.db.select().from(calendarEntries).where(eq(calendarEntries.calendarId, calendarId));
}

describe("siyu calendar lint", () => {
  it("passes the shipped content-calendars/ folder (exit 0)", async () => {
    const r = await runSiyu(["calendar", "lint"]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^ok: 4 calendar\(s\), \d+ entries/m);
    expect(r.stdout).not.toMatch(/error/);
  });

  it("fails a broken file, naming file, line, entry and field (exit 1)", async () => {
    const file = edited("acne-community-7d.yaml", (y) =>
      y
        .replace("kind: text\n    template: |-\n      【周一护肤小贴士】", "kind: text\n    tempalte: oops\n    template: |-\n      【周一护肤小贴士】")
        .replace("午休时间分享一篇科普", "{{price}}午休时间分享一篇科普")
        .replace('when: { weekday: 周五, time: "18:30" }', 'when: { weekday: 周五, time: "22:30" }'),
    );
    const r = await runSiyu(["calendar", "lint", file]);
    expect(r.code).toBe(1);
    const lines = r.stdout.trim().split("\n");
    expect(lines).toEqual(
      expect.arrayContaining([
        expect.stringMatching(new RegExp(`^${file}:\\d+: mon-tips: entries\\[0\\]\\.tempalte: error: is not a field here`)),
        expect.stringMatching(new RegExp(`^${file}:\\d+: tue-article: entries\\[1\\]\\.template: error: uses \\{\\{price\\}\\}, which is not declared`)),
        expect.stringMatching(new RegExp(`^${file}:\\d+: fri-check-in: entries\\[4\\]\\.when\\.time: error: 22:30 falls in the quiet hours`)),
      ]),
    );
    expect(lines[lines.length - 1]).toMatch(/^3 error\(s\), 0 warning\(s\) in 1 file\(s\)$/);
    // The line is the field's own line in the file.
    const typo = lines.find((l) => l.includes("tempalte"))!;
    const line = Number(typo.split(":")[1]);
    expect(readFileSync(file, "utf8").split("\n")[line - 1]).toMatch(/^\s+tempalte: oops/);
  });

  it("fails an entry with a banned word, as written or hidden in a variable's value; warn findings only print", async () => {
    const folder = mkdtempSync(path.join(dir, "banned-"));
    edited("post-treatment-care-30d.yaml", (y) => y.replace("轻微泛红一般会慢慢消退", "一次根治，全程无痛"), folder);
    edited("member-day-monthly.yaml", (y) => y.replace("value: 18日", "value: 18日全网最低价"), folder);
    const r = await runSiyu(["calendar", "lint", folder]);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/post-treatment-care-30d\.yaml:\d+: day1-check: entries\[1\]\.template: error: "一次根治" at \d+-\d+: efficacy/);
    expect(r.stdout).toMatch(/member-day-monthly\.yaml:\d+: member-day-preview: entries\[1\]\.template: error: "全网最低价".*rendered with the samples/);
    // 无痛 is a warning: printed, not counted as an error.
    expect(r.stdout).toMatch(/day1-check: entries\[1\]\.template: warning: "无痛"/);
    expect(r.stdout).toMatch(/^2 error\(s\), 1 warning\(s\) in 2 file\(s\)$/m);
  });

  it("reads a template kept in its own file; a missing one names the entry", async () => {
    const folder = mkdtempSync(path.join(dir, "files-"));
    mkdirSync(path.join(folder, "templates"));
    writeFileSync(path.join(folder, "templates", "hello.md"), "{{name}}好，本周门诊时间照常。\n");
    const cal = (file: string) => `name: 门诊通知\naudience: { segment: "visit:复诊" }\nvariables: { name: { fallback: 您 } }\nentries:\n  - key: hello\n    when: { weekday: 1, time: "10:00" }\n    kind: text\n    templateFile: ${file}\n`;
    writeFileSync(path.join(folder, "notice.yaml"), cal("templates/hello.md"));
    const ok = await runSiyu(["calendar", "lint", path.join(folder, "notice.yaml")]);
    expect(ok.code, ok.stdout).toBe(0);
    const loaded = await loadCalendarFile(path.join(folder, "notice.yaml"));
    expect(loaded.calendar!.definition.entries[0]!.template).toBe("{{name}}好，本周门诊时间照常。");
    writeFileSync(path.join(folder, "notice.yaml"), cal("templates/gone.md"));
    const bad = await runSiyu(["calendar", "lint", folder]);
    expect(bad.code).toBe(1);
    expect(bad.stdout).toMatch(/notice\.yaml:8: hello: entries\[0\]\.templateFile: error: cannot be read/);
  });
});

describe("calendars through the API", () => {
  it("publishes a calendar: entries become posts submitted for review, audited", async () => {
    const cal = await definitionOf("post-treatment-care-30d.yaml");
    const created = await as("marketing").post("/v1/calendars", { key: cal.key, source: "file", ...cal.definition });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    expect(created.body).toMatchObject({ key: "post-treatment-care-30d", kind: "relative", status: "draft", version: 0, source: "file" });
    expect(created.body.definition.timeZone).toBe("Asia/Shanghai");

    const pub = await as("marketing").post(`/v1/calendars/${created.body.id}/publish`);
    expect(pub.status, JSON.stringify(pub.body)).toBe(200);
    expect(pub.body).toMatchObject({ version: 1, unchanged: false });
    expect(pub.body.entries.map((e: { key: string; change: string; postStatus: string }) => [e.key, e.change, e.postStatus])).toEqual(cal.definition.entries.map((e) => [e.key, "new", "in_review"]));

    const rows = await entriesOf(created.body.id);
    expect(rows).toHaveLength(6);
    const day7 = rows.find((r) => r.key === "day7-follow-up")!;
    expect(day7).toMatchObject({ channel: "single", service: true, kind: "miniprogram", when: { kind: "relative", day: 7, time: "10:30" }, conditions: { skipIf: "visit:复诊" }, calendarVersion: 1, removedAt: null });
    const survey = rows.find((r) => r.key === "day30-survey")!;
    expect(survey.service).toBe(false);
    const [post] = await t.rt.deps.db.select().from(posts).where(eq(posts.id, survey.postId!));
    expect(post).toMatchObject({ kind: "mass_message", status: "in_review", levelsRequired: 2, createdByStaffId: tenant.staff.marketing.id });
    expect(post!.body).toBe(cal.definition.entries.find((e) => e.key === "day30-survey")!.template);
    expect(post!.title).toContain("https://m.example-clinic.cn/survey/nps");
    expect(post!.sampleData).toMatchObject({ name: "王女士", link: "https://m.example-clinic.cn/survey/nps" });

    // The reviewers' queue has them; the calendar shows each entry with its post.
    const queue = await as("reviewer").get("/v1/reviews/queue?limit=200");
    expect(queue.body.items.map((p: { id: string }) => p.id)).toEqual(expect.arrayContaining(rows.map((r) => r.postId)));
    const got = await as("manager").get(`/v1/calendars/${created.body.id}`);
    expect(got.status).toBe(200);
    expect(got.body).toMatchObject({ status: "published", version: 1 });
    expect(got.body.entries).toHaveLength(6);
    expect(got.body.entries[0]).toMatchObject({ postStatus: "in_review", removedAt: null });

    const audits = await t.rt.deps.db.select().from(auditLog).where(and(eq(auditLog.entityId, created.body.id), eq(auditLog.action, "calendar.publish")));
    expect(audits).toHaveLength(1);
    expect(audits[0]!.actorStaffId).toBe(tenant.staff.marketing.id);
    expect(audits[0]!.after).toMatchObject({ version: 1, new: 6, changed: 0, kept: 0, removed: 0 });
  });

  it("keeps posts (and approvals) of unchanged entries; a changed entry gets a new post; a dropped one is removed", async () => {
    const cal = await definitionOf("acne-community-7d.yaml");
    const created = await as("marketing").post("/v1/calendars", { key: "acne-weekly", ...cal.definition });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    const id = created.body.id as string;
    const first = await as("marketing").post(`/v1/calendars/${id}/publish`);
    expect(first.status).toBe(200);
    const postOf = (r: ApiResponse, key: string) => r.body.entries.find((e: { key: string }) => e.key === key);

    // Republishing the same definition changes nothing.
    const again = await as("marketing").post(`/v1/calendars/${id}/publish`);
    expect(again.body).toMatchObject({ version: 1, unchanged: true });
    expect(again.body.entries.map((e: { postId: string }) => e.postId)).toEqual(first.body.entries.map((e: { postId: string }) => e.postId));

    // Approve two entries' posts (group entries are community posts: one level).
    for (const key of ["mon-tips", "wed-doctor-qa"]) {
      const p = (await as("reviewer").get(`/v1/posts/${postOf(first, key).postId}`)).body;
      expect(p.kind).toBe("community_post");
      const ok = await as("reviewer").post(`/v1/posts/${p.id}/reviews`, { decision: "approve", contentHash: p.contentHash });
      expect(ok.body.status).toBe("approved");
    }

    // Edit: change wed-doctor-qa's text, drop sun-topic-poll, move mon-tips' time (not content).
    const def = structuredClone(cal.definition);
    def.entries = def.entries.filter((e) => e.key !== "sun-topic-poll");
    def.entries.find((e) => e.key === "wed-doctor-qa")!.template += "\n今晚名额不限，欢迎参与。";
    def.entries.find((e) => e.key === "mon-tips")!.when = { weekday: "周一", time: "10:30" };
    const saved = await as("marketing").call("PUT", `/v1/calendars/${id}`, def);
    expect(saved.status, JSON.stringify(saved.body)).toBe(200);
    // The calendar was published, so saving publishes the change at once.
    const pub = saved.body.published;
    expect(pub).toMatchObject({ version: 2, unchanged: false });
    expect(postOf({ body: pub } as ApiResponse, "mon-tips")).toMatchObject({ change: "kept", postId: postOf(first, "mon-tips").postId, postStatus: "approved" });
    const qa = pub.entries.find((e: { key: string }) => e.key === "wed-doctor-qa");
    expect(qa).toMatchObject({ change: "changed", postStatus: "in_review" });
    expect(qa.postId).not.toBe(postOf(first, "wed-doctor-qa").postId);
    expect(pub.entries.find((e: { key: string }) => e.key === "sun-topic-poll")).toMatchObject({ change: "removed" });
    expect(pub.entries.filter((e: { change: string }) => e.change === "kept")).toHaveLength(5);

    // The new post carries no approval: the gate refuses it; the kept one is sendable.
    expect((await as("marketing").get(`/v1/posts/${qa.postId}/gate`)).body).toEqual({ sendable: false, reason: "the post is in_review, not approved" });
    expect((await as("marketing").get(`/v1/posts/${postOf(first, "mon-tips").postId}/gate`)).body).toEqual({ sendable: true, reason: null });

    const rows = await entriesOf(id);
    expect(rows.find((r) => r.key === "mon-tips")).toMatchObject({ when: { kind: "weekday", weekday: 1, time: "10:30" }, calendarVersion: 2 });
    expect(rows.find((r) => r.key === "wed-doctor-qa")!.postId).toBe(qa.postId);
    expect(rows.find((r) => r.key === "sun-topic-poll")!.removedAt).not.toBeNull();

    // Bringing the dropped entry back unchanged restores its post.
    const restored = await as("marketing").call("PUT", `/v1/calendars/${id}`, { ...def, entries: [...def.entries, cal.definition.entries.find((e) => e.key === "sun-topic-poll")!] });
    expect(restored.body.published.entries.find((e: { key: string }) => e.key === "sun-topic-poll")).toMatchObject({ change: "kept", postId: postOf(first, "sun-topic-poll").postId });
    expect((await entriesOf(id)).find((r) => r.key === "sun-topic-poll")!.removedAt).toBeNull();
  });

  it("refuses invalid definitions with 422 naming each field", async () => {
    const cal = await definitionOf("member-day-monthly.yaml");
    const def = structuredClone(cal.definition);
    def.entries[1]!.template = "{{name}}好，{{price}}特惠";
    (def.entries[2] as Record<string, unknown>).tempalte = "typo";
    const bad = await as("marketing").post("/v1/calendars", { key: "member-day", ...def });
    expect(bad.status).toBe(422);
    expect(bad.body.code).toBe("VALIDATION_FAILED");
    expect(fields(bad)).toEqual(["entries[2].tempalte", "entries[1].template"]);
    expect(bad.body.errors[1].message).toMatch(/\{\{price\}\}/);

    // What only the tenant knows: owners and tags.
    const tenantBad = await as("marketing").post("/v1/calendars", { key: "member-day", ...cal.definition, owner: "nobody@example.test", audience: { segment: "purchases >= 1 AND visit:复珍" } });
    expect(tenantBad.status).toBe(422);
    expect(fields(tenantBad)).toEqual(["owner", "audience.segment"]);
    expect(tenantBad.body.errors[1].message).toBe("unknown tag visit:复珍");

    const key = await as("marketing").post("/v1/calendars", { key: "Member Day", ...cal.definition });
    expect(fields(key)).toEqual(["key"]);

    // A valid one with an owner by email; the key is then taken.
    const ok = await as("marketing").post("/v1/calendars", { key: "member-day", ...cal.definition, owner: tenant.staff.marketing.email.toUpperCase() });
    expect(ok.status, JSON.stringify(ok.body)).toBe(201);
    const dup = await as("marketing").post("/v1/calendars", { key: "member-day", ...cal.definition });
    expect(dup.status).toBe(409);
    const rename = await as("marketing").call("PUT", `/v1/calendars/${ok.body.id}`, { key: "other", ...cal.definition });
    expect(fields(rename)).toEqual(["key"]);
    const pub = await as("admin").post(`/v1/calendars/${ok.body.id}/publish`);
    expect(pub.status).toBe(200);
    const rows = await entriesOf(ok.body.id);
    expect(new Set(rows.map((r) => r.ownerStaffId))).toEqual(new Set([tenant.staff.marketing.id]));
    expect(rows.find((r) => r.key === "birthday")!.when).toEqual({ kind: "birthday", daysBefore: 0, time: "09:30" });

    const list = await as("manager").get("/v1/calendars?key=member-day");
    expect(list.body.items.map((c: { id: string }) => c.id)).toEqual([ok.body.id]);
  });

  it("lints a definition without saving it: schema, banned words, owners", async () => {
    const cal = await definitionOf("acne-community-7d.yaml");
    const clean = await as("manager").post("/v1/calendars/lint", cal.definition);
    expect(clean.body).toEqual({ ok: true, kind: "dated", issues: [] });
    const def = structuredClone(cal.definition);
    def.entries[0]!.template = "三天祛痘，效果最好！";
    const res = await as("marketing").post("/v1/calendars/lint", def);
    expect(res.status).toBe(200);
    expect(res.body.ok).toBe(false);
    expect(res.body.issues).toEqual([
      { entry: "mon-tips", path: "entries[0].template", level: "error", message: expect.stringMatching(/^"三天祛痘"/) },
      { entry: "mon-tips", path: "entries[0].template", level: "error", message: expect.stringMatching(/^"效果最好"/) },
    ]);
    const shape = await as("marketing").post("/v1/calendars/lint", { name: "x", entries: [] });
    expect(shape.body.issues.map((i: { path: string }) => i.path)).toEqual(["audience", "entries"]);
  });
});

describe("siyu calendar publish (CLI against a real HTTP server)", () => {
  let server: ServerType;
  let base: string;
  beforeAll(async () => {
    server = await new Promise<ServerType>((resolve) => {
      const s = serve({ fetch: t.app.fetch, port: 0, hostname: "127.0.0.1" }, () => resolve(s));
    });
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await new Promise<void>((resolve) => {
      server?.close(() => resolve());
      (server as unknown as { closeAllConnections?: () => void })?.closeAllConnections?.();
    });
  });

  it("creates and publishes the file's calendar, then reports an unchanged republish; a broken file is not sent", async () => {
    const folder = mkdtempSync(path.join(dir, "publish-"));
    cpSync(shipped("member-day-monthly.yaml"), path.join(folder, "member-monthly.yaml"));
    const file = path.join(folder, "member-monthly.yaml");
    const run = (f = file) => runSiyu(["calendar", "publish", f, "--url", base, "--token", tenant.tokens.marketing], t.env);
    const r = await run();
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^member-monthly: published version 1 \(5 new, 0 changed, 0 kept, 0 removed\)/m);
    expect(r.stdout).toMatch(/^ {2}birthday: new, post [0-9a-f-]{36} in_review$/m);
    const again = await run();
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toMatch(/^member-monthly: unchanged since version 1/m);
    const list = await as("marketing").get("/v1/calendars?key=member-monthly");
    expect(list.body.items[0]).toMatchObject({ source: "file", status: "published", version: 1 });

    writeFileSync(file, readFileSync(file, "utf8").replace("{{clinic}}会员日", "{{shop}}会员日"));
    const broken = await run();
    expect(broken.code).toBe(1);
    expect(broken.stderr).toMatch(/member-monthly\.yaml:\d+: member-day: entries\[2\]\.template: error: uses \{\{shop\}\}/);
    const denied = await runSiyu(["calendar", "publish", shipped("acne-community-7d.yaml"), "--url", base, "--token", tenant.tokens.reviewer], t.env);
    expect(denied.code).toBe(1);
    expect(denied.stderr).toMatch(/refused: 403/);
  });
});
