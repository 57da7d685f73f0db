import type { Page } from "playwright-core";
import { and, eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { alertEpisodes, alertRules, followUps } from "../../src/db/schema/index";
import { addDays } from "../../src/domain/delivery/schedule";
import { localDate } from "../../src/domain/leads/sop";
import { systemCtx } from "../../src/services/context";
import { snapshotSegments } from "../../src/services/segments/segments";
import { client, phone, type StaffKey } from "../helpers/factories";
import { waitFor } from "../helpers/wait";
import { type ConsoleHarness, navKeys, noHorizontalScroll, PHONE, startConsole } from "./helpers";

/**
 * Consultants' pages and the managers' team workspace in Debian's Chromium: a lead arrives, is
 * released to the pool, claimed, worked and converted, and the manager's dashboard moves; SOP tasks
 * done and skipped; post-visit follow-ups; the pool race; the dashboard's trends and segment sizes;
 * role isolation; phone width.
 */
let h: ConsoleHarness;
beforeAll(async () => {
  h = await startConsole();
}, 120_000);
afterAll(async () => {
  await h?.close();
});

const api = (who: StaffKey) => client(h.rt.app, h.tenant.tokens[who]);
const staffName = (who: StaffKey) => `${who} ${h.tenant.slug}`;
const accept = (page: Page) => page.once("dialog", (d) => void d.accept());
const pct = (num: number, den: number) => (den === 0 ? "—" : `${((num / den) * 100).toFixed(1)}%`);

async function contact(who: StaffKey, name: string, owner?: StaffKey): Promise<string> {
  const res = await api(who).post("/v1/contacts", { name, phone: phone(), source: "qr_poster", ...(owner ? { ownerStaffId: h.tenant.staff[owner].id } : {}) });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return res.body.id as string;
}

/** A tile of the dashboard by its label: the big value and the "a / b" hint. */
async function tile(page: Page, label: string) {
  const li = page.getByTestId("tiles").locator("li", { has: page.locator("p.muted:not(.small)", { hasText: new RegExp(`^${label}$`) }) });
  return { value: (await li.locator(".big").textContent())?.trim(), hint: (await li.locator(".small").textContent())?.trim() };
}

const scorecard = (page: Page, who: StaffKey) => page.getByTestId("scorecards").locator("tr", { hasText: staffName(who) });

describe("consultant journey: a lead arrives, is claimed from the pool, converts, and the dashboard moves", () => {
  it("manager releases a new lead to the pool -> consultant claims it -> contact attempt -> converted outcome -> the manager's 成交率 and scorecard change", async () => {
    // The manager's dashboard before.
    const manager = await h.newPage();
    await h.signIn(manager, "manager");
    await manager.goto("/console/dashboard");
    const before = await tile(manager, "成交率");
    const [converted, consultations] = before.hint!.split("/").map((s) => Number(s.trim())) as [number, number];
    expect(before.value).toBe(pct(converted, consultations));
    const cardBefore = Number(await scorecard(manager, "consultant").locator('td[data-label="成交"]').textContent());

    // A lead arrives for a contact nobody owns: routed by the strategy chain to a consultant.
    const contactId = await contact("marketing", "孙女士");
    const signalled = await api("marketing").post("/v1/leads", { contactId, source: "api", need: "美白" });
    expect(signalled.status).toBe(201);
    const leadId = signalled.body.id as string;
    expect([h.tenant.staff.consultant.id, h.tenant.staff.consultant2.id]).toContain(signalled.body.ownerStaffId);

    // The team workspace shows it with its consultant and first-contact countdown.
    await manager.goto("/console/workspace");
    expect(await manager.locator("h1").textContent()).toBe("线索工作台 · 团队");
    const row = manager.locator(`tr[data-lead="${leadId}"]`);
    expect(await row.locator("td.owner").textContent()).toContain(signalled.body.ownerName);
    expect(await row.locator(".sla").textContent()).toMatch(/^还剩 /);
    // Filtered to the other consultant, it is not listed; to its own, it is.
    const other = signalled.body.ownerStaffId === h.tenant.staff.consultant.id ? h.tenant.staff.consultant2.id : h.tenant.staff.consultant.id;
    await manager.getByLabel("顾问", { exact: true }).selectOption(other);
    await manager.getByRole("button", { name: "筛选" }).click();
    await manager.waitForURL(/staff=/);
    expect(await row.count()).toBe(0);
    await manager.getByLabel("顾问", { exact: true }).selectOption(signalled.body.ownerStaffId);
    await manager.getByRole("button", { name: "筛选" }).click();
    await manager.waitForURL(new RegExp(`staff=${signalled.body.ownerStaffId}`));
    expect(await row.count()).toBe(1);

    // Release it to the pool: a reason is required (the message sits next to the field), and it asks first.
    await row.locator("summary", { hasText: "改派" }).click();
    await row.getByLabel("改派给").selectOption("pool");
    accept(manager);
    await Promise.all([manager.waitForLoadState("load"), row.getByRole("button", { name: "确认改派" }).click()]);
    await manager.locator(`#ra-reason-${leadId}-err`).waitFor();
    expect(await manager.locator(`#ra-reason-${leadId}-err`).textContent()).toBe("请填写改派原因（最多 500 字）");
    expect(await manager.locator(`#ra-reason-${leadId}`).getAttribute("aria-invalid")).toBe("true");
    expect(await row.getByLabel("改派给").inputValue()).toBe("pool");
    await row.getByLabel("改派原因").fill("顾问请假，放回公海");
    accept(manager);
    await Promise.all([manager.waitForURL(/done=reassigned/), row.getByRole("button", { name: "确认改派" }).click()]);
    expect(await manager.getByRole("status").textContent()).toBe("线索已改派。");
    expect((await api("manager").get(`/v1/leads/${leadId}`)).body.inPool).toBe(true);
    await manager.goto("/console/workspace?staff=pool");
    expect(await manager.locator(`tr[data-lead="${leadId}"] td.owner`).textContent()).toContain("公海");
    await manager.goto("/console/workspace");
    await h.screenshot(manager, "team-workspace");

    // The consultant finds it in the pool (not yet theirs: its page is a 404) and claims it.
    const page = await h.newPage();
    await h.signIn(page, "consultant");
    expect((await page.goto(`/console/leads/${leadId}`))?.status()).toBe(404);
    await page.goto("/console");
    await h.openSection(page, "pool");
    expect(await page.locator("h1").textContent()).toBe("线索公海");
    const poolRow = page.locator(`tr[data-lead="${leadId}"]`);
    expect(await poolRow.textContent()).toContain("孙女士");
    await h.screenshot(page, "consultant-pool");
    page.once("dialog", (d) => {
      expect(d.message()).toContain("领取 孙女士");
      void d.accept();
    });
    await Promise.all([page.waitForURL(new RegExp(`/console/leads/${leadId}\\?done=claimed`)), poolRow.getByRole("button", { name: "领取" }).click()]);
    expect(await page.getByRole("status").textContent()).toBe("已领取这条线索，首次联系时限已开始计时。");
    expect(await page.locator("dd .sla").textContent()).toMatch(/^还剩 /);
    expect((await api("consultant").get(`/v1/leads/${leadId}`)).body.ownerStaffId).toBe(h.tenant.staff.consultant.id);
    // It is on their workspace now.
    await page.goto("/console/workspace");
    expect(await page.locator(`tr[data-lead="${leadId}"]`).count()).toBe(1);

    // A contact attempt, then the outcome: converted with an amount.
    await page.locator(`tr[data-lead="${leadId}"] a`).click();
    await page.getByLabel("联系方式").selectOption("wecom");
    await page.getByLabel("联系结果").selectOption("reached");
    await Promise.all([page.waitForURL(/done=attempt/), page.getByRole("button", { name: "保存联系记录" }).click()]);
    expect(await page.getByTestId("timeline").textContent()).toContain("联系：企业微信，已联系上");
    const outcome = page.locator("#outcome");
    await outcome.getByLabel("成交", { exact: true }).check();
    // No visit recorded today: the form starts on online (a consultation over WeCom or the phone).
    expect(await page.locator("#o-mode").inputValue()).toBe("online");
    await outcome.getByLabel("金额（元）").fill("12800");
    await outcome.getByLabel("项目").fill("美白疗程");
    accept(page);
    await Promise.all([page.waitForURL(/done=outcome/), outcome.getByRole("button", { name: "保存咨询结果" }).click()]);
    expect(await page.getByTestId("lead-status").textContent()).toBe("已成交");
    expect(await page.getByTestId("timeline").textContent()).toContain("金额：12800");
    expect(await page.getByTestId("timeline").textContent()).toContain("线上（企业微信/电话）");

    // The manager's dashboard moves once the outcome is applied: 成交率 and the consultant's conversions.
    const want = { value: pct(converted + 1, consultations + 1), hint: `${converted + 1} / ${consultations + 1}` };
    await expect
      .poll(
        async () => {
          await manager.goto("/console/dashboard");
          return tile(manager, "成交率");
        },
        { timeout: 20_000, interval: 500 },
      )
      .toEqual(want);
    expect(Number(await scorecard(manager, "consultant").locator('td[data-label="成交"]').textContent())).toBe(cardBefore + 1);
    // This week's row of the weekly trends counts it too.
    const thisWeek = manager.getByTestId("weekly-table").locator("tbody tr").last();
    expect(await thisWeek.locator("td.deal").textContent()).toContain(`${converted + 1} / ${consultations + 1}`);

    // Another consultant never sees it.
    const other2 = await h.newPage();
    await h.signIn(other2, "consultant2");
    expect((await other2.goto(`/console/leads/${leadId}`))?.status()).toBe(404);
  }, 120_000);
});

describe("SOP tasks from the workspace and the lead page", () => {
  it("overdue tasks are highlighted; one is completed, one skipped (a reason is required, and it asks first); the lead page completes another", async () => {
    // A day and a bit on: the seeded leads' first tasks are overdue, the next ones due today.
    h.setClockAhead(26 * 3600_000);
    try {
      const page = await h.newPage();
      await h.signIn(page, "consultant");
      const tasks = page.getByTestId("tasks").locator("li[data-task]");
      expect(await tasks.count()).toBeGreaterThanOrEqual(2);
      const overdue = page.getByTestId("tasks").locator("li[data-task].overdue");
      expect(await overdue.count()).toBeGreaterThanOrEqual(1);
      expect(await overdue.first().locator(".badge.danger").textContent()).toBe("已逾期");

      // Done, in one click.
      const doneId = (await overdue.first().getAttribute("data-task"))!;
      await Promise.all([page.waitForURL(/done=task/), page.locator(`li[data-task="${doneId}"]`).getByRole("button", { name: "完成" }).click()]);
      expect(await page.getByRole("status").textContent()).toBe("任务已完成。");
      expect(await page.locator(`li[data-task="${doneId}"]`).count()).toBe(0);
      expect((await api("consultant").get(`/v1/tasks/${doneId}`)).body.status).toBe("done");

      // Skip: dismissing the question sends nothing; without a reason it is refused next to the field.
      const skipId = (await tasks.first().getAttribute("data-task"))!;
      const item = page.locator(`li[data-task="${skipId}"]`);
      await item.locator("summary", { hasText: "跳过" }).click();
      page.once("dialog", (d) => void d.dismiss());
      await item.getByRole("button", { name: "确认跳过" }).click();
      expect((await api("consultant").get(`/v1/tasks/${skipId}`)).body.status).toBe("open");
      page.once("dialog", (d) => {
        expect(d.message()).toContain("跳过任务");
        void d.accept();
      });
      await Promise.all([page.waitForLoadState("load"), item.getByRole("button", { name: "确认跳过" }).click()]);
      await page.locator(`#skip-${skipId}-err`).waitFor();
      expect(await page.locator(`#skip-${skipId}-err`).textContent()).toBe("请填写跳过的原因（最多 500 字）");
      expect(await page.locator(`#skip-${skipId}`).getAttribute("aria-invalid")).toBe("true");
      await page.locator(`#skip-${skipId}`).fill("客户已到院");
      accept(page);
      await Promise.all([page.waitForURL(/done=skipped/), item.getByRole("button", { name: "确认跳过" }).click()]);
      expect(await page.getByRole("status").textContent()).toBe("任务已跳过。");
      const skipped = (await api("consultant").get(`/v1/tasks/${skipId}`)).body;
      expect([skipped.status, skipped.skipReason]).toEqual(["skipped", "客户已到院"]);
      expect(await noHorizontalScroll(page)).toBe(true);
      await h.screenshot(page, "consultant-tasks");
      // On a phone: the tasks and their buttons fit.
      const small = await h.newPage({ viewport: PHONE });
      await h.signIn(small, "consultant");
      expect(await small.getByTestId("tasks").locator("li[data-task]").count()).toBeGreaterThanOrEqual(1);
      expect(await noHorizontalScroll(small)).toBe(true);
      await small.goto(`/console/leads/${h.seed.secondLead.id}`);
      expect(await small.getByTestId("lead-tasks").locator("li[data-task]").count()).toBeGreaterThanOrEqual(1);
      expect(await noHorizontalScroll(small)).toBe(true);

      // The lead page lists the lead's open tasks and completes one.
      await page.goto(`/console/leads/${h.seed.secondLead.id}`);
      const leadTasks = page.getByTestId("lead-tasks").locator("li[data-task]");
      const open = await leadTasks.count();
      expect(open).toBeGreaterThanOrEqual(1);
      const first = leadTasks.first();
      const firstId = (await first.getAttribute("data-task"))!;
      const title = (await first.locator("strong").textContent())!;
      await Promise.all([page.waitForURL(/done=task/), first.getByRole("button", { name: "完成" }).click()]);
      expect(await page.getByRole("status").textContent()).toBe("任务已完成。");
      expect(await leadTasks.count()).toBe(open - 1);
      expect(await page.getByTestId("timeline").textContent()).toContain(`任务：${title}（已完成）`);
      expect((await api("consultant").get(`/v1/tasks/${firstId}`)).body.status).toBe("done");
      await h.screenshot(page, "consultant-lead-tasks");

      // The same task again (a stale page): said so, nothing changes.
      const again = await page.request.post(`/console/tasks/${firstId}/done`, { form: { back: "lead" }, headers: { origin: h.baseUrl } });
      expect(again.status()).toBe(409);
      expect(await again.text()).toContain("这个任务已经完成、跳过或随线索关闭");
      // Another consultant's task: absent for them.
      const theirs = await h.newPage();
      await h.signIn(theirs, "consultant2");
      const res = await theirs.request.post(`/console/tasks/${skipId}/done`, { form: { back: "workspace" }, headers: { origin: h.baseUrl } });
      expect(res.status()).toBe(404);
    } finally {
      h.setClockAhead(0);
    }
  }, 90_000);
});

describe("post-visit follow-ups (回访)", () => {
  it("a consultant sees their due and overdue follow-ups (not a colleague's), completes one with a note, skips one with a reason, pages on; managers filter by consultant", async () => {
    // 22 of the consultant's patients visited four days ago (follow-ups overdue since yesterday), one three days ago (due today), one of consultant2's.
    const mine: string[] = [];
    for (let i = 0; i < 22; i++) mine.push(await contact("admin", `回访客户${String(i + 1).padStart(2, "0")}`, "consultant"));
    const today = await contact("admin", "周女士", "consultant");
    const theirs = await contact("admin", "郑先生", "consultant2");
    const visit = (contactId: string, days: number) => api("admin").post("/v1/visits", { contactId, occurredAt: new Date(Date.now() - days * 86_400_000).toISOString(), item: "光子嫩肤" });
    for (const id of mine) expect((await visit(id, 4)).status).toBe(201);
    expect((await visit(today, 3)).status).toBe(201);
    expect((await visit(theirs, 4)).status).toBe(201);
    const db = h.rt.rt.deps.db;
    await waitFor(async () => (await db.select({ id: followUps.id }).from(followUps).where(eq(followUps.tenantId, h.tenant.id))).length >= 24, { what: "follow-ups planned", timeoutMs: 30_000 });
    const [theirFollowUp] = await db.select().from(followUps).where(and(eq(followUps.tenantId, h.tenant.id), eq(followUps.contactId, theirs)));

    const page = await h.newPage();
    await h.signIn(page, "consultant");
    await h.openSection(page, "followups", "follow-ups");
    expect(await page.locator("h1").textContent()).toBe("回访");
    const cards = page.getByTestId("followups").locator("li[data-followup]");
    expect(await cards.count()).toBe(20);
    const text = (await page.getByTestId("followups").textContent()) ?? "";
    expect(text).not.toContain("郑先生");
    // Soonest due first: the overdue ones lead, highlighted.
    const first = cards.first();
    expect(await first.getAttribute("class")).toContain("overdue");
    expect(await first.locator(".badge.danger").textContent()).toMatch(/^逾期 /);
    await h.screenshot(page, "consultant-followups");

    // The next page has the rest, the one due today among them; the first page is a link away.
    await page.getByRole("link", { name: "下一页" }).click();
    await page.waitForURL(/cursor=/);
    expect(await cards.count()).toBe(3);
    expect(await page.getByTestId("followups").textContent()).toContain("周女士");
    await page.getByRole("link", { name: "回到第一页" }).click();
    await page.waitForURL(/\/console\/follow-ups$/);

    // Complete the first with what the patient said, and the survey link sent.
    const doneId = (await first.getAttribute("data-followup"))!;
    const card = page.locator(`li[data-followup="${doneId}"]`);
    await card.getByLabel("回访结果").fill("恢复良好，下月复诊");
    await card.getByLabel("已把满意度调查链接发给客户").check();
    await Promise.all([page.waitForURL(/done=done/), card.getByRole("button", { name: "完成回访" }).click()]);
    expect(await page.getByRole("status").textContent()).toBe("回访已完成。");
    expect(await page.locator(`li[data-followup="${doneId}"]`).count()).toBe(0);
    const done = (await api("consultant").get(`/v1/follow-ups/${doneId}`)).body;
    expect([done.status, done.note, Boolean(done.survey?.sentAt)]).toEqual(["done", "恢复良好，下月复诊", true]);
    await page.getByRole("link", { name: "已完成" }).click();
    await page.waitForURL(/view=done/);
    expect(await page.locator(`li[data-followup="${doneId}"]`).textContent()).toContain("恢复良好，下月复诊");

    // Skip one: without a reason it is refused next to the field; with one, it is skipped.
    await page.goto("/console/follow-ups");
    const skipId = (await cards.first().getAttribute("data-followup"))!;
    const skipCard = page.locator(`li[data-followup="${skipId}"]`);
    await skipCard.locator("summary", { hasText: "跳过" }).click();
    accept(page);
    await Promise.all([page.waitForLoadState("load"), skipCard.getByRole("button", { name: "确认跳过" }).click()]);
    await page.locator(`#fu-reason-${skipId}-err`).waitFor();
    expect(await page.locator(`#fu-reason-${skipId}-err`).textContent()).toBe("请填写跳过的原因（最多 500 字）");
    await page.locator(`#fu-reason-${skipId}`).fill("联系不上");
    accept(page);
    await Promise.all([page.waitForURL(/done=skipped/), skipCard.getByRole("button", { name: "确认跳过" }).click()]);
    expect(await page.getByRole("status").textContent()).toBe("回访已跳过。");
    expect((await api("consultant").get(`/v1/follow-ups/${skipId}`)).body.status).toBe("skipped");

    // A colleague's follow-up cannot be completed by this consultant (absent for them).
    const res = await page.request.post(`/console/follow-ups/${theirFollowUp!.id}/done`, { form: { note: "x" }, headers: { origin: h.baseUrl } });
    expect(res.status()).toBe(404);
    expect((await api("consultant2").get(`/v1/follow-ups/${theirFollowUp!.id}`)).body.status).toBe("open");

    // A phone-width screen: cards, no sideways scrolling.
    const phonePage = await h.newPage({ viewport: PHONE });
    await h.signIn(phonePage, "consultant");
    await phonePage.goto("/console/follow-ups");
    expect(await phonePage.getByTestId("followups").locator("li[data-followup]").count()).toBe(20);
    expect(await noHorizontalScroll(phonePage)).toBe(true);
    await h.screenshot(phonePage, "consultant-followups-phone");

    // Managers see everyone's, and filter by consultant.
    const manager = await h.newPage();
    await h.signIn(manager, "manager");
    await manager.goto("/console/follow-ups?view=overdue");
    await manager.getByLabel("顾问", { exact: true }).selectOption(h.tenant.staff.consultant2.id);
    await manager.getByRole("button", { name: "筛选" }).click();
    await manager.waitForURL(/staff=/);
    const theirsText = (await manager.getByTestId("followups").textContent()) ?? "";
    expect(theirsText).toContain("郑先生");
    expect(theirsText).not.toContain("回访客户");
    expect(await manager.locator(`li[data-followup="${theirFollowUp!.id}"] dl`).textContent()).toContain(staffName("consultant2"));
  }, 120_000);
});

describe("the lead pool (公海)", () => {
  it("a race: someone else claims the lead first, and the consultant is told so; empty state; phone width", async () => {
    const contactId = await contact("marketing", "钱女士");
    const lead = await api("marketing").post("/v1/leads", { contactId, source: "api", need: "祛痘" });
    expect(lead.status).toBe(201);
    const released = await api("manager").post(`/v1/leads/${lead.body.id}/reassign`, { toStaffId: null, reason: "放回公海" });
    expect(released.body.inPool).toBe(true);

    const page = await h.newPage({ viewport: PHONE });
    await h.signIn(page, "consultant");
    await page.goto("/console/pool");
    const row = page.locator(`tr[data-lead="${lead.body.id}"]`);
    expect(await row.isVisible()).toBe(true);
    expect(await noHorizontalScroll(page)).toBe(true);
    // consultant2 is quicker.
    expect((await api("consultant2").post(`/v1/leads/${lead.body.id}/claim`)).status).toBe(200);
    accept(page);
    const [res] = await Promise.all([page.waitForResponse((r) => r.url().endsWith(`/console/pool/${lead.body.id}/claim`)), row.getByRole("button", { name: "领取" }).click()]);
    expect(res.status()).toBe(409);
    await page.getByTestId("pool-error").waitFor();
    expect(await page.getByTestId("pool-error").textContent()).toBe("手慢了：这条线索刚被其他顾问领取（或已关闭），已不在公海里。");
    expect(await row.count()).toBe(0);
    expect((await api("consultant2").get(`/v1/leads/${lead.body.id}`)).body.ownerStaffId).toBe(h.tenant.staff.consultant2.id);
    expect(await page.getByTestId("empty").textContent()).toContain("公海里暂时没有线索");
    expect(await noHorizontalScroll(page)).toBe(true);
    // A grade with nothing in it says so.
    await page.goto("/console/pool?grade=A");
    expect(await page.getByTestId("empty").textContent()).toBe("公海里没有 A 级的线索。");
  }, 60_000);
});

describe("the dashboard's trends and segment sizes", () => {
  it("weekly trends over 13 weeks (SVG with a data table), segment sizes over time, and alert values as their metric reads", async () => {
    const db = h.rt.rt.deps.db;
    // A segment, measured two weeks ago and today with one more member.
    const seg = await api("marketing").post("/v1/segments", { name: "海报来源", expression: 'source = "qr_poster"' });
    expect(seg.status).toBe(201);
    const ctx = systemCtx(h.rt.rt.deps, h.tenant.id, "test");
    const day = localDate(new Date(), "Asia/Shanghai");
    await snapshotSegments({ ctx, day: addDays(day, -14) });
    await contact("admin", "新海报客户");
    await snapshotSegments({ ctx, day });
    const sizes = (await api("marketing").get(`/v1/segments/${seg.body.id}/sizes`)).body.items as { day: string; size: number }[];
    expect(sizes.map((s) => s.day)).toEqual([addDays(day, -14), day]);
    expect(sizes[1]!.size - sizes[0]!.size).toBe(1);
    // An open alert of the 成交率 rule: its values are rates.
    const [rule] = await db.select().from(alertRules).where(and(eq(alertRules.tenantId, h.tenant.id), eq(alertRules.metric, "deal_rate")));
    await db.insert(alertEpisodes).values({ tenantId: h.tenant.id, ruleId: rule!.id, scopeKey: "all", value: 0.2, baseline: 0.5 });

    const page = await h.newPage();
    await h.signIn(page, "manager");
    await page.goto("/console/dashboard");
    expect(await page.getByTestId("alerts").textContent()).toContain("当前 20.0%，基线 50.0%");
    // A purchase: net revenue moves by its amount, in the tile and in this week's bar and row.
    const yuan = (s: string | null | undefined) => Number((s ?? "").replace(/[^\d]/g, ""));
    const weekRevenue = () => page.getByTestId("weekly-table").locator("tbody tr").last().locator('td[data-label="净收入"]').textContent();
    const revenueBefore = yuan((await tile(page, "净收入")).value);
    const weekBefore = yuan(await weekRevenue());
    expect((await api("consultant").post("/v1/purchases", { contactId: h.seed.tagged.id, amount: 3000, items: ["光子嫩肤"] })).status).toBe(201);
    // The page's figures are read side by side: the events worker may commit the purchase between
    // them, so wait until the tile and this week's row both show it.
    await expect
      .poll(
        async () => {
          await page.goto("/console/dashboard");
          return [yuan((await tile(page, "净收入")).value), await weekRevenue()];
        },
        { timeout: 20_000, interval: 500 },
      )
      .toEqual([revenueBefore + 3000, `¥${(weekBefore + 3000).toLocaleString("zh-CN")}`]);

    const weekly = page.getByTestId("weekly");
    const rates = weekly.locator("svg.cs-chart.rates");
    expect(await rates.getAttribute("role")).toBe("img");
    expect(await rates.locator("title").textContent()).toBe("成交率、上门率、回访率（按周）");
    expect(await weekly.locator("svg.cs-chart.revenue title").first().textContent()).toBe("净收入（按周）");
    const weeks = weekly.getByTestId("weekly-table").locator("tbody tr");
    expect(await weeks.count()).toBeGreaterThanOrEqual(13);
    expect(await weeks.count()).toBeLessThanOrEqual(14);
    expect(await weekly.locator(".cs-legend").textContent()).toContain("回访率");

    const segments = page.getByTestId("segment-sizes");
    expect(await segments.locator("svg.cs-chart title").textContent()).toBe("各分群每天的人数");
    expect(await segments.locator(".cs-legend").textContent()).toContain("海报来源");
    const segRow = segments.getByTestId("segments-table").locator("tr", { hasText: "海报来源" });
    expect(await segRow.locator("td").allTextContents()).toEqual(["海报来源", `${sizes[0]!.size}（${sizes[0]!.day}）`, `${sizes[1]!.size}（${sizes[1]!.day}）`, "+1"]);
    // The data tables open from their summaries.
    await weekly.locator("summary", { hasText: "查看数据表" }).click();
    expect(await weekly.getByTestId("weekly-table").isVisible()).toBe(true);
    await h.screenshot(page, "dashboard-trends");
    // No horizontal scroll at 1280px with the charts in place.
    expect(await noHorizontalScroll(page)).toBe(true);
  }, 60_000);
});

describe("role isolation", () => {
  it("the nav offers follow-ups and the pool to whom may open them; everyone else gets the 403 page", async () => {
    const consultant = await h.newPage();
    await h.signIn(consultant, "consultant");
    expect(await navKeys(consultant)).toEqual(["workspace", "followups", "pool", "contacts"]);
    // Consultants do not reassign.
    const res = await consultant.request.post(`/console/leads/${h.seed.lead.id}/reassign`, { form: { to: "pool", reason: "x" }, headers: { origin: h.baseUrl } });
    expect(res.status()).toBe(403);

    const manager = await h.newPage();
    await h.signIn(manager, "manager");
    expect(await navKeys(manager)).not.toContain("pool");
    expect((await manager.goto("/console/pool"))?.status()).toBe(403);
    expect(await manager.locator("h1").textContent()).toBe("无权访问");

    for (const who of ["marketing", "reviewer"] as const) {
      const page = await h.newPage();
      await h.signIn(page, who);
      const keys = await navKeys(page);
      expect(keys).not.toContain("followups");
      expect(keys).not.toContain("pool");
      expect((await page.goto("/console/follow-ups"))?.status()).toBe(403);
      expect((await page.goto("/console/pool"))?.status()).toBe(403);
    }
  }, 60_000);
});
