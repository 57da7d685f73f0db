import { randomBytes } from "node:crypto";
import type { Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ServiceDeps } from "../../src/services/context";
import { deliverBatch } from "../../src/services/delivery/deliver";
import { pollMessage } from "../../src/services/delivery/results";
import { pendingBatches } from "../../src/services/delivery/timers";
import { WecomClient } from "../../src/wecom/api/client";
import { startFakeWecom, type RunningFakeWecom } from "../../src/wecom/fake/index";
import { client, phone, type StaffKey } from "../helpers/factories";
import { testWecomApp } from "../helpers/wecom";
import { type ConsoleHarness, navKeys, startConsole } from "./helpers";

/**
 * Content in the console, in Debian's Chromium: marketing plans a calendar, a reviewer rejects the
 * copy with a comment on its banned word, marketing fixes it, two levels approve, the send goes
 * out through the fake WeCom, and marketing reads the send report. Plus who may open what.
 */
let h: ConsoleHarness;
let fake: RunningFakeWecom;
/** Delivery's deps: the console's, with WeCom calls going to the fake. */
let deliveryDeps: ServiceDeps;
let ahead = 0;
const wecom = testWecomApp();
const SOURCE = `content-${randomBytes(3).toString("hex")}`;
const people = ["周女士", "吴女士"];

beforeAll(async () => {
  h = await startConsole();
  fake = await startFakeWecom({ corpId: wecom.corpId, agentId: wecom.agentId, secret: wecom.secret, callbackToken: wecom.callbackToken, encodingAesKey: wecom.encodingAesKey, now: () => new Date(Date.now() + ahead) });
  const deps = h.rt.rt.deps;
  deliveryDeps = {
    ...deps,
    wecomClient: (app) => new WecomClient({ baseUrl: fake.url, corpId: app.corpId, secret: app.secret, agentId: app.agentId, redis: h.rt.rt.redis, keyPrefix: `${h.rt.env.QUEUE_PREFIX}-content` }),
  };
  const admin = client(h.rt.app, h.tenant.tokens.admin);
  expect((await admin.call("PUT", "/v1/wecom/settings", wecom)).status).toBe(200);
  // The consultant is a WeCom member with two customers (the calendar's audience), and a third who opted out of marketing.
  const userid = `consultant-${h.tenant.slug}`;
  fake.control.createStaff({ userid, name: "咨询师" });
  for (const [i, name] of [...people, "郑先生"].entries()) {
    const ext = `wm${randomBytes(15).toString("hex")}`;
    fake.control.createContact({ externalUserId: ext, name, followedBy: userid });
    const res = await admin.post("/v1/contacts", { name, phone: phone(), externalUserId: ext, source: SOURCE, ownerStaffId: h.tenant.staff.consultant.id });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    if (i === 2) expect((await admin.post(`/v1/contacts/${res.body.id}/opt-out`, { note: "回复了退订" })).status).toBe(200);
  }
}, 120_000);
afterAll(async () => {
  await fake?.close();
  await h?.close();
});

const setAhead = (ms: number) => {
  ahead = ms;
  h.setClockAhead(ms);
};
/** A local date in Shanghai, n days from now. */
const shanghaiDate = (n: number) => new Intl.DateTimeFormat("sv-SE", { timeZone: "Asia/Shanghai" }).format(new Date(Date.now() + n * 86_400_000));
/** A full-page screenshot from the top (a page scrolled to a field would show the sticky header mid-page). */
async function shot(page: Page, name: string) {
  await page.evaluate("window.scrollTo(0, 0)");
  await h.screenshot(page, name);
}
async function as(who: StaffKey) {
  const page = await h.newPage();
  page.on("dialog", (d) => void d.accept());
  await h.signIn(page, who);
  return page;
}

