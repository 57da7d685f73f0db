import { Redis } from "ioredis";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { WecomClient, type WecomClientOptions } from "../../src/wecom/api/client";
import { WecomError, WecomNetworkError } from "../../src/wecom/api/errors";
import { startFakeWecom, type RunningFakeWecom } from "../../src/wecom/fake/index";
import { testWecomApp } from "../helpers/wecom";

/** The API client against the fake WeCom and the real Redis of the test run. */
const app = testWecomApp();
let fake: RunningFakeWecom;
let redis: Redis;
/** The fake's clock: tests move it forward (token expiry, rate-limit windows). */
let clockMs = Date.now();
let prefix = "";

beforeAll(async () => {
  fake = await startFakeWecom({ corpId: app.corpId, agentId: app.agentId, secret: app.secret, callbackToken: app.callbackToken, encodingAesKey: app.encodingAesKey, now: () => new Date(clockMs) });
  redis = new Redis(process.env.REDIS_URL!);
  fake.control.createStaff({ userid: "zhangsan", name: "张三" });
  for (let i = 0; i < 3; i++) fake.control.createContact({ name: `客户${i}`, followedBy: "zhangsan" });
});
afterAll(async () => {
  await fake?.close();
  await redis?.quit();
});
afterEach(() => {
  fake.control.setRateLimit(10_000);
});

let n = 0;
function newClient(o: Partial<WecomClientOptions> = {}, calls: string[] = []): WecomClient {
  return new WecomClient({
    baseUrl: fake.url,
    corpId: app.corpId,
    secret: app.secret,
    agentId: app.agentId,
    redis,
    keyPrefix: prefix,
    backoffMs: 5,
    onCall: (c) => calls.push(`${c.api}:${c.errcode}`),
    ...o,
  });
}

/** A fresh Redis namespace per test: no token or counter carries over. */
function freshPrefix() {
  prefix = `wecom-client-test-${process.pid}-${++n}`;
}

