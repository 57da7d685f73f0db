import { existsSync, mkdirSync } from "node:fs";
import { randomUUID } from "node:crypto";
import { fileURLToPath } from "node:url";
import { serve, type ServerType } from "@hono/node-server";
import { chromium, type Browser, type BrowserContext, type Page } from "playwright-core";
import { startWorkers, type RunningWorker } from "../../src/jobs/workers";
import { client, createTestTenant, PASSWORD, phone, type StaffKey, type TestTenant } from "../helpers/factories";
import { createTestRuntime, type TestRuntime } from "../helpers/runtime";
import { waitFor } from "../helpers/wait";

/** Debian's Chromium (scripts/test.sh installs the `chromium` package when it is absent). */
export const CHROMIUM = "/usr/bin/chromium";

/** Screenshots of the main pages, for people to look at (git-ignored). */
export const SCREENSHOT_DIR = fileURLToPath(new URL("../../test-artifacts/screenshots/", import.meta.url));

/** The nav entries (data-nav keys) the page shows. */
export const navKeys = (page: Page) => page.locator("nav#sidenav [data-nav]").evaluateAll((els) => els.map((e) => e.getAttribute("data-nav")));
// Page-side code as a string: the project's TypeScript has no DOM library.
export const noHorizontalScroll = (page: Page) => page.evaluate("document.documentElement.scrollWidth <= window.innerWidth");

export const DESKTOP = { width: 1280, height: 800 };
export const PHONE = { width: 390, height: 844 };

/** What the seed made, by name, for the tests to look for. */
export interface Seed {
  /** Owned by `consultant`, read an article on 祛痘: tagged need:祛痘 by rule need-acne. */
  tagged: { id: string; name: string };
  /** Owned by `consultant2`: never on `consultant`'s pages. */
  otherOwned: { id: string; name: string };
  /** `consultant`'s open lead, awaiting first contact. */
  lead: { id: string; contactId: string; name: string };
  /** `consultant`'s second open lead. */
  secondLead: { id: string; name: string };
  /** `consultant2`'s open lead. */
  otherLead: { id: string; name: string };
  /** How many contacts the tenant has (more than one page of the list). */
  contacts: number;
}

export interface ConsoleHarness {
  rt: TestRuntime;
  baseUrl: string;
  tenant: TestTenant;
  seed: Seed;
  browser: Browser;
  /** The services' clock runs this far ahead of the real one (e.g. to make deadlines pass). */
  setClockAhead(ms: number): void;
  /** A fresh browser context (own cookies) and page; closed by close(). */
  newPage(opts?: { viewport?: { width: number; height: number } }): Promise<Page>;
  /** Sign in through the form as one of the tenant's staff; ends on the role's home page. */
  signIn(page: Page, who: StaffKey): Promise<void>;
  /** Open a section from the nav (its data-nav key) and wait for its page, /console/{path} (the key unless given). */
  openSection(page: Page, key: string, path?: string): Promise<void>;
  screenshot(page: Page, name: string): Promise<void>;
  close(): Promise<void>;
}

/**
 * The real app on a loopback port (its own database and queue prefix, the events worker running
 * so rules tag contacts), a tenant with one staff member per role and a little data, and one
 * headless Chromium for the whole file. Launch flags per the machine notes: no sandbox (root), no
 * GPU, and none of Chromium's own network traffic (this machine's network is closed). Playwright
 * gives every launch a fresh, empty user-data-dir of its own.
 */