describe("content: who may open what", () => {
  it("consultants get 403 on calendars, reviews and send reports; a reviewer has reviews but not calendars; marketing does not review", async () => {
    const consultant = await as("consultant");
    for (const path of ["/console/calendars", "/console/reviews", "/console/sends"]) {
      const res = await consultant.goto(path);
      expect(res?.status(), path).toBe(403);
      await expect.poll(() => consultant.locator("h1").textContent()).toBe("无权访问");
    }
    expect(await navKeys(consultant)).not.toContain("calendars");

    const reviewer = await as("reviewer");
    expect(await navKeys(reviewer)).toEqual(["home", "reviews"]);
    expect((await reviewer.goto("/console/calendars"))?.status()).toBe(403);
    expect((await reviewer.goto("/console/sends"))?.status()).toBe(403);
    const queue = await reviewer.goto("/console/reviews");
    expect(queue?.status()).toBe(200);
    expect(await reviewer.getByTestId("empty").textContent()).toContain("审核队列是空的");

    const marketing = await as("marketing");
    expect(await navKeys(marketing)).toEqual(expect.arrayContaining(["calendars", "sends"]));
    expect(await navKeys(marketing)).not.toContain("reviews");
    expect((await marketing.goto("/console/reviews"))?.status()).toBe(403);
    await marketing.goto("/console/calendars");
    expect(await marketing.getByTestId("empty").textContent()).toContain("还没有内容日历");

    // Managers read calendars and reports, without the forms.
    const manager = await as("manager");
    expect((await manager.goto("/console/calendars"))?.status()).toBe(200);
    expect(await manager.getByRole("link", { name: "新建日历" }).count()).toBe(0);
    expect((await manager.goto("/console/calendars/new"))?.status()).toBe(403);
  });
});

