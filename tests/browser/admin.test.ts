import type { Page } from "playwright-core";
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { bootstrap, type Runtime } from "../../src/bootstrap";
import { applyEnvWecomSettings, connectSandbox, envWecomApp, startSandboxWecom } from "../../src/cli/sandbox";
import { loadConfig } from "../../src/config/env";
import { detachSandbox } from "../../src/services/sandbox/link";
import { startWorkers, type RunningWorker } from "../../src/jobs/workers";
import { createLogger } from "../../src/logger";
import type { RunningFakeWecom } from "../../src/wecom/fake/index";
import { client } from "../helpers/factories";
import { waitFor } from "../helpers/wait";
import { type ConsoleHarness, navKeys, startConsole } from "./helpers";

/**
 * The admin pages in Chromium: staff and roles (create, change a role, deactivate, hand a
 * consultant's book over), the lead settings, WeCom settings (secrets never shown), the sandbox
 * (a simulated WeCom add arriving through the encrypted callback path), the queue dashboard (a
 * real failed job, retried) and the audit log.
 *
 * The sandbox is wired as `siyu start` wires it in WECOM_MODE=sandbox: the fake WeCom with the
 * credentials from the environment (startSandboxWecom), the first tenant given them
 * (applyEnvWecomSettings), then connectSandbox, which points the fake's callbacks at this app and
 * lets the console find it. The wecom worker runs as a separate worker process would (same
 * database, Redis and queue prefix, WECOM_API_BASE at the fake).
 */
let h: ConsoleHarness;
let fake: RunningFakeWecom;
let workerRt: Runtime;
let workers: RunningWorker[] = [];
const admin = () => client(h.rt.app, h.tenant.tokens.admin);

beforeAll(async () => {
  h = await startConsole();
  const logger = createLogger({ level: "silent" });
  fake = await startSandboxWecom(h.rt.rt.config, logger);
  await applyEnvWecomSettings(h.rt.rt.deps, h.tenant.id);
  await connectSandbox(h.rt.rt.deps, fake, { tenantId: h.tenant.id, slug: h.tenant.slug, callbackBase: h.baseUrl });
  workerRt = await bootstrap(loadConfig({ ...h.rt.env, WECOM_API_BASE: fake.url }), { logger });
  workers = startWorkers(workerRt.deps, workerRt.redisUrl, ["wecom"]);
}, 120_000);

afterAll(async () => {
  await Promise.all(workers.map((w) => w.close()));
  await workerRt?.close();
  await fake?.close();
  await h?.close();
});

/** A full-page screenshot from the top (a redirect to #done may have scrolled the page). */
const shot = async (page: Page, name: string) => {
  await page.evaluate("window.scrollTo(0, 0)");
  await h.screenshot(page, name);
};
const acceptNextDialog = (page: Page, expectText?: string) =>
  page.once("dialog", (d) => {
    if (expectText) expect(d.message()).toContain(expectText);
    void d.accept();
  });

/** Set by the staff test, read by the audit test. */
let created: { id: string; email: string } | undefined;