describe("WecomClient", () => {
  it("fetches the token once for many concurrent calls from two processes, and caches it in Redis", async () => {
    freshPrefix();
    const calls: string[] = [];
    const a = newClient({}, calls);
    const b = newClient({}, calls); // another process: its own instance, the same Redis
    const results = await Promise.all(Array.from({ length: 20 }, (_, i) => (i % 2 ? a : b).listExternalContactIds("zhangsan")));
    expect(results.every((r) => r.length === 3)).toBe(true);
    expect(calls.filter((c) => c.startsWith("gettoken"))).toHaveLength(1);
    const keys = await redis.keys(`${prefix}:wecom:token:*`);
    expect(keys.filter((k) => !k.endsWith(":lock"))).toHaveLength(1);
    const ttl = await redis.ttl(keys.find((k) => !k.endsWith(":lock"))!);
    expect(ttl).toBeGreaterThan(6000);
    expect(ttl).toBeLessThanOrEqual(7200 - 300);
  });

  it("refreshes once and retries when WeCom revokes the token early (40014)", async () => {
    freshPrefix();
    const calls: string[] = [];
    const c = newClient({}, calls);
    await c.listExternalContactIds("zhangsan");
    fake.control.revokeTokens();
    const ids = await c.listExternalContactIds("zhangsan");
    expect(ids).toHaveLength(3);
    expect(calls).toEqual(["gettoken:0", "externalcontact/list:0", "externalcontact/list:40014", "gettoken:0", "externalcontact/list:0"]);
  });

  it("refreshes when the token expires mid-flight (42001)", async () => {
    freshPrefix();
    const calls: string[] = [];
    const c = newClient({}, calls);
    await c.listExternalContactIds("zhangsan");
    clockMs += 7300 * 1000; // WeCom's clock passes expires_in while our cached copy still looks valid
    await c.listExternalContactIds("zhangsan");
    expect(calls.slice(2)).toEqual(["externalcontact/list:42001", "gettoken:0", "externalcontact/list:0"]);
  });

  it("backs off and retries on 45009, then succeeds", async () => {
    freshPrefix();
    const calls: string[] = [];
    const sleeps: number[] = [];
    // Sleeping moves the fake's clock, as waiting would in real time.
    const c = newClient({ sleep: async (ms) => void sleeps.push(ms), maxRetries: 3 }, calls);
    fake.control.setRateLimit(2);
    clockMs = Math.ceil(clockMs / 60_000) * 60_000 + 1000; // start of a fresh minute window
    await c.listExternalContactIds("zhangsan");
    await c.listExternalContactIds("zhangsan");
    const origSleep = sleeps.length;
    const c2 = newClient({ sleep: async (ms) => { sleeps.push(ms); clockMs += 60_000; }, maxRetries: 3 }, calls);
    const ids = await c2.listExternalContactIds("zhangsan");
    expect(ids).toHaveLength(3);
    expect(calls.filter((x) => x === "externalcontact/list:45009").length).toBeGreaterThanOrEqual(1);
    expect(sleeps.length).toBeGreaterThan(origSleep);
  });

  it("gives up after its retries on persistent 45009 with a typed, retryable error", async () => {
    freshPrefix();
    const calls: string[] = [];
    const c = newClient({ sleep: async () => {}, maxRetries: 2 }, calls);
    await c.getAccessToken();
    fake.control.setRateLimit(0);
    const err = await c.listExternalContactIds("zhangsan").catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WecomError);
    expect((err as WecomError).errcode).toBe(45009);
    expect((err as WecomError).retryable).toBe(true);
    expect(calls.filter((x) => x.endsWith(":45009"))).toHaveLength(3);
  });

  it("does not retry a permanent error and types it", async () => {
    freshPrefix();
    const calls: string[] = [];
    const c = newClient({}, calls);
    const err = await c.getExternalContact("wmNoSuchCustomer000000000000000000").catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WecomError);
    expect((err as WecomError).errcode).toBe(40096);
    expect((err as WecomError).retryable).toBe(false);
    expect(calls.filter((x) => x.startsWith("externalcontact/get"))).toHaveLength(1);
  });

  it("retries network failures, then throws WecomNetworkError", async () => {
    freshPrefix();
    let attempts = 0;
    const c = newClient({ maxRetries: 2, fetch: async () => { attempts++; throw new TypeError("fetch failed: ECONNREFUSED"); } });
    const err = await c.getCallbackIps().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WecomNetworkError);
    // gettoken fails first (no token cached): 1 attempt + 2 retries.
    expect(attempts).toBe(3);
  });

  it("holds calls to its own per-minute limit (shared through Redis) instead of tripping WeCom's", async () => {
    freshPrefix();
    const sleeps: number[] = [];
    let now = Math.ceil(Date.now() / 60_000) * 60_000 + 5_000;
    const opts = { limits: { perMinute: 2, perHour: 1000 }, now: () => now, sleep: async (ms: number) => { sleeps.push(ms); now += ms; } };
    const a = newClient(opts);
    const b = newClient(opts);
    await a.listExternalContactIds("zhangsan");
    await b.listExternalContactIds("zhangsan");
    expect(sleeps).toEqual([]);
    await a.listExternalContactIds("zhangsan");
    expect(sleeps).toHaveLength(1);
    expect(sleeps[0]).toBe(55_000);
  });

  it("pages batch/get_by_user to the end", async () => {
    freshPrefix();
    fake.control.createStaff({ userid: "lisi" });
    for (let i = 0; i < 7; i++) fake.control.createContact({ followedBy: "lisi" });
    const c = newClient();
    const seen: string[] = [];
    let cursor = "";
    let pages = 0;
    do {
      const page = await c.batchGetByUser({ userIdList: ["lisi"], cursor, limit: 3 });
      seen.push(...page.items.map((i) => i.external_contact.external_userid));
      cursor = page.nextCursor;
      pages++;
    } while (cursor);
    expect(pages).toBe(3);
    expect(new Set(seen).size).toBe(7);
  });
});
