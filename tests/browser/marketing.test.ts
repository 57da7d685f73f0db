import type { Page } from "playwright-core";
import { readFile } from "node:fs/promises";
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { systemCtx } from "../../src/services/context";
import { snapshotSegments } from "../../src/services/segments/segments";
import { client, phone, type StaffKey } from "../helpers/factories";
import { waitFor } from "../helpers/wait";
import { type ConsoleHarness, navKeys, startConsole } from "./helpers";

/** Marketing's pages in Debian's Chromium: tag rules (draft, dry run, publish, roll back) and segments. */
let h: ConsoleHarness;
beforeAll(async () => {
  h = await startConsole();
}, 120_000);
afterAll(async () => {
  await h?.close();
});

const api = (who: StaffKey = "marketing") => client(h.rt.app, h.tenant.tokens[who]);

/** Accepts or dismisses the page's next confirm dialog; `message()` is what it asked. */
function answerNextDialog(page: Page, accept: boolean): { message: () => string } {
  let asked = "";
  page.once("dialog", (d) => {
    asked = d.message();
    void (accept ? d.accept() : d.dismiss());
  });
  return { message: () => asked };
}
const day = (offset: number) => new Date(Date.now() + offset * 86_400_000).toISOString().slice(0, 10);

type Rule = { id: string; when?: { agg?: { metric: string } } } & Record<string, unknown>;
type Definition = { params: Record<string, number>; needs: Record<string, string[]>; rules: Rule[] };

/** A contact who reads an article on 祛痘, tagged need:祛痘 by the published rules. */
async function acneReader(name: string): Promise<string> {
  const c = await api("admin").post("/v1/contacts", { name, phone: phone(), source: "qr_poster" });
  expect(c.status).toBe(201);
  const ev = await api().post("/v1/events", { events: [{ type: "article_read", contactId: c.body.id, occurredAt: new Date(Date.now() - 60_000).toISOString(), idempotencyKey: randomUUID(), data: { articleId: "acne-102", topic: "祛痘", dwellSeconds: 60 } }] });
  expect(ev.status).toBe(202);
  await waitFor(async () => ((await api("admin").get(`/v1/contacts/${c.body.id}/tags`)).body.tags ?? []).some((x: { group: string; name: string }) => x.group === "need" && x.name === "祛痘"), { what: `need:祛痘 on ${name}` });
  return c.body.id as string;
}