describe("content: plan -> review -> approve -> send", () => {
  it("marketing plans a calendar, a reviewer rejects the banned word with a comment, marketing fixes it, two levels approve, the send goes out and shows in the report", async () => {
    const tomorrow = shanghaiDate(1);
    const marketing = await as("marketing");
    await marketing.locator("nav#sidenav [data-nav=calendars]").click();
    await marketing.waitForURL(/\/console\/calendars$/);
    await marketing.getByRole("link", { name: "新建日历" }).first().click();
    await marketing.waitForURL(/\/console\/calendars\/new$/);

    // A calendar with its first entry; 22:30 is in the quiet hours, said next to the time.
    await marketing.locator("#c-name").fill("祛痘护理周历");
    await marketing.locator("#c-calKey").fill(`acne-${randomBytes(3).toString("hex")}`);
    await marketing.locator("#c-segment").fill(`source = "${SOURCE}"`);
    await marketing.locator("#e-key").fill("tips");
    await marketing.locator("#e-title").fill("周末医生答疑");
    await marketing.locator("#e-date").fill(tomorrow);
    await marketing.locator("#e-time").fill("22:30");
    await marketing.locator("#e-template").fill("{{name}}您好，我们的祛痘效果最好，本周六皮肤科医生在线答疑，欢迎预约。");
    await marketing.getByRole("button", { name: "保存为草稿" }).click();
    await expect.poll(() => marketing.locator("#e-time").getAttribute("aria-invalid")).toBe("true");
    expect(await marketing.locator("#e-time-err").textContent()).toContain("quiet hours");
    expect(await marketing.locator("#e-template").inputValue()).toContain("效果最好");
    await marketing.locator("#e-time").fill("10:00");
    await Promise.all([marketing.waitForURL(/\/console\/calendars\/[0-9a-f-]{36}\?done=created$/), marketing.getByRole("button", { name: "保存为草稿" }).click()]);
    const calendarId = /calendars\/([0-9a-f-]{36})/.exec(marketing.url())![1]!;
    expect(await marketing.getByRole("status").textContent()).toContain("已保存为草稿");
    expect(await marketing.getByTestId("cal-status").textContent()).toBe("草稿");

    // The week and month views put the entry on its day, with its review state.
    await marketing.goto(`/console/calendars/${calendarId}?view=week&date=${tomorrow}`);
    const cell = marketing.locator(`.cal-day[data-date="${tomorrow}"] .cal-item[data-entry=tips]`);
    expect(await cell.textContent()).toContain("10:00");
    expect(await cell.textContent()).toContain("周末医生答疑");
    expect(await cell.locator("[data-state]").getAttribute("data-state")).toBe("unpublished");
    expect(await marketing.locator(".cal-week:not(.cal-weekdays) .cal-day").count()).toBe(7);
    await shot(marketing, "content-calendar-week");
    await marketing.getByRole("link", { name: "下一页 →" }).click();
    await marketing.waitForURL(/date=/);
    expect(await marketing.locator(`.cal-item[data-entry=tips]`).count()).toBe(0);
    await marketing.goto(`/console/calendars/${calendarId}?view=month&date=${tomorrow}`);
    expect(await marketing.locator(`.cal-day[data-date="${tomorrow}"] .cal-item[data-entry=tips]`).count()).toBe(1);
    expect(await marketing.locator(".cal-view-month .cal-week:not(.cal-weekdays)").count()).toBeGreaterThanOrEqual(4);
    await shot(marketing, "content-calendar-month");

    // Who gets what when: two planned, the opted-out one skipped; the copy as 周女士 or 吴女士 gets it.
    await marketing.getByRole("link", { name: "预览发送" }).click();
    await marketing.waitForURL(/\/preview$/);
    expect(await marketing.locator("[data-testid=preview-entry][data-entry=tips] [data-testid=planned]").textContent()).toBe("2");
    expect(await marketing.getByTestId("conflicts").textContent()).toContain("已退订");
    const rendered = (await marketing.getByTestId("rendered").textContent())!;
    expect(people.some((n) => rendered.startsWith(`${n}您好，我们的祛痘效果最好`))).toBe(true);
    await shot(marketing, "content-preview");

    // Publish (confirmed): the entry becomes a post in review, level 1 of 2 (a 1:1 mass message).
    await marketing.goto(`/console/calendars/${calendarId}`);
    await Promise.all([marketing.waitForURL(/done=published/), marketing.getByRole("button", { name: "发布并提交审核" }).click()]);
    expect(await marketing.getByRole("status").textContent()).toContain("已发布第 1 版");
    expect(await marketing.locator("[data-testid=entries] tr[data-entry=tips] [data-state]").textContent()).toBe("审核中 1/2");
    // In English too.
    await marketing.getByRole("link", { name: "English" }).click();
    await expect.poll(() => marketing.locator("[data-testid=entries] tr[data-entry=tips] [data-state]").textContent()).toBe("In review 1/2");
    expect(await marketing.getByRole("link", { name: "Send report", exact: true }).count()).toBe(1);
    await marketing.getByRole("link", { name: "中文" }).click();
    await expect.poll(() => marketing.getByTestId("cal-status").textContent()).toBe("已发布");

    // The reviewer: the queue by due time, the finding marked in place.
    const reviewer = await as("reviewer");
    await reviewer.locator("nav#sidenav [data-nav=reviews]").click();
    await reviewer.waitForURL(/\/console\/reviews$/);
    const row = reviewer.locator("[data-testid=queue] tbody tr");
    expect(await row.count()).toBe(1);
    expect(await row.textContent()).toContain("祛痘护理周历 · 周末医生答疑");
    expect(await row.textContent()).toContain("第 1 级 / 共 2 级");
    await shot(reviewer, "content-review-queue");
    await row.getByRole("link").first().click();
    await reviewer.waitForURL(/\/console\/reviews\/[0-9a-f-]{36}$/);
    const mark = reviewer.locator("[data-testid=copy-body] mark.finding");
    expect(await mark.count()).toBe(1);
    expect(await mark.evaluate((el) => el.firstChild?.textContent)).toBe("效果最好");
    expect(await mark.getAttribute("class")).toContain("sev-block");
    const finding = reviewer.locator("[data-testid=findings] li").first();
    expect(await finding.getByTestId("category").textContent()).toBe("绝对化用语");
    expect(await finding.getByTestId("basis").textContent()).toContain("广告法");
    expect(await finding.getByTestId("suggestion").textContent()).toBe("效果因人而异");
    await reviewer.getByLabel("第 1 处的审核意见").fill("绝对化用语，请改为“效果因人而异”。");
    await reviewer.getByLabel("总体意见").fill("改完再提交");
    // Approving banned wording is not a reviewer's call: refused with the reason, what was typed kept.
    await reviewer.getByRole("button", { name: "通过", exact: true }).click();
    await expect.poll(() => reviewer.locator(".rv-form .field-err").first().textContent()).toContain("有禁用词的内容不能直接通过");
    expect(await reviewer.getByRole("alert").textContent()).toContain("审核结论没有提交");
    expect(await reviewer.getByLabel("第 1 处的审核意见").inputValue()).toBe("绝对化用语，请改为“效果因人而异”。");
    await shot(reviewer, "content-review-post");
    await Promise.all([reviewer.waitForURL(/\/console\/reviews\?done=reject$/), reviewer.getByRole("button", { name: "驳回" }).click()]);
    expect(await reviewer.getByRole("status").textContent()).toContain("已驳回");
    expect(await reviewer.getByTestId("empty").textContent()).toContain("审核队列是空的");

    // Marketing sees the rejection and the comment on the entry, and fixes the copy.
    await marketing.goto(`/console/calendars/${calendarId}`);
    expect(await marketing.locator("[data-testid=entries] tr[data-entry=tips] [data-state]").textContent()).toBe("已驳回");
    expect(await marketing.locator("[data-testid=entries] tr[data-entry=tips]").textContent()).toContain("1 条意见");
    await marketing.locator("[data-testid=entries] tr[data-entry=tips] a").first().click();
    await marketing.waitForURL(/\/entries\/tips$/);
    const review = marketing.getByTestId("entry-review");
    expect(await review.getByTestId("comment").textContent()).toBe("绝对化用语，请改为“效果因人而异”。");
    expect(await review.getByTestId("history").textContent()).toContain(`reviewer ${h.tenant.slug}`);
    expect(await review.getByTestId("history").textContent()).toContain("改完再提交");
    expect(await review.locator("button").count()).toBe(0);
    expect(await marketing.getByTestId("rejected-hint").textContent()).toContain("重新提交审核");
    await shot(marketing, "content-entry-rejected");
    await marketing.locator("#e-template").fill("{{name}}您好，祛痘效果因人而异，本周六皮肤科医生在线答疑，欢迎预约。");
    await Promise.all([marketing.waitForURL(/\/entries\/tips\?done=saved$/), marketing.getByRole("button", { name: "保存", exact: true }).click()]);
    expect(await marketing.locator("h1 [data-state]").textContent()).toBe("审核中 1/2");
    const api = client(h.rt.app, h.tenant.tokens.marketing);
    const cal = (await api.get(`/v1/calendars/${calendarId}`)).body;
    expect(cal.entries).toEqual([expect.objectContaining({ key: "tips", postStatus: "in_review" })]);
    const postId = cal.entries[0].postId as string;

    // Level 1 by the reviewer (no findings left), level 2 by the admin: nobody reviews a level twice.
    await reviewer.goto("/console/reviews");
    await reviewer.locator("[data-testid=queue] tbody tr a").first().click();
    expect(await reviewer.getByTestId("no-findings").textContent()).toContain("没有发现违规词");
    await Promise.all([reviewer.waitForURL(/done=approve$/), reviewer.getByRole("button", { name: "通过", exact: true }).click()]);
    expect(await reviewer.getByTestId("empty").count()).toBe(1);
    const admin = await as("admin");
    await admin.goto("/console/reviews");
    expect(await admin.locator("[data-testid=queue] tbody tr").textContent()).toContain("第 2 级 / 共 2 级");
    await admin.goto(`/console/reviews/${postId}`);
    expect(await admin.getByTestId("history").textContent()).toContain("通过");
    await Promise.all([admin.waitForURL(/done=approve$/), admin.getByRole("button", { name: "通过", exact: true }).click()]);
    expect((await api.get(`/v1/posts/${postId}`)).body.status).toBe("approved");

    // Marketing schedules it now (the minute sweep would too): two sends tomorrow at 10:00.
    await marketing.goto(`/console/calendars/${calendarId}`);
    expect(await marketing.locator("[data-testid=entries] tr[data-entry=tips] [data-state]").textContent()).toBe("已通过");
    await Promise.all([marketing.waitForURL(/done=planned/), marketing.getByRole("button", { name: "立即排期" }).click()]);
    expect(await marketing.getByRole("status").textContent()).toContain("已排期 2 次发送");

    // Tomorrow 10:00: delivery hands the copy to WeCom (one message per recipient: it names them), the consultant confirms.
    const due = new Date(`${tomorrow}T02:00:00.000Z`).getTime();
    setAhead(due + 30_000 - Date.now());
    try {
      const batches = await pendingBatches(h.rt.rt.deps.db, { tenantId: h.tenant.id, postId });
      expect(batches).toHaveLength(1);
      for (const b of batches) expect(await deliverBatch(deliveryDeps, b)).toMatchObject({ outcome: "done", messages: 2, recipients: 2 });
      const messages = [...fake.state.massMessages.values()].filter((m) => m.text?.content.includes("祛痘效果因人而异"));
      expect(messages.map((m) => m.text!.content.slice(0, 4)).sort()).toEqual(people.map((n) => `${n}您`).sort());
      for (const m of messages) {
        fake.control.staffConfirmsMassMessage(m.msgid, `consultant-${h.tenant.slug}`);
        expect(await pollMessage(deliveryDeps, { tenantId: h.tenant.id, msgid: m.msgid })).toMatchObject({ outcome: "final", sent: 1 });
      }

      // The send report: from the calendar, per entry, then the sends one by one.
      await marketing.goto(`/console/calendars/${calendarId}`);
      expect(await marketing.locator("[data-testid=entries] tr[data-entry=tips] [data-state]").textContent()).toBe("已发送");
      await marketing.getByRole("link", { name: "发送报告" }).last().click();
      await marketing.waitForURL(new RegExp(`/console/sends/${calendarId}$`));
      const entry = marketing.locator("[data-testid=send-report] tr[data-entry=tips]");
      expect(await entry.getByTestId("planned").textContent()).toBe("3");
      expect(await entry.getByTestId("sent").textContent()).toBe("2");
      expect(await entry.getByTestId("failed").textContent()).toBe("0");
      expect(await entry.getByTestId("skipped").textContent()).toContain("已退订");
      expect(await entry.locator("[data-testid=skipped] li").getAttribute("title")).toContain("opted out of marketing");
      expect(await marketing.getByTestId("total-sent").textContent()).toBe("2");
      await shot(marketing, "content-sends");
      await entry.getByRole("link").first().click();
      await marketing.waitForURL(/\/entries\/[0-9a-f-]{36}$/);
      const sends = await marketing.locator("[data-testid=sends] tbody tr").allTextContents();
      expect(sends).toHaveLength(3);
      expect(sends.filter((s) => s.includes("已发送"))).toHaveLength(2);
      expect(sends.filter((s) => s.includes("已跳过"))).toHaveLength(1);
      await marketing.getByRole("link", { name: "已发送", exact: true }).click();
      await marketing.waitForURL(/status=sent/);
      expect(await marketing.locator("[data-testid=sends] tbody tr").count()).toBe(2);
      await marketing.goto("/console/sends");
      expect(await marketing.locator(`[data-testid=send-calendars] tr[data-calendar="${calendarId}"]`).textContent()).toContain("祛痘护理周历");
    } finally {
      setAhead(0);
    }
  }, 90_000);
});