describe("admin: staff and roles", () => {
  it("creates a staff member (a refused field first), changes the role, deactivates after a confirmation", async () => {
    const page = await h.newPage();
    await h.signIn(page, "admin");
    await h.openSection(page, "staff");
    expect(await page.locator("h1").textContent()).toBe("员工与角色");
    const list = (await page.getByTestId("staff").textContent()) ?? "";
    for (const key of ["admin", "manager", "consultant", "reviewer"] as const) expect(list).toContain(h.tenant.staff[key].email);
    expect(list).toContain(`consultant-${h.tenant.slug}`); // the WeCom userid column
    await shot(page, "admin-staff");

    // A malformed email: refused next to the field, the other values kept, the password not sent back.
    const form = page.locator("#create");
    await form.getByLabel("姓名").fill("林晓");
    await form.getByLabel("邮箱").fill("lin-at-clinic");
    await form.getByLabel("角色", { exact: true }).selectOption("consultant");
    await form.getByLabel("初始密码").fill("a-good-password");
    await form.getByLabel("企业微信账号（userid）").fill(`linxiao-${h.tenant.slug}`);
    await form.getByLabel("擅长项目").fill("祛痘, 抗衰");
    await form.getByRole("button", { name: "添加" }).click();
    await expect.poll(() => page.locator("#c-email-err").textContent()).toContain("有效的邮箱");
    expect(await page.locator("#c-email").getAttribute("aria-invalid")).toBe("true");
    expect(await page.locator("#c-email").getAttribute("aria-describedby")).toBe("c-email-err");
    expect(await form.getByLabel("姓名").inputValue()).toBe("林晓");
    expect(await form.getByLabel("角色", { exact: true }).inputValue()).toBe("consultant");
    expect(await form.getByLabel("初始密码").inputValue()).toBe("");
    expect(await page.content()).not.toContain("a-good-password");

    const email = `lin.xiao@${h.tenant.slug}.test`;
    await form.getByLabel("邮箱").fill(email);
    await form.getByLabel("初始密码").fill("a-good-password");
    await Promise.all([page.waitForURL(/\/console\/staff\/[0-9a-f-]{36}\?done=created(#.*)?$/), form.getByRole("button", { name: "添加" }).click()]);
    const id = new URL(page.url()).pathname.split("/").pop()!;
    created = { id, email };
    expect(await page.getByRole("status").textContent()).toBe("已添加员工。");
    expect(await page.locator("h1").textContent()).toContain("林晓");
    const stored = await admin().get(`/v1/staff/${id}`);
    expect(stored.body).toMatchObject({ name: "林晓", email, role: "consultant", wecomUserId: `linxiao-${h.tenant.slug}`, skills: ["祛痘", "抗衰"], active: true, canSignIn: true });

    // Change the role.
    await page.locator("#edit").getByLabel("角色", { exact: true }).selectOption("marketing");
    await Promise.all([page.waitForURL(/done=saved/), page.locator("#edit").getByRole("button", { name: "保存" }).click()]);
    expect(await page.getByTestId("staff-facts").textContent()).toContain("运营");
    await shot(page, "admin-staff-member");
    expect((await admin().get(`/v1/staff/${id}`)).body.role).toBe("marketing");

    // Deactivate: dismissing the confirmation changes nothing; accepting deactivates.
    page.once("dialog", (d) => void d.dismiss());
    await page.getByRole("button", { name: "停用账号" }).click();
    expect(await page.getByTestId("staff-status").textContent()).toBe("在职");
    acceptNextDialog(page, "林晓");
    await Promise.all([page.waitForURL(/done=deactivated/), page.getByRole("button", { name: "停用账号" }).click()]);
    expect(await page.getByTestId("staff-status").textContent()).toBe("已停用");
    expect((await admin().get(`/v1/staff/${id}`)).body.active).toBe(false);
    // The list shows it too.
    await page.goto("/console/staff?status=inactive");
    expect(await page.getByTestId("staff").textContent()).toContain("林晓");
  });

  it("the admin cannot demote themselves: the refusal sits next to the role", async () => {
    const page = await h.newPage();
    await h.signIn(page, "admin");
    await page.goto(`/console/staff/${h.tenant.staff.admin.id}`);
    expect(await page.getByRole("button", { name: "停用账号" }).count()).toBe(0);
    await page.locator("#edit").getByLabel("角色", { exact: true }).selectOption("reviewer");
    await page.locator("#edit").getByRole("button", { name: "保存" }).click();
    await expect.poll(() => page.locator("#e-role-err").textContent()).toContain("不能把自己降为非管理员");
    expect((await admin().get(`/v1/staff/${h.tenant.staff.admin.id}`)).body.role).toBe("admin");
  });

  it("a leaving consultant's book goes to the chosen successor (离职交接), after a confirmation", async () => {
    const page = await h.newPage();
    await h.signIn(page, "admin");
    await page.goto(`/console/staff/${h.tenant.staff.consultant2.id}`);
    const off = page.locator("#offboard");
    // No reason: refused next to the field, nothing moved.
    await off.getByLabel("接手人").selectOption(h.tenant.staff.consultant.id);
    await off.getByLabel("企业微信客户转移").selectOption("none");
    acceptNextDialog(page);
    await off.getByRole("button", { name: "停用并交接" }).click();
    await expect.poll(() => page.locator("#o-reason-err").textContent()).toContain("原因");
    expect(await off.getByLabel("接手人").inputValue()).toBe(h.tenant.staff.consultant.id);
    expect((await admin().get(`/v1/staff/${h.tenant.staff.consultant2.id}`)).body.active).toBe(true);

    await off.getByLabel("原因").fill("离职");
    acceptNextDialog(page, "转交全部客户");
    await Promise.all([page.waitForURL(/done=offboarded/), off.getByRole("button", { name: "停用并交接" }).click()]);
    const notice = (await page.getByRole("status").textContent()) ?? "";
    expect(notice).toMatch(/已停用并交接：\d+ 位客户（其中 1 条线索，0 条进入公海）/);
    expect(await page.getByTestId("staff-status").textContent()).toBe("已停用");
    const lead = await admin().get(`/v1/leads/${h.seed.otherLead.id}`);
    expect(lead.body.ownerStaffId).toBe(h.tenant.staff.consultant.id);
    const owned = await admin().get(`/v1/contacts/${h.seed.otherOwned.id}`);
    expect(owned.body.ownerStaffId).toBe(h.tenant.staff.consultant.id);
  });
});

describe("admin: role isolation", () => {
  it("a manager edits the assignment strategy but gets 403 on staff, WeCom, sandbox, queues and audit, and the nav offers none of them", async () => {
    const page = await h.newPage();
    await h.signIn(page, "manager");
    const nav = await navKeys(page);
    expect(nav).toContain("assignment");
    for (const key of ["staff", "wecom", "sandbox", "queues", "audit"]) expect(nav).not.toContain(key);
    for (const path of ["/console/staff", `/console/staff/${h.tenant.staff.consultant.id}`, "/console/wecom", "/console/sandbox", "/console/queues", "/console/audit"]) {
      const res = await page.goto(path);
      expect(res?.status(), path).toBe(403);
      expect(await page.locator("h1").textContent()).toBe("无权访问");
    }
    // Writes are refused as well, whatever the form says.
    const post = await page.request.post("/console/staff", { form: { name: "x", email: "x@example.com", role: "admin" }, headers: { origin: h.baseUrl } });
    expect(post.status()).toBe(403);
    const sim = await page.request.post("/console/sandbox/add", { form: { staffId: h.tenant.staff.consultant.id }, headers: { origin: h.baseUrl } });
    expect(sim.status()).toBe(403);

    // The assignment strategy: a refused value next to its field, then saved.
    await h.openSection(page, "assignment");
    expect(await page.locator("h1").textContent()).toBe("分配策略");
    expect(await page.getByLabel("A 级线索（分钟）").inputValue()).toBe("15");
    await page.getByLabel("A 级线索（分钟）").fill("半小时");
    await page.getByLabel("第 2 步").selectOption("least_loaded");
    await page.getByRole("button", { name: "保存设置" }).click();
    await expect.poll(() => page.locator("#a-slaA-err").textContent()).toContain("大于 0 的整数分钟数");
    expect(await page.getByLabel("A 级线索（分钟）").getAttribute("aria-invalid")).toBe("true");
    expect(await page.getByLabel("第 2 步").inputValue()).toBe("least_loaded");
    await page.getByLabel("A 级线索（分钟）").fill("20");
    await page.getByLabel("超时后").selectOption("pool");
    await Promise.all([page.waitForURL(/done=saved/), page.getByRole("button", { name: "保存设置" }).click()]);
    expect(await page.getByRole("status").textContent()).toContain("已保存");
    expect(await page.getByLabel("A 级线索（分钟）").inputValue()).toBe("20");
    const settings = await client(h.rt.app, h.tenant.tokens.manager).get("/v1/lead-settings");
    expect(settings.body.sla).toMatchObject({ firstContactMinutes: { A: 20 }, onBreach: "pool" });
    expect(settings.body.assignment.chain.map((s: { strategy: string }) => s.strategy)).toEqual(["skill", "least_loaded"]);
    await shot(page, "admin-assignment");
  });
});

describe("admin: WeCom", () => {
  it("settings never show a secret; a new one replaces the stored one only when typed; a contact sync runs to the end", async () => {
    const app = envWecomApp(h.rt.rt.config)!;
    const page = await h.newPage();
    await h.signIn(page, "admin");
    await page.goto("/console/wecom");
    const secretsAbsent = async () => {
      const html = await page.content();
      for (const s of [app.secret, app.callbackToken, app.encodingAesKey]) expect(html).not.toContain(s);
    };
    expect(await page.getByLabel("企业 ID（CorpID）").inputValue()).toBe(app.corpId);
    expect(await page.getByTestId("secret-status").textContent()).toMatch(/应用 Secret\s*已设置[\s\S]*回调 Token\s*已设置[\s\S]*EncodingAESKey\s*已设置/);
    for (const id of ["#w-secret", "#w-callbackToken", "#w-encodingAesKey"]) {
      expect(await page.locator(id).getAttribute("type")).toBe("password");
      expect(await page.locator(id).inputValue()).toBe("");
    }
    expect(await page.getByTestId("callback-url").textContent()).toMatch(new RegExp(`/wecom/callback/${h.tenant.slug}$`));
    await secretsAbsent();

    // A malformed corp id with a secret typed: refused next to the field, the secret not sent back.
    await page.getByLabel("企业 ID（CorpID）").fill("not-a-corp");
    await page.locator("#w-secret").fill("typed-new-secret-value");
    await page.getByRole("button", { name: "保存", exact: true }).click();
    await expect.poll(() => page.locator("#w-corpId-err").textContent()).toContain("ww0123456789abcdef");
    expect(await page.locator("#w-secret").inputValue()).toBe("");
    expect(await page.content()).not.toContain("typed-new-secret-value");
    await secretsAbsent();

    // Saved with the secrets left empty: they stay as they were (the sandbox still verifies).
    await page.getByLabel("企业 ID（CorpID）").fill(app.corpId);
    await Promise.all([page.waitForURL(/done=saved/), page.getByRole("button", { name: "保存", exact: true }).click()]);
    await secretsAbsent();
    expect((await fake.control.verifyUrl()).ok).toBe(true);

    // A full sync through the wecom worker: the page follows it to the end.
    await Promise.all([page.waitForURL(/done=sync/), page.getByRole("button", { name: "开始同步" }).click()]);
    await waitFor(
      async () => {
        await page.goto("/console/wecom");
        return (await page.getByTestId("sync-state").textContent()) === "已完成";
      },
      { what: "the sync to finish", timeoutMs: 30_000, intervalMs: 500 },
    );
    expect(await page.getByTestId("sync-status").textContent()).toContain("完成");
    await shot(page, "admin-wecom");
  });

  it("the sandbox simulates a patient adding a consultant through the real callback path; the contact appears in the contacts", async () => {
    const page = await h.newPage();
    await h.signIn(page, "admin");
    // Without a fake WeCom in this process the page says so instead of offering forms.
    detachSandbox(h.rt.rt.deps);
    await page.goto("/console/sandbox");
    expect(await page.getByTestId("sandbox-off").textContent()).toContain("这个进程里没有运行模拟企业微信");
    expect(await page.getByTestId("sandbox-add").count()).toBe(0);
    await connectSandbox(h.rt.rt.deps, fake, { tenantId: h.tenant.id, slug: h.tenant.slug, callbackBase: h.baseUrl });

    await h.openSection(page, "sandbox");
    const add = page.getByTestId("sandbox-add");
    // No consultant and no channel: refused next to the field.
    await add.getByRole("button", { name: "模拟加好友" }).click();
    await expect.poll(() => page.locator("#sa-staffId-err").textContent()).toContain("企业微信账号");

    await add.getByLabel("添加的咨询师").selectOption(h.tenant.staff.consultant.id);
    await add.getByLabel("客户昵称").fill("沙箱周小姐");
    await add.getByLabel("自定义渠道参数（state）").fill("poster_store_a");
    await Promise.all([page.waitForURL(/done=add/), add.getByRole("button", { name: "模拟加好友" }).click()]);
    expect(await page.getByTestId("sandbox-result").textContent()).toContain("回调已送达");
    const ext = new URL(page.url()).searchParams.get("ext")!;
    expect(ext).toMatch(/^wm/);

    // The callback, then what it became once the worker applied it.
    const row = page.locator("[data-testid=callbacks] tr[data-callback='external_contact.add_external_contact']").first();
    await waitFor(
      async () => {
        await page.goto("/console/sandbox");
        return /已处理/.test((await row.textContent()) ?? "") && /沙箱周小姐/.test((await row.textContent()) ?? "");
      },
      { what: "the callback to be processed", timeoutMs: 30_000, intervalMs: 500 },
    );
    const text = (await row.textContent()) ?? "";
    expect(text).toContain("客户加好友");
    expect(text).toContain("渠道 poster_store_a");
    expect(text).toContain(`员工 consultant-${h.tenant.slug}`);
    await waitFor(async () => {
      await page.goto("/console/sandbox");
      return /添加好友/.test((await row.locator("td").nth(3).textContent()) ?? "");
    }, { what: "the contact_added event", timeoutMs: 20_000, intervalMs: 500 });

    // A patient joins a new group: a second callback, and a group_joined event.
    const join = page.getByTestId("sandbox-join");
    await join.getByLabel("客户", { exact: true }).selectOption(ext);
    await join.getByLabel("新群的群主").selectOption(h.tenant.staff.consultant.id);
    await join.getByLabel("新群名称").fill("祛痘交流群");
    await Promise.all([page.waitForURL(/done=join/), join.getByRole("button", { name: "模拟进群" }).click()]);
    expect(await page.getByTestId("sandbox-result").textContent()).toContain("回调已送达");
    await waitFor(async () => {
      await page.goto("/console/sandbox");
      const r = page.locator("[data-testid=callbacks] tr[data-callback='external_chat.update.add_member']").first();
      return (await r.count()) > 0 && /加入群聊/.test((await r.textContent()) ?? "");
    }, { what: "the group_joined event", timeoutMs: 30_000, intervalMs: 500 });
    await shot(page, "admin-sandbox");

    // The contact, in the contacts list and on its page (owner: the consultant added).
    await page.goto(`/console/contacts?q=${encodeURIComponent("沙箱周小姐")}`);
    const contacts = page.locator("[data-testid=contacts] tbody tr");
    expect(await contacts.count()).toBe(1);
    expect(await contacts.first().textContent()).toContain("wecom");
    await contacts.first().getByRole("link").click();
    await page.waitForURL(/\/console\/contacts\/[0-9a-f-]{36}$/);
    expect(await page.locator("main").textContent()).toContain(ext);
    expect(await page.locator("main").textContent()).toContain("poster_store_a");
    const list = await admin().get(`/v1/contacts?q=${encodeURIComponent("沙箱周小姐")}`);
    expect(list.body.items[0]).toMatchObject({ externalUserId: ext, source: "wecom", ownerStaffId: h.tenant.staff.consultant.id });
  });
});

describe("admin: queues and the audit log", () => {
  it("the queue dashboard shows counts and this tenant's failed job with its error; a retry puts it back in the queue", async () => {
    // A job that really fails in the wecom worker: a sync of a run that does not exist.
    const queue = h.rt.rt.deps.producer.queue("wecom");
    const job = await queue.add("wecom-sync", { tenantId: h.tenant.id, runId: randomUUID() }, { attempts: 1 });
    await waitFor(async () => (await queue.getJob(job.id!))?.failedReason, { what: "the job to fail" });
    // The worker stops for a moment, so the retried job is seen waiting.
    await Promise.all(workers.map((w) => w.close()));
    workers = [];

    const page = await h.newPage();
    await h.signIn(page, "admin");
    await h.openSection(page, "queues");
    const counts = page.getByTestId("queue-counts");
    for (const q of ["events", "wecom", "maintenance", "leads", "delivery"]) expect(await counts.locator(`tr[data-queue=${q}]`).count()).toBe(1);
    expect(Number(await counts.locator("tr[data-queue=wecom] td[data-state=failed]").textContent())).toBeGreaterThanOrEqual(1);
    expect(Number(await counts.locator("tr[data-queue=events] td[data-state=completed]").textContent())).toBeGreaterThan(0);
    expect(await page.getByTestId("event-stats").textContent()).toContain("近 1 小时已处理");
    const failed = page.locator(`[data-testid=failed-jobs] tr[data-job='${job.id}']`);
    expect(await failed.textContent()).toContain("sync run not found");
    expect(await failed.textContent()).toContain("wecom-sync");
    await shot(page, "admin-queues");

    acceptNextDialog(page, "wecom-sync");
    await Promise.all([page.waitForURL(/done=retried/), failed.getByRole("button", { name: "重试" }).click()]);
    expect(await page.getByRole("status").textContent()).toBe("任务已重新排队。");
    expect(await page.locator(`[data-testid=failed-jobs] tr[data-job='${job.id}']`).count()).toBe(0);
    expect(await (await queue.getJob(job.id!))!.getState()).toBe("waiting");
    expect(Number(await counts.locator("tr[data-queue=wecom] td[data-state=waiting]").textContent())).toBeGreaterThanOrEqual(1);
    // Back to work: the retried job runs (and fails again: the run still does not exist).
    workers = startWorkers(workerRt.deps, workerRt.redisUrl, ["wecom"]);
    await waitFor(async () => ((await (await queue.getJob(job.id!))?.getState()) === "failed" ? true : null), { what: "the retried job to run" });
    await queue.remove(job.id!);

    // In English too.
    await page.goto("/console/queues?lang=en");
    expect(await page.locator("h1").textContent()).toBe("Job queues");
    expect(await counts.locator("thead").textContent()).toContain("Waiting");
  });

  it("the audit log shows who created, changed and handed over what, with filters and pages", async () => {
    expect(created, "the staff test creates a staff member first").toBeDefined();
    const page = await h.newPage();
    await h.signIn(page, "admin");
    await h.openSection(page, "audit");
    const rows = page.locator("[data-testid=audit] tbody tr");
    // The staff creation, by the admin, filtered by actor and action.
    await page.getByLabel("操作人").selectOption(h.tenant.staff.admin.id);
    await page.getByLabel("操作", { exact: true }).fill("staff.create");
    await Promise.all([page.waitForURL(/action=staff\.create/), page.getByRole("button", { name: "筛选" }).click()]);
    expect(await rows.count()).toBe(1);
    const row = rows.first();
    expect(await row.textContent()).toContain(`admin ${h.tenant.slug}`);
    expect(await row.textContent()).toContain("添加员工");
    expect(await row.textContent()).toContain(created!.email);
    expect(await row.locator(`a[href='/console/staff/${created!.id}']`).count()).toBe(1);
    await shot(page, "admin-audit");

    // Everything that happened to that staff member: created, role changed, deactivated.
    await row.getByRole("link", { name: /^staff · / }).click();
    await page.waitForURL(/entityId=/);
    const actions = await rows.evaluateAll((els) => els.map((e) => e.getAttribute("data-action")));
    expect(actions).toEqual(["staff.update", "staff.update", "staff.create"]);
    expect(await rows.first().textContent()).toContain("active: true → false");
    expect(await rows.nth(1).textContent()).toContain("role: consultant → marketing");

    // Who reassigned what: the handover's moves, and the manager's settings change.
    await page.goto(`/console/audit?action=contact.reassign`);
    expect(await rows.count()).toBeGreaterThan(0);
    expect(await rows.first().textContent()).toContain("offboard");
    await page.goto(`/console/audit?actor=${h.tenant.staff.manager.id}&action=lead.settings`);
    expect(await rows.count()).toBe(1);
    expect(await rows.first().textContent()).toContain(`manager ${h.tenant.slug}`);

    // Pages: 50 a page, older ones behind the link; a malformed filter is said next to its field.
    await page.goto("/console/audit");
    expect(await rows.count()).toBe(50);
    await page.getByRole("link", { name: "更早的记录" }).click();
    await page.waitForURL(/cursor=/);
    expect(await rows.count()).toBeGreaterThan(0);
    await page.goto("/console/audit?actor=not-a-staff-id");
    expect(await page.locator("#au-actor-err").count()).toBe(1);
  });
});