describe("console: tag rules", () => {
  let published: Definition;

  it("marketing signs in and sees the published set by tag group, with no draft yet", async () => {
    const page = await h.newPage();
    await h.signIn(page, "marketing");
    await h.openSection(page, "rules");
    expect(await page.locator("h1").textContent()).toBe("标签规则");
    expect(await page.locator("nav#sidenav [aria-current=page]").getAttribute("data-nav")).toBe("rules");

    const rules = (await api().get("/v1/tag-rules")).body;
    published = rules.published.definition;
    expect(await page.getByTestId("published-meta").textContent()).toMatch(new RegExp(`^第 1 版 · 系统 发布于 \\d{4}/\\d{2}/\\d{2} \\d{2}:\\d{2} · 共 ${rules.published.rules} 条规则$`));
    const groups = await page.locator("[data-testid=published] [data-group]").evaluateAll((els) => els.map((e) => e.getAttribute("data-group")));
    expect(groups).toEqual(["visit", "spending", "need", "engagement", "lost_reason", "nps", "referral", "_lead"]);
    // Every rule is listed once, in a line people can read: id, triggers, what it sets.
    expect(await page.locator("[data-testid=published] tr[data-rule]").count()).toBe(rules.published.rules);
    const acne = page.locator("[data-group=need] tr[data-rule=need-acne]");
    expect(await acne.textContent()).toContain("提到或关注「祛痘」");
    expect(await acne.locator("td").nth(1).textContent()).toContain("阅读文章");
    expect(await acne.locator("td").nth(2).textContent()).toContain("提到需求「祛痘」");
    expect(await acne.locator("td").nth(3).textContent()).toBe("添加 need:祛痘");
    const dormant = page.locator("[data-group=visit] tr[data-rule=visit-dormant]");
    expect(await dormant.locator("td").nth(1).textContent()).toBe("每日定时");
    expect(await dormant.locator("td").nth(2).textContent()).toContain("dormant_days (180)");

    expect(await page.getByTestId("no-draft").textContent()).toContain("还没有草稿");
    expect(await page.locator("[data-testid=versions] tbody tr").count()).toBe(1);
    await h.screenshot(page, "marketing-rules");
  });

  it("a draft with a bad field is refused with the rule id and the path next to the editor; the fixed draft saves", async () => {
    const page = await h.newPage();
    await h.signIn(page, "marketing");
    await page.goto("/console/rules");
    await page.getByTestId("start-draft").click();
    await page.waitForURL(/start=1/);
    // The editor starts from the published set, as YAML.
    const editor = page.getByLabel("规则（YAML", { exact: false });
    const start = await editor.inputValue();
    expect(start).toContain("rules:");
    expect(start).toContain("id: need-acne");

    const bad: Definition = structuredClone(published);
    const first = bad.rules.find((r) => r.id === "visit-first")!;
    first.when!.agg!.metric = "median";
    await editor.fill(stringify({ params: bad.params, needs: bad.needs, rules: bad.rules }));
    await page.getByLabel("说明").fill("读文章的客户也标记抗衰");
    const [res] = await Promise.all([page.waitForResponse((r) => r.url().endsWith("/console/rules/draft")), page.getByTestId("save").click()]);
    expect(res.status()).toBe(422);
    const refusal = page.locator("#r-refusals li[data-rule=visit-first]");
    expect(await refusal.getAttribute("data-path")).toBe("when.agg.metric");
    expect(await refusal.textContent()).toContain("visit-first");
    expect(await refusal.textContent()).toContain("when.agg.metric");
    expect(await page.locator("#r-refusals").getAttribute("class")).toContain("has-errors");
    expect(await editor.getAttribute("aria-invalid")).toBe("true");
    expect(await editor.getAttribute("aria-describedby")).toContain("r-refusals");
    // The text stays as typed, and the refusal points at its line.
    const text = await editor.inputValue();
    expect(text).toContain("metric: median");
    const line = Number(await refusal.locator("a[data-line]").getAttribute("data-line"));
    expect(text.split("\n")[line - 1]).toContain("median");
    await refusal.locator("a[data-line]").click();
    expect(await page.evaluate("document.activeElement.id")).toBe("r-definition");
    expect((await api().get("/v1/tag-rules")).body.draft).toBeNull();
    await h.screenshot(page, "marketing-rules-refused");

    // Broken YAML is refused with its line too.
    await editor.fill("rules:\n  - id: [unclosed\n");
    await page.getByTestId("save").click();
    expect(await page.locator("#r-refusals li").first().textContent()).toMatch(/第 \d+ 行/);

    // Fixed, plus one rule more: readers of any article are also tagged need:抗衰.
    const fixed: Definition = structuredClone(published);
    fixed.rules.push({ id: "need-antiaging-readers", name: "读过文章的客户也关注抗衰", trigger: { events: ["article_read"] }, when: { agg: { metric: "count", events: ["article_read"] }, op: "gte", value: 1 }, then: [{ add: { group: "need", tag: "抗衰" } }] } as unknown as Rule);
    await editor.fill(stringify({ params: fixed.params, needs: fixed.needs, rules: fixed.rules }));
    await page.getByLabel("说明").fill("读文章的客户也标记抗衰");
    await page.getByTestId("save").click();
    await page.waitForURL(/done=saved&v=2/);
    expect(await page.getByTestId("flash").textContent()).toContain("草稿第 2 版已保存");
    expect(await page.getByTestId("draft-meta").textContent()).toContain(`草稿第 2 版 · marketing ${h.tenant.slug} 保存于`);
    const draft = (await api().get("/v1/tag-rules")).body.draft;
    expect(draft).toMatchObject({ version: 2, status: "draft", note: "读文章的客户也标记抗衰", rules: published.rules.length + 1 });
  });

  it("the saved draft dry-runs with per-tag counts and sample contacts", async () => {
    const page = await h.newPage();
    await h.signIn(page, "marketing");
    await page.goto("/console/rules");
    await page.getByTestId("dry-run").click();
    await page.waitForURL(/\/console\/rules\/draft\/dry-run$/);
    expect(await page.locator("h1").textContent()).toBe("试运行：草稿第 2 版");
    const dry = (await api().post("/v1/tag-rules/draft/dry-run")).body as { changes: { group: string; tag: string; gains: number; losses: number }[] };
    const row = page.locator("[data-testid=dryrun] tr[data-tag='need:抗衰']");
    const expected = dry.changes.find((c) => c.group === "need" && c.tag === "抗衰")!;
    expect(expected.gains).toBeGreaterThanOrEqual(1);
    expect(await row.getByTestId("gains").textContent()).toBe(`+${expected.gains}`);
    expect(await row.getByTestId("losses").textContent()).toBe(expected.losses ? `−${expected.losses}` : "0");
    // The seeded reader is among the contacts who would gain it, linked to the contact page.
    const sample = row.getByRole("link", { name: h.seed.tagged.name });
    expect(await sample.getAttribute("href")).toBe(`/console/contacts/${h.seed.tagged.id}`);
    expect(await page.locator("[data-testid=dryrun] tbody tr").count()).toBe(dry.changes.length);
    // Nothing was written.
    expect((await api().get("/v1/tag-rules")).body.published.version).toBe(1);
    await h.screenshot(page, "marketing-dryrun");
  });

  it("publishing asks to confirm, then makes a new version and says the backfill is queued", async () => {
    const page = await h.newPage();
    await h.signIn(page, "marketing");
    await page.goto("/console/rules");
    // Dismissed: nothing happens.
    const dismissed = answerNextDialog(page, false);
    await page.getByTestId("publish").click();
    expect(dismissed.message()).toContain("发布草稿第 2 版");
    expect((await api().get("/v1/tag-rules")).body.published.version).toBe(1);

    page.once("dialog", (d) => void d.accept());
    await Promise.all([page.waitForURL(/done=published&v=2/), page.getByTestId("publish").click()]);
    const flash = await page.getByTestId("flash").textContent();
    expect(flash).toContain("已发布第 2 版");
    expect(flash).toContain("回填");
    expect(await page.getByTestId("published-meta").textContent()).toMatch(new RegExp(`^第 2 版 · marketing ${h.tenant.slug} 发布于 .* · 共 ${published.rules.length + 1} 条规则$`));
    expect(await page.getByTestId("no-draft").count()).toBe(1);
    const rules = (await api().get("/v1/tag-rules")).body;
    expect(rules.published).toMatchObject({ version: 2, status: "published" });
    expect(rules.draft).toBeNull();
    expect(await page.locator("[data-group=need] tr[data-rule=need-antiaging-readers]").count()).toBe(1);
  });

  it("rolls back to version 1 (asking first) as a new version", async () => {
    const page = await h.newPage();
    await h.signIn(page, "marketing");
    await page.goto("/console/rules");
    const v1 = page.locator("[data-testid=versions] tr[data-version='1']");
    expect(await page.locator("[data-testid=versions] tr[data-version='2'] button").count()).toBe(0); // the current one
    const dialog = answerNextDialog(page, true);
    await Promise.all([page.waitForURL(/done=rolledback&v=3&from=1/), v1.getByRole("button", { name: "回滚到 v1" }).click()]);
    expect(dialog.message()).toContain("回滚到第 1 版");
    expect(await page.getByTestId("flash").textContent()).toContain("已回滚到第 1 版的规则，发布为第 3 版");
    const rules = (await api().get("/v1/tag-rules")).body;
    expect(rules.published).toMatchObject({ version: 3, rules: published.rules.length, note: "rollback to v1" });
    expect(rules.versions.map((v: { version: number; status: string }) => `${v.version}:${v.status}`)).toEqual(["3:published", "2:archived", "1:archived"]);
    const history = page.locator("[data-testid=versions] tbody tr");
    expect(await history.count()).toBe(3);
    expect(await page.locator("[data-testid=versions] tr[data-version='3']").textContent()).toContain("当前发布");
    expect(await page.locator("[data-testid=versions] tr[data-version='2']").textContent()).toContain(`marketing ${h.tenant.slug}`);
    expect(await page.locator("[data-group=need] tr[data-rule=need-antiaging-readers]").count()).toBe(0);

    // English, switched from the header.
    await page.goto("/console/rules?lang=en");
    expect(await page.locator("h1").textContent()).toBe("Tag rules");
    expect(await page.getByTestId("published-meta").textContent()).toMatch(/^Version 3 · published by marketing /);
  });

  it("a draft can be discarded (asking first): the published rules stay, the draft stays in the history", async () => {
    expect((await api().call("PUT", "/v1/tag-rules/draft", { params: published.params, needs: published.needs, rules: published.rules, note: "不要了" })).body).toMatchObject({ version: 4, status: "draft" });
    const page = await h.newPage();
    await h.signIn(page, "marketing");
    await page.goto("/console/rules");
    const dialog = answerNextDialog(page, true);
    await Promise.all([page.waitForURL(/done=discarded&v=4/), page.getByTestId("discard").click()]);
    expect(dialog.message()).toContain("放弃草稿第 4 版");
    expect(await page.getByTestId("flash").textContent()).toContain("已放弃草稿第 4 版");
    expect(await page.getByTestId("no-draft").count()).toBe(1);
    expect(await page.locator("[data-testid=versions] tr[data-version='4']").textContent()).toContain("已放弃");
    expect(await page.locator("[data-testid=versions] tr[data-version='4'] button").count()).toBe(0); // never published: nothing to roll back to
    const rules = (await api().get("/v1/tag-rules")).body;
    expect(rules.published).toMatchObject({ version: 3 });
    expect(rules.draft).toBeNull();
  });
});