export async function startConsole(): Promise<ConsoleHarness> {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} not found: run the browser tests with \`npm test\`, which installs Debian's chromium package`);
  let aheadMs = 0;
  const rt = await createTestRuntime({}, { now: () => new Date(Date.now() + aheadMs) });
  const workers: RunningWorker[] = startWorkers(rt.rt.deps, rt.rt.redisUrl, ["events"]);
  const server = await new Promise<ServerType>((resolve) => {
    const s = serve({ fetch: rt.app.fetch, port: 0, hostname: "127.0.0.1" }, () => resolve(s));
  });
  const baseUrl = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  const contexts: BrowserContext[] = [];
  let browser: Browser | undefined;
  const close = async () => {
    for (const c of contexts) await c.close().catch(() => {});
    await browser?.close().catch(() => {});
    await new Promise<void>((r) => server.close(() => r()));
    await Promise.all(workers.map((w) => w.close()));
    await rt.close();
  };
  try {
    const tenant = await createTestTenant(rt.rt.deps);
    const seed = await seedTenant(rt, tenant);
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
    });
    mkdirSync(SCREENSHOT_DIR, { recursive: true });
    const b = browser;
    return {
      rt,
      baseUrl,
      tenant,
      seed,
      browser: b,
      setClockAhead: (ms) => {
        aheadMs = ms;
      },
      newPage: async (opts = {}) => {
        const context = await b.newContext({ baseURL: baseUrl, viewport: opts.viewport ?? DESKTOP, locale: "zh-CN", timezoneId: "Asia/Shanghai" });
        // Fail fast with Playwright's own message, well inside the test's timeout.
        context.setDefaultTimeout(10_000);
        contexts.push(context);
        return context.newPage();
      },
      openSection: async (page, key, path = key) => {
        await page.locator(`nav#sidenav [data-nav=${key}]`).click();
        await page.waitForURL(new RegExp(`/console/${path}$`));
      },
      signIn: async (page, who) => {
        await page.goto("/login");
        await page.getByLabel("机构代码").fill(tenant.slug);
        await page.getByLabel("邮箱").fill(tenant.staff[who].email);
        await page.getByLabel("密码").fill(PASSWORD);
        await Promise.all([page.waitForURL(/\/console$/), page.getByRole("button", { name: "登录" }).click()]);
      },
      screenshot: async (page, name) => {
        await page.screenshot({ path: `${SCREENSHOT_DIR}${name}.png`, fullPage: true });
      },
      close,
    };
  } catch (err) {
    await close();
    throw err;
  }
}

/** Through the API, as the staff who would do it: contacts, an event the rules tag, two leads. */
async function seedTenant(t: TestRuntime, tenant: TestTenant): Promise<Seed> {
  const admin = client(t.app, tenant.tokens.admin);
  const marketing = client(t.app, tenant.tokens.marketing);
  const as = (key: StaffKey) => client(t.app, tenant.tokens[key]);
  const create = async (who: StaffKey, name: string, owner?: StaffKey) => {
    const res = await as(who).post("/v1/contacts", { name, phone: phone(), source: "qr_poster", ...(owner ? { ownerStaffId: tenant.staff[owner].id } : {}) });
    if (res.status !== 201) throw new Error(`seed contact ${name}: ${res.status} ${JSON.stringify(res.body)}`);
    return res.body.id as string;
  };
  // More than one page of the list (25 a page), oldest first so the named ones lead the list.
  const filler = 27;
  for (let i = 0; i < filler; i++) await create("admin", `客户${String(i + 1).padStart(2, "0")}`, i % 2 ? "consultant" : "consultant2");
  const tagged = { id: await create("admin", "李女士", "consultant"), name: "李女士" };
  const otherOwned = { id: await create("admin", "王先生", "consultant2"), name: "王先生" };
  const leadContact = await create("consultant", "张女士");
  const secondLeadContact = await create("consultant", "陈女士");
  const otherLeadContact = await create("consultant2", "赵女士");

  const read = await marketing.post("/v1/events", {
    events: [{ type: "article_read", contactId: tagged.id, occurredAt: new Date(Date.now() - 3600_000).toISOString(), idempotencyKey: randomUUID(), data: { articleId: "acne-101", topic: "祛痘", dwellSeconds: 95 } }],
  });
  if (read.status !== 202) throw new Error(`seed event: ${read.status} ${JSON.stringify(read.body)}`);
  await waitFor(async () => ((await admin.get(`/v1/contacts/${tagged.id}/tags`)).body.tags ?? []).some((x: { group: string; name: string }) => x.group === "need" && x.name === "祛痘"), {
    what: "the rules to tag need:祛痘",
    timeoutMs: 30_000,
  });

  const lead = await as("consultant").post("/v1/leads", { contactId: leadContact, source: "api", need: "祛痘" });
  const secondLead = await as("consultant").post("/v1/leads", { contactId: secondLeadContact, source: "api", need: "种植牙" });
  const otherLead = await as("consultant2").post("/v1/leads", { contactId: otherLeadContact, source: "api" });
  if ([lead, secondLead, otherLead].some((l) => l.status !== 201)) throw new Error(`seed leads: ${lead.status} ${secondLead.status} ${otherLead.status}`);
  return {
    tagged,
    otherOwned,
    lead: { id: lead.body.id, contactId: leadContact, name: "张女士" },
    secondLead: { id: secondLead.body.id, name: "陈女士" },
    otherLead: { id: otherLead.body.id, name: "赵女士" },
    contacts: filler + 5,
  };
}
