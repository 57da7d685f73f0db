import { and, eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { alertEpisodes, alertRules } from "../../src/db/schema/index";
import type { StaffKey } from "../helpers/factories";
import { type ConsoleHarness, navKeys, noHorizontalScroll, PHONE, startConsole } from "./helpers";

/** The web console in Debian's Chromium: sign-in per role, role isolation, the main journeys. */
let h: ConsoleHarness;
beforeAll(async () => {
  h = await startConsole();
}, 120_000);
afterAll(async () => {
  await h?.close();
});


describe("console: sign-in, nav and role isolation", () => {
  const expected: [StaffKey, string, string[]][] = [
    ["admin", "管理员", ["home", "workspace", "followups", "dashboard", "contacts", "rules", "segments", "calendars", "reviews", "sends", "staff", "assignment", "wecom", "sandbox", "queues", "audit"]],
    ["manager", "顾问主管", ["home", "workspace", "followups", "dashboard", "contacts", "calendars", "sends", "assignment"]],
    ["marketing", "运营", ["home", "dashboard", "contacts", "rules", "segments", "calendars", "sends"]],
    ["consultant", "咨询师", ["workspace", "followups", "pool", "contacts"]],
    ["reviewer", "合规审核", ["home", "reviews"]],
  ];

  it.each(expected)("%s signs in and the nav shows exactly the sections the role may open", async (who, roleLabel, sections) => {
    const page = await h.newPage();
    await h.signIn(page, who);
    expect(await navKeys(page)).toEqual(sections);
    await expect.poll(() => page.getByTestId("role").textContent()).toBe(roleLabel);
    expect(await page.getByTestId("user").textContent()).toBe(`${who} ${h.tenant.slug}`);
    expect(await page.getByTestId("tenant").textContent()).toBe(h.tenant.slug);
    expect(await page.locator("html").getAttribute("lang")).toBe("zh-CN");
    // The page's own section is marked current.
    expect(await page.locator("nav#sidenav [aria-current=page]").getAttribute("data-nav")).toBe(sections[0]);
    await h.screenshot(page, `home-${who}`);
  });

  it("a reviewer gets a 403 page for the contacts, with the nav intact", async () => {
    const page = await h.newPage();
    await h.signIn(page, "reviewer");
    const res = await page.goto("/console/contacts");
    expect(res?.status()).toBe(403);
    expect(res?.headers()["content-type"]).toMatch(/text\/html/);
    await expect.poll(() => page.locator("h1").textContent()).toBe("无权访问");
    expect(await page.locator("main").textContent()).toContain("合规审核");
    expect(await navKeys(page)).toEqual(["home", "reviews"]);
    expect((await page.goto(`/console/contacts/${h.seed.tagged.id}`))?.status()).toBe(403);
    expect((await page.goto(`/console/leads/${h.seed.lead.id}`))?.status()).toBe(403);
    await h.screenshot(page, "forbidden-reviewer");
  });

  it("pages are private and framed by nobody; the stylesheet and script are cacheable by version", async () => {
    const page = await h.newPage();
    await h.signIn(page, "admin");
    const res = await page.goto("/console/contacts");
    const headers = res!.headers();
    expect(headers["cache-control"]).toBe("private, no-store");
    expect(headers["content-security-policy"]).toContain("frame-ancestors 'none'");
    for (const href of [await page.locator("link[rel=stylesheet]").getAttribute("href"), await page.locator("script[src]").getAttribute("src")]) {
      expect(href).toMatch(/^\/assets\/console\.(css|js)\?v=[0-9a-f]{12}$/);
      const asset = await page.request.get(href!);
      expect(asset.status()).toBe(200);
      expect(asset.headers()["cache-control"]).toBe("public, max-age=31536000, immutable");
      const again = await page.request.get(href!, { headers: { "if-none-match": asset.headers().etag! } });
      expect(again.status()).toBe(304);
    }
  });

  it("signed-out visitors are sent to the sign-in form and come back after it", async () => {
    const page = await h.newPage();
    await page.goto(`/console/contacts/${h.seed.tagged.id}`);
    expect(new URL(page.url()).pathname).toBe("/login");
    await page.getByLabel("机构代码").fill(h.tenant.slug);
    await page.getByLabel("邮箱").fill(h.tenant.staff.marketing.email);
    await page.getByLabel("密码").fill("wrong-password");
    await page.getByRole("button", { name: "登录" }).click();
    expect(await page.getByRole("alert").textContent()).toContain("机构代码、邮箱或密码不正确");
    await page.getByLabel("密码").fill("correct-horse-battery");
    await Promise.all([page.waitForURL(new RegExp(`/console/contacts/${h.seed.tagged.id}$`)), page.getByRole("button", { name: "登录" }).click()]);
    expect(await page.locator("h1").textContent()).toBe(h.seed.tagged.name);
  });
});

describe("console: marketing walks the contacts", () => {
  it("contacts list -> next page -> filter by a tag -> the contact with its tag reasons and timeline", async () => {
    const page = await h.newPage();
    await h.signIn(page, "marketing");
    await h.openSection(page, "contacts");
    const rows = page.locator("[data-testid=contacts] tbody tr");
    expect(await rows.count()).toBe(25);
    // Newest first: the last seeded contacts lead; marketing sees masked phones only.
    const first = await rows.allTextContents();
    expect(first.join("\n")).toContain(h.seed.tagged.name);
    expect(first.join("\n")).toContain(h.seed.otherOwned.name);
    const phones = await page.locator("[data-testid=contacts] td.phone").allTextContents();
    expect(phones.every((p) => /^1\d{2}\*{4}\d{4}$/.test(p.trim()))).toBe(true);
    expect(await page.locator("main").textContent()).toContain("手机号已脱敏显示");
    await h.screenshot(page, "contacts");

    await page.getByRole("link", { name: "下一页" }).click();
    await page.waitForURL(/cursor=/);
    expect(await rows.count()).toBe(h.seed.contacts - 25);
    expect(await page.getByRole("link", { name: "下一页" }).count()).toBe(0);
    await page.getByRole("link", { name: "回到第一页" }).first().click();
    await page.waitForURL(/\/console\/contacts$/);

    await page.getByLabel("标签").selectOption("need:祛痘");
    await page.getByRole("button", { name: "筛选" }).click();
    await page.waitForURL(/tag=need/);
    expect(await rows.allTextContents()).toHaveLength(1);
    expect(await rows.first().textContent()).toContain(h.seed.tagged.name);
    expect(await page.getByLabel("标签").inputValue()).toBe("need:祛痘");

    // A tag nobody has: the empty state says so and offers to clear the filters.
    await page.goto("/console/contacts?tag=need:%E6%8A%97%E8%A1%B0");
    expect(await page.getByTestId("empty").textContent()).toContain("没有符合筛选条件的客户");
    // A malformed one: the message sits next to the field.
    await page.goto("/console/contacts?tag=oops");
    expect(await page.locator("#f-tag-err").textContent()).toContain("分组:标签");
    expect(await page.locator("#f-tag").getAttribute("aria-invalid")).toBe("true");

    await page.goto("/console/contacts?tag=need:%E7%A5%9B%E7%97%98");
    await page.getByRole("link", { name: h.seed.tagged.name }).click();
    await page.waitForURL(new RegExp(`/console/contacts/${h.seed.tagged.id}$`));
    expect(await page.locator("h1").textContent()).toBe(h.seed.tagged.name);
    const tag = page.locator("[data-testid=tags] tr[data-tag='need:祛痘']");
    expect(await tag.locator(".reason").textContent()).toContain("规则 need-acne（第 1 版）");
    // The reason links the event behind the tag, on the timeline below.
    const eventLink = tag.locator(".reason a");
    const href = await eventLink.getAttribute("href");
    expect(href).toMatch(/^#ev-/);
    expect(await page.locator(href!).textContent()).toContain("阅读文章");
    expect(await page.locator(href!).textContent()).toContain("主题：祛痘");
    await eventLink.click();
    expect(new URL(page.url()).hash).toBe(href);
    const timeline = (await page.getByTestId("timeline").textContent()) ?? "";
    expect(timeline).toContain("获得标签 need:祛痘");
    expect(timeline).toContain("规则 need-acne 第 1 版");
    await h.screenshot(page, "contact");
  });
});

describe("console: a consultant's day", () => {
  it("sees only their own leads and contacts; records a contact attempt, then a lost outcome (error next to the field first)", async () => {
    const page = await h.newPage();
    await h.signIn(page, "consultant");
    expect(await page.locator("h1").textContent()).toBe("我的线索 · 今日任务");
    const leads = page.locator("[data-testid=leads] tbody tr");
    const text = (await leads.allTextContents()).join("\n");
    expect(text).toContain(h.seed.lead.name);
    expect(text).not.toContain(h.seed.otherLead.name);
    const sla = page.locator(`tr[data-lead="${h.seed.lead.id}"] .sla`);
    expect(await sla.textContent()).toMatch(/^还剩 /);
    expect(await sla.getAttribute("data-due")).toMatch(/^\d{4}-/);
    await h.screenshot(page, "workspace");

    // My contacts: own ones only.
    await h.openSection(page, "contacts");
    const mine = (await page.locator("[data-testid=contacts] tbody").textContent()) ?? "";
    expect(mine).toContain(h.seed.tagged.name);
    expect(mine).not.toContain(h.seed.otherOwned.name);
    expect(await page.locator("h1").textContent()).toBe("我的客户");
    expect((await page.goto(`/console/contacts/${h.seed.otherOwned.id}`))?.status()).toBe(404);

    await page.goto("/console");
    await page.getByRole("link", { name: h.seed.lead.name }).click();
    await page.waitForURL(new RegExp(`/console/leads/${h.seed.lead.id}$`));
    expect(await page.getByTestId("lead-status").textContent()).toBe("跟进中");
    expect(await noHorizontalScroll(page)).toBe(true);

    // A contact attempt: a missing choice is refused next to its field, then it is recorded.
    await page.getByLabel("联系方式").selectOption("phone");
    await page.getByRole("button", { name: "保存联系记录" }).click();
    expect(await page.locator("#a-outcome-err").textContent()).toBe("请选择联系结果");
    expect(await page.getByLabel("联系方式").inputValue()).toBe("phone");
    await page.getByLabel("联系结果").selectOption("no_answer");
    await page.locator("#attempt").getByLabel("备注").fill("下午再打");
    await page.getByRole("button", { name: "保存联系记录" }).click();
    await page.waitForURL(/done=attempt/);
    expect(await page.getByRole("status").textContent()).toBe("已记录这次联系。");
    expect(await page.getByTestId("timeline").textContent()).toContain("联系：电话，无人接听");
    expect(await page.locator("dd .sla").count()).toBe(0); // the first-contact clock stopped

    // The outcome asks first: dismissing sends nothing.
    const outcome = page.locator("#outcome");
    await outcome.getByLabel("流失", { exact: true }).check();
    expect(await outcome.locator("fieldset[data-when=converted]").isHidden()).toBe(true);
    page.once("dialog", (d) => void d.dismiss());
    await outcome.getByRole("button", { name: "保存咨询结果" }).click();
    expect(await page.locator("#o-lostReason-err").count()).toBe(0);
    // Lost without a reason: the service refuses, the message sits next to the reason.
    page.once("dialog", (d) => {
      expect(d.message()).toContain("线索将关闭");
      void d.accept();
    });
    await Promise.all([page.waitForLoadState("load"), outcome.getByRole("button", { name: "保存咨询结果" }).click()]);
    await page.locator("#o-lostReason-err").waitFor();
    expect(await page.locator("#o-lostReason-err").textContent()).toBe("请从列表中选择流失原因");
    expect(await page.locator("#o-lostReason").getAttribute("aria-invalid")).toBe("true");
    expect(await page.locator("#outcome input[value=lost]").isChecked()).toBe(true);
    await h.screenshot(page, "lead-outcome-error");
    await page.locator("#o-lostReason").selectOption("价格敏感");
    page.once("dialog", (d) => void d.accept());
    await Promise.all([page.waitForURL(/done=outcome/), page.locator("#outcome").getByRole("button", { name: "保存咨询结果" }).click()]);
    expect(await page.getByTestId("lead-status").textContent()).toBe("已流失");
    expect(await page.locator("#outcome").count()).toBe(0);
    expect(await page.getByTestId("timeline").textContent()).toContain("原因：价格敏感");
    await h.screenshot(page, "lead");

    // Closed: off the list of open leads.
    await page.goto("/console");
    expect(await page.locator(`tr[data-lead="${h.seed.lead.id}"]`).count()).toBe(0);
  });

  it("another consultant gets a 404 page for that lead and its contact", async () => {
    const page = await h.newPage();
    await h.signIn(page, "consultant2");
    const res = await page.goto(`/console/leads/${h.seed.lead.id}`);
    expect(res?.status()).toBe(404);
    expect(await page.locator("h1").textContent()).toBe("找不到页面");
    expect((await page.goto(`/console/contacts/${h.seed.lead.contactId}`))?.status()).toBe(404);
    expect((await page.goto("/console/no-such-page"))?.status()).toBe(404);
    const text = (await page.goto("/console")) && ((await page.locator("[data-testid=leads]").textContent()) ?? "");
    expect(text).toContain(h.seed.otherLead.name);
    expect(text).not.toContain(h.seed.lead.name);
  });
});

describe("console: language and small screens", () => {
  it("switches to English and back; the choice sticks across pages", async () => {
    const page = await h.newPage();
    await h.signIn(page, "marketing");
    await page.locator("[data-lang=en]").first().click();
    await page.waitForURL(/\/console$/);
    expect(await page.locator("html").getAttribute("lang")).toBe("en");
    expect(await page.locator("nav#sidenav").textContent()).toContain("Contacts");
    expect(await page.locator("h1").textContent()).toBe("Overview");
    expect(await page.getByRole("button", { name: "Sign out" }).count()).toBe(1);
    await page.locator("nav#sidenav [data-nav=contacts]").click();
    expect(await page.locator("h1").textContent()).toBe("Contacts");
    expect(await page.getByRole("button", { name: "Filter" }).count()).toBe(1);
    await h.screenshot(page, "contacts-en");
    await page.locator("[data-lang=zh-CN]").first().click();
    await page.waitForURL(/\/console\/contacts$/);
    expect(await page.locator("h1").textContent()).toBe("客户");
  });

  it("a phone-width screen shows the consultant's day without horizontal scrolling; the nav folds behind the menu", async () => {
    const page = await h.newPage({ viewport: PHONE });
    await h.signIn(page, "consultant");
    expect(await page.locator(`tr[data-lead="${h.seed.secondLead.id}"]`).isVisible()).toBe(true);
    expect(await noHorizontalScroll(page)).toBe(true);
    // Three days on (sessions last a week) every first-contact deadline has passed: highlighted, counted, said so.
    h.setClockAhead(3 * 24 * 3600_000);
    try {
      await page.reload();
      const row = page.locator(`tr[data-lead="${h.seed.secondLead.id}"]`);
      expect(await row.getAttribute("class")).toContain("overdue");
      expect(await row.locator(".sla").textContent()).toMatch(/^已超时 /);
      expect(await page.getByTestId("stats").locator("li.danger").count()).toBeGreaterThan(0);
      expect(await noHorizontalScroll(page)).toBe(true);
      await h.screenshot(page, "workspace-phone-overdue");
    } finally {
      h.setClockAhead(0);
    }
    await page.reload();
    const nav = page.locator("nav#sidenav");
    const toggle = page.getByRole("button", { name: "菜单" });
    expect(await nav.isVisible()).toBe(false);
    expect(await toggle.getAttribute("aria-expanded")).toBe("false");
    await h.screenshot(page, "workspace-phone");
    await toggle.click();
    expect(await nav.isVisible()).toBe(true);
    expect(await toggle.getAttribute("aria-expanded")).toBe("true");
    await nav.locator("[data-nav=contacts]").click();
    await page.waitForURL(/\/console\/contacts$/);
    expect(await noHorizontalScroll(page)).toBe(true);
    await page.goto(`/console/contacts/${h.seed.tagged.id}`);
    expect(await noHorizontalScroll(page)).toBe(true);
    await h.screenshot(page, "contact-phone");
  });

  it("has a skip link to the main content and visible keyboard focus", async () => {
    const page = await h.newPage();
    await h.signIn(page, "marketing");
    await page.keyboard.press("Tab");
    expect(await page.evaluate("document.activeElement === document.querySelector('a.skip')")).toBe(true);
    expect(await page.evaluate("getComputedStyle(document.activeElement).outlineStyle")).not.toBe("none");
    await page.keyboard.press("Enter");
    expect(await page.evaluate("document.activeElement && document.activeElement.id")).toBe("main");
  });
});

describe("console: the manager's dashboard", () => {
  it("shows the funnel, open alerts (acknowledged from the page), daily deal rate and scorecards; consultants get 403", async () => {
    // An open episode of the tenant's default 成交率 rule (new tenants start with the default alert rules).
    const db = h.rt.rt.deps.db;
    const [rule] = await db.select().from(alertRules).where(and(eq(alertRules.tenantId, h.tenant.id), eq(alertRules.metric, "deal_rate")));
    expect(rule).toBeDefined();
    await db.insert(alertEpisodes).values({ tenantId: h.tenant.id, ruleId: rule!.id, scopeKey: "all", value: 0.2, baseline: 0.5 });

    const page = await h.newPage();
    await h.signIn(page, "manager");
    await page.locator("nav#sidenav [data-nav=dashboard]").click();
    await expect.poll(() => page.locator("h1").textContent()).toBe("数据看板");
    expect(await page.locator("nav#sidenav [aria-current=page]").getAttribute("data-nav")).toBe("dashboard");
    const tiles = await page.getByTestId("tiles").textContent();
    for (const label of ["上门率", "成交率", "回访率", "二开率", "转介绍率", "NPS", "净收入", "超时率"]) expect(tiles).toContain(label);
    expect(await page.locator("svg.funnel").count()).toBe(1);
    const alerts = page.getByTestId("alerts");
    expect(await alerts.textContent()).toContain(rule!.name);
    expect(await page.locator(".badge.danger").textContent()).toBe("1");
    expect(await page.getByTestId("scorecards").textContent()).toContain("consultant");
    await h.screenshot(page, "dashboard");

    await alerts.getByRole("button", { name: "确认处理" }).click();
    await expect.poll(() => alerts.textContent()).toContain("已确认");
    expect(await alerts.getByRole("button", { name: "确认处理" }).count()).toBe(0);
    const [ep] = await db.select().from(alertEpisodes).where(eq(alertEpisodes.ruleId, rule!.id));
    expect(ep!.ackedAt).not.toBeNull();

    await page.goto("/console/dashboard?days=7");
    expect(await page.locator(".ranges [aria-current=page]").textContent()).toBe("近 7 天");

    const consultant = await h.newPage();
    await h.signIn(consultant, "consultant");
    expect((await consultant.goto("/console/dashboard"))?.status()).toBe(403);
  });
});