describe("console: segments", () => {
  let segmentId: string;

  it("starts empty; an expression with a syntax error shows its position with a caret, and nothing is saved", async () => {
    const page = await h.newPage();
    await h.signIn(page, "marketing");
    await h.openSection(page, "segments");
    expect(await page.getByTestId("empty").textContent()).toContain("还没有分群");
    await page.getByTestId("new-segment").click();
    await page.waitForURL(/\/console\/segments\/new$/);

    await page.getByLabel("名称").fill("祛痘人群");
    await page.getByLabel("条件表达式").fill("need:祛痘 AND AND visit:复诊");
    const [res] = await Promise.all([page.waitForResponse((r) => r.url().endsWith("/console/segments/preview")), page.getByTestId("preview").click()]);
    expect(res.status()).toBe(422);
    const error = page.getByTestId("expression-error");
    expect(await error.locator("p").textContent()).toContain("表达式第 13 个字符处有语法错误");
    const caret = page.getByTestId("caret");
    expect(await caret.getAttribute("data-column")).toBe("13");
    expect(await caret.textContent()).toBe("need:祛痘 AND AND visit:复诊");
    expect(await caret.locator(".mk-caret-at").textContent()).toBe("A");
    // The caret sits under the second AND.
    const at = await caret.locator(".mk-caret-at").boundingBox();
    // Page-side code as a string: the project's TypeScript has no DOM library.
    const andBefore = (await page.evaluate(
      `(() => { const el = document.querySelector("[data-testid=caret]"); const r = document.createRange(); r.setStart(el.firstChild, 8); r.setEnd(el.firstChild, 11); return r.getBoundingClientRect().right; })()`,
    )) as number;
    expect(at!.x).toBeGreaterThan(andBefore);
    const field = page.getByLabel("条件表达式");
    expect(await field.getAttribute("aria-invalid")).toBe("true");
    expect(await field.getAttribute("aria-describedby")).toContain("s-expression-err");
    expect(await field.inputValue()).toBe("need:祛痘 AND AND visit:复诊");
    expect(await page.getByLabel("名称").inputValue()).toBe("祛痘人群");

    // Creating it is refused the same way, at the end of the input for an unclosed parenthesis.
    await field.fill("visit:复诊 AND (need:祛痘");
    const [created] = await Promise.all([page.waitForResponse((r) => r.url().endsWith("/console/segments") && r.request().method() === "POST"), page.getByTestId("save").click()]);
    expect(created.status()).toBe(422);
    expect(await page.getByTestId("caret").getAttribute("data-column")).toBe("22");
    // An unknown tag is named.
    await page.getByLabel("条件表达式").fill("need:植发");
    await page.getByTestId("preview").click();
    expect(await page.getByTestId("expression-error").textContent()).toContain("没有这些标签：need:植发");
    expect((await api().get("/v1/segments")).body.items).toEqual([]);
  });

  it("a valid segment previews, saves, and shows its live count and members (the seeded need:祛痘 contact)", async () => {
    const page = await h.newPage();
    await h.signIn(page, "marketing");
    await page.goto("/console/segments/new");
    await page.getByLabel("名称").fill("祛痘人群");
    await page.getByLabel("条件表达式").fill("need:祛痘");
    await page.getByTestId("preview").click();
    const live = (await api().post("/v1/segments/preview", { expression: "need:祛痘" })).body.count as number;
    expect(live).toBeGreaterThanOrEqual(1);
    expect(await page.getByTestId("preview-count").textContent()).toBe(String(live));
    expect(await page.getByTestId("preview-result").getByRole("link", { name: h.seed.tagged.name }).count()).toBe(1);

    await page.getByTestId("save").click();
    await page.waitForURL(/\/console\/segments\/[0-9a-f-]{36}\?done=created$/);
    segmentId = /segments\/([0-9a-f-]{36})/.exec(page.url())![1]!;
    expect(await page.locator("h1").textContent()).toBe("祛痘人群");
    expect(await page.getByTestId("live-count").textContent()).toBe(String(live));
    const member = page.locator(`[data-testid=members] tr[data-contact="${h.seed.tagged.id}"]`);
    expect(await member.getByRole("link", { name: h.seed.tagged.name }).getAttribute("href")).toBe(`/console/contacts/${h.seed.tagged.id}`);
    // Marketing sees phones masked, as the service gives them.
    expect((await member.locator("td.phone").textContent())?.trim()).toMatch(/^1\d{2}\*{4}\d{4}$/);
    expect(await page.getByTestId("no-sizes").count()).toBe(1);
    expect((await api().get(`/v1/segments/${segmentId}`)).body).toMatchObject({ name: "祛痘人群", expression: "need:祛痘", count: live });

    // A second one by a field, listed with its count.
    await page.goto("/console/segments/new");
    await page.getByLabel("名称").fill("高消费");
    await page.getByLabel("条件表达式").fill("spend_12m >= 5000");
    await page.getByTestId("save").click();
    await page.waitForURL(/done=created/);
    expect(await page.getByTestId("live-count").textContent()).toBe("0");
    expect(await page.getByTestId("no-members").count()).toBe(1);
    // The same name again is refused next to the name.
    await page.goto("/console/segments/new");
    await page.getByLabel("名称").fill("高消费");
    await page.getByLabel("条件表达式").fill("visits >= 1");
    await page.getByTestId("save").click();
    expect(await page.locator("#s-name-err").textContent()).toContain("已有同名的分群");
  });

  it("shows daily sizes as a line and the move since the last snapshot; members page by cursor", async () => {
    const ctx = systemCtx(h.rt.rt.deps, h.tenant.id, "test");
    await snapshotSegments({ ctx, day: day(-3) });
    await acneReader("孙女士");
    await snapshotSegments({ ctx, day: day(-2) });
    await snapshotSegments({ ctx, day: day(-1) });
    await acneReader("周女士");
    const sizes = (await api().get(`/v1/segments/${segmentId}/sizes`)).body.items as { day: string; size: number }[];
    expect(sizes.map((s) => s.day)).toEqual([day(-3), day(-2), day(-1)]);
    expect(sizes[1]!.size).toBe(sizes[0]!.size + 1);
    const live = (await api().get(`/v1/segments/${segmentId}`)).body.count as number;
    expect(live).toBe(sizes[2]!.size + 1);

    const page = await h.newPage();
    await h.signIn(page, "marketing");
    await page.goto("/console/segments");
    const row = page.locator(`[data-testid=segments] tr[data-segment="${segmentId}"]`);
    expect(await row.getByTestId("count").textContent()).toBe(String(live));
    expect(await row.locator(".mk-delta").textContent()).toBe(`+1（${day(-1)} 快照）`);
    expect(await page.locator("[data-testid=segments] tbody tr").count()).toBe(2);
    await h.screenshot(page, "marketing-segments");

    await row.getByRole("link", { name: "祛痘人群" }).click();
    await page.waitForURL(new RegExp(`/console/segments/${segmentId}$`));
    const chart = page.getByTestId("sizes-chart");
    expect(await chart.locator("circle").count()).toBe(3);
    expect(await chart.locator("polyline").count()).toBe(1);
    expect(await chart.getAttribute("aria-label")).toContain(`从 ${day(-3)} 到 ${day(-1)}`);
    expect(await chart.textContent()).toContain(day(-3));
    expect(await page.getByTestId("live-count").textContent()).toBe(String(live));
    expect(await page.getByTestId("delta").textContent()).toBe(`+1 较 ${day(-1)} 的快照`);
    const names = (await page.locator("[data-testid=members] tbody").textContent()) ?? "";
    for (const n of [h.seed.tagged.name, "孙女士", "周女士"]) expect(names).toContain(n);
    await h.screenshot(page, "marketing-segment");

    // Members page by cursor (25 a page): more contacts than a page make a second one.
    for (let i = 0; i < 24; i++) await acneReader(`读者${String(i + 1).padStart(2, "0")}`);
    await page.reload();
    const total = (await api().get(`/v1/segments/${segmentId}`)).body.count as number;
    expect(total).toBeGreaterThan(25);
    expect(await page.locator("[data-testid=members] tbody tr").count()).toBe(25);
    await page.getByRole("link", { name: "下一页" }).click();
    await page.waitForURL(/cursor=/);
    expect(await page.locator("[data-testid=members] tbody tr").count()).toBe(total - 25);
    expect(await page.locator("[data-testid=members] tbody").textContent()).toContain(h.seed.tagged.name); // the oldest, last
    await page.getByRole("link", { name: "回到第一页" }).click();
    await page.waitForURL(new RegExp(`/console/segments/${segmentId}$`));
  }, 60_000);

  it("edits a segment, and the CSV export downloads for the signed-in user (phones masked)", async () => {
    const page = await h.newPage();
    await h.signIn(page, "marketing");
    await page.goto(`/console/segments/${segmentId}`);
    await page.getByRole("link", { name: "编辑" }).click();
    await page.waitForURL(new RegExp(`/console/segments/${segmentId}/edit$`));
    expect(await page.getByLabel("条件表达式").inputValue()).toBe("need:祛痘");
    await page.getByLabel("条件表达式").fill("need:祛痘 AND NOT engagement:高");
    await page.getByTestId("preview").click();
    expect(await page.locator("h1").textContent()).toBe("编辑分群"); // the preview keeps the edit form
    await page.getByTestId("save").click();
    await page.waitForURL(/done=updated/);
    expect(await page.getByTestId("expression").textContent()).toBe("need:祛痘 AND NOT engagement:高");
    const count = (await api().get(`/v1/segments/${segmentId}`)).body.count as number;
    expect(await page.getByTestId("live-count").textContent()).toBe(String(count));

    const link = page.getByTestId("export");
    expect(await link.getAttribute("href")).toBe(`/v1/segments/${segmentId}/export.csv`);
    const [download] = await Promise.all([page.waitForEvent("download"), link.click()]);
    expect(download.suggestedFilename()).toBe("segment-祛痘人群.csv");
    const bytes = await readFile((await download.path())!);
    expect([...bytes.subarray(0, 3)]).toEqual([0xef, 0xbb, 0xbf]);
    const lines = bytes.subarray(3).toString("utf8").trim().split("\r\n");
    expect(lines[0]).toBe("id,姓名,手机号,external_user_id,来源,归属顾问,添加时间");
    expect(lines).toHaveLength(count + 1);
    const seeded = lines.find((l) => l.startsWith(h.seed.tagged.id))!;
    expect(seeded).toContain(h.seed.tagged.name);
    expect(seeded.split(",")[2]).toMatch(/^1\d{2}\*{4}\d{4}$/);
  });
});

describe("console: marketing pages and other roles", () => {
  it.each(["consultant", "reviewer"] as const)("%s gets a 403 page for rules and segments and has no nav entry for them", async (who) => {
    const page = await h.newPage();
    await h.signIn(page, who);
    const nav = await navKeys(page);
    expect(nav).not.toContain("rules");
    expect(nav).not.toContain("segments");
    for (const path of ["/console/rules", "/console/segments", "/console/segments/new"]) {
      const res = await page.goto(path);
      expect(res?.status(), path).toBe(403);
      expect(await page.locator("h1").textContent()).toBe("无权访问");
    }
    // Writes are refused too, with the same page (same origin, so not the CSRF check).
    for (const path of ["/console/rules/draft/publish", "/console/rules/rollback", "/console/segments"]) {
      const res = await page.request.post(path, { form: { version: "1", name: "x", expression: "need:祛痘" }, headers: { origin: h.baseUrl } });
      expect(res.status(), path).toBe(403);
      expect(res.headers()["content-type"]).toMatch(/text\/html/);
    }
    expect((await page.request.get("/v1/tag-rules")).status()).toBe(403);
    await h.screenshot(page, `marketing-forbidden-${who}`);
  });
});
