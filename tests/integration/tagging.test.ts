import { eq, sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { rowsOf, type Tx } from "../../src/db/client";
import { events, tagHistory } from "../../src/db/schema/index";
import { startWorkers, type RunningWorker } from "../../src/jobs/workers";
import { client, createTestTenant, type TestTenant } from "../helpers/factories";
import { createTestRuntime, type TestRuntime } from "../helpers/runtime";
import { waitFor } from "../helpers/wait";

/** The rules engine in the events worker: events in, tags with reasons out, in one transaction. */
let t: TestRuntime;
let tenant: TestTenant;
let workers: RunningWorker[] = [];

beforeAll(async () => {
  t = await createTestRuntime();
  tenant = await createTestTenant(t.rt.deps);
  workers = startWorkers(t.rt.deps, t.rt.redisUrl, ["events"]);
});
afterAll(async () => {
  await Promise.all(workers.map((w) => w.close()));
  await t?.close();
});

const ago = (days: number) => new Date(Date.now() - days * 86_400_000).toISOString();

async function send(evs: object[]) {
  const res = await client(t.app, tenant.tokens.admin).post("/v1/events", { events: evs });
  expect(res.status).toBe(202);
  const ids: string[] = res.body.ids;
  await waitFor(async () => {
    const rows = await Promise.all(ids.map((id) => t.rt.deps.db.select({ p: events.processedAt }).from(events).where(eq(events.id, id))));
    return rows.every((r) => r[0]?.p);
  }, { what: "events processed" });
  return ids;
}

describe("incremental tagging", () => {
  it("tags a contact milliseconds after its events, each tag with its rule, version and event", async () => {
    const c = await client(t.app, tenant.tokens.admin).post("/v1/contacts", { name: "标签测试" });
    const [added, msg, visit] = await send([
      { type: "contact_added", contactId: c.body.id, occurredAt: ago(30), idempotencyKey: "tg-1", data: {} },
      { type: "message_received", contactId: c.body.id, occurredAt: ago(20), idempotencyKey: "tg-2", data: { text: "想问下祛痘的价格" } },
      { type: "visit", contactId: c.body.id, occurredAt: ago(10), idempotencyKey: "tg-3", data: { item: "祛痘" } },
    ]);
    const res = await client(t.app, tenant.tokens.marketing).get(`/v1/contacts/${c.body.id}/tags`);
    const byGroup = Object.fromEntries(res.body.tags.map((x: { group: string }) => [x.group, x]));
    expect(byGroup.visit).toMatchObject({ name: "首诊", reason: { ruleId: "visit-first", ruleVersion: 1, eventId: visit } });
    expect(byGroup.need).toMatchObject({ name: "祛痘", reason: { ruleId: "need-acne", ruleVersion: 1 } });
    expect([msg, visit]).toContain(byGroup.need.reason.eventId);
    expect(byGroup.engagement).toMatchObject({ name: "低" });
    void added;
  });

  it("moves 首诊 to 复诊 on the second visit, writing both to tag history; a repeated event changes nothing", async () => {
    const c = await client(t.app, tenant.tokens.admin).post("/v1/contacts", { name: "复诊测试" });
    await send([{ type: "visit", contactId: c.body.id, occurredAt: ago(40), idempotencyKey: "rv-1", data: {} }]);
    const [second] = await send([{ type: "visit", contactId: c.body.id, occurredAt: ago(5), idempotencyKey: "rv-2", data: {} }]);
    const tagsNow = await client(t.app, tenant.tokens.admin).get(`/v1/contacts/${c.body.id}/tags`);
    expect(tagsNow.body.tags.find((x: { group: string }) => x.group === "visit")).toMatchObject({ name: "复诊", reason: { ruleId: "visit-revisit", eventId: second } });
    const history = await t.rt.deps.db.select().from(tagHistory).where(eq(tagHistory.contactId, c.body.id));
    expect(history.filter((h) => h.ruleId === "visit-revisit").map((h) => h.action).sort()).toEqual(["add", "remove"]);
    const before = history.length;
    // The same event again is a duplicate: nothing stored, nothing re-tagged.
    const dup = await client(t.app, tenant.tokens.admin).post("/v1/events", { events: [{ type: "visit", contactId: c.body.id, occurredAt: ago(5), idempotencyKey: "rv-2", data: {} }] });
    expect(dup.body.duplicates).toBe(1);
    expect((await t.rt.deps.db.select().from(tagHistory).where(eq(tagHistory.contactId, c.body.id))).length).toBe(before);
  });

  it("keeps one tag per exclusive group under concurrent events of one contact", async () => {
    const c = await client(t.app, tenant.tokens.admin).post("/v1/contacts", { name: "并发测试" });
    await send(Array.from({ length: 12 }, (_, i) => ({ type: i % 2 ? "purchase" : "visit", contactId: c.body.id, occurredAt: ago(12 - i), idempotencyKey: `cc-${i}`, data: i % 2 ? { amount: 1000, items: ["水光针"] } : {} })));
    const res = await client(t.app, tenant.tokens.admin).get(`/v1/contacts/${c.body.id}/tags`);
    const groups = res.body.tags.map((x: { group: string }) => x.group);
    for (const g of ["visit", "spending"]) expect(groups.filter((x: string) => x === g)).toHaveLength(1);
    expect(res.body.tags.find((x: { group: string }) => x.group === "visit").name).toBe("复诊");
    expect(res.body.tags.find((x: { group: string }) => x.group === "spending").name).toBe("中消费");
  });

  it("shows tag changes among events on the timeline, and pages through it without gaps", async () => {
    const c = await client(t.app, tenant.tokens.admin).post("/v1/contacts", { name: "时间线" });
    await send([
      { type: "contact_added", contactId: c.body.id, occurredAt: ago(9), idempotencyKey: "tl-1", data: {} },
      { type: "visit", contactId: c.body.id, occurredAt: ago(8), idempotencyKey: "tl-2", data: {} },
      { type: "purchase", contactId: c.body.id, occurredAt: ago(7), idempotencyKey: "tl-3", data: { amount: 25000, items: ["热玛吉"] } },
      { type: "visit", contactId: c.body.id, occurredAt: ago(6), idempotencyKey: "tl-4", data: {} },
    ]);
    const api = client(t.app, tenant.tokens.admin);
    const all = await api.get(`/v1/contacts/${c.body.id}/timeline?limit=200`);
    const kinds = all.body.items.map((x: { kind: string }) => x.kind);
    expect(kinds.filter((k: string) => k === "event")).toHaveLength(4);
    const tagEntries = all.body.items.filter((x: { kind: string }) => x.kind === "tag");
    expect(tagEntries.map((x: { group: string; tag: string; action: string }) => `${x.action} ${x.group}:${x.tag}`)).toEqual(expect.arrayContaining(["add visit:复诊", "add spending:高消费", "add need:抗衰"]));
    expect(tagEntries.find((x: { tag: string }) => x.tag === "高消费")).toMatchObject({ ruleId: "spending-high", ruleVersion: 1 });
    const seen: string[] = [];
    let before: string | null = null;
    do {
      const page: any = await api.get(`/v1/contacts/${c.body.id}/timeline?limit=2${before ? `&before=${encodeURIComponent(before)}` : ""}`);
      expect(page.status).toBe(200);
      seen.push(...page.body.items.map((x: object) => JSON.stringify(x)));
      before = page.body.nextBefore;
    } while (before);
    expect(seen.sort()).toEqual(all.body.items.map((x: object) => JSON.stringify(x)).sort());
  });

  it("the nightly pass turns patients without a visit for 180 days dormant (沉睡), once per tenant and day", async () => {
    const c = await client(t.app, tenant.tokens.admin).post("/v1/contacts", { name: "沉睡测试" });
    await send([{ type: "visit", contactId: c.body.id, occurredAt: ago(200), idempotencyKey: "dm-1", data: {} }]);
    const visitTag = async () => (await client(t.app, tenant.tokens.admin).get(`/v1/contacts/${c.body.id}/tags`)).body.tags.find((x: { group: string }) => x.group === "visit");
    expect((await visitTag()).name).toBe("首诊");
    const day = new Date().toISOString().slice(0, 10);
    await t.rt.deps.producer.enqueue("tagging-nightly-all", { day }, { jobId: `tag-nightly-all-${day}` });
    const maint = startWorkers(t.rt.deps, t.rt.redisUrl, ["maintenance"]);
    try {
      const tag = await waitFor(async () => {
        const v = await visitTag();
        return v?.name === "沉睡" ? v : null;
      }, { what: "沉睡 after the nightly pass" });
      expect(tag.reason).toMatchObject({ ruleId: "visit-dormant", ruleVersion: 1, eventId: null });
    } finally {
      await Promise.all(maint.map((w) => w.close()));
    }
  });

  it("applies waiting events in batches: one transaction takes many, each is processed once and tags are right", async () => {
    await Promise.all(workers.map((w) => w.close()));
    const admin = client(t.app, tenant.tokens.admin);
    const people = await Promise.all(Array.from({ length: 30 }, (_, i) => admin.post("/v1/contacts", { name: `批量${i}` })));
    const res = await admin.post("/v1/events", {
      events: people.flatMap((p, i) => [
        { type: "visit", contactId: p.body.id, occurredAt: ago(30), idempotencyKey: `batch-a-${i}`, data: {} },
        { type: "visit", contactId: p.body.id, occurredAt: ago(3), idempotencyKey: `batch-b-${i}`, data: {} },
      ]),
    });
    expect(res.body.accepted).toBe(60);
    workers = startWorkers(t.rt.deps, t.rt.redisUrl, ["events"]);
    const rows = await waitFor(async () => {
      const r = await t.rt.deps.db.select({ processedAt: events.processedAt, attempts: events.attempts }).from(events).where(sql`${events.id} in ${res.body.ids}`);
      return r.every((x) => x.processedAt) ? r : null;
    }, { what: "batch processed" });
    expect(rows.every((r) => r.attempts === 1)).toBe(true);
    // Fewer transactions than events: several events share one commit time.
    expect(new Set(rows.map((r) => r.processedAt!.getTime())).size).toBeLessThan(60);
    for (const p of people.slice(0, 5)) {
      const tg = await admin.get(`/v1/contacts/${p.body.id}/tags`);
      expect(tg.body.tags.find((x: { group: string }) => x.group === "visit").name).toBe("复诊");
    }
  });
});

/**
 * Runs a set-based pass while `hold` keeps a lock in an open transaction: the pass must still be
 * running 300 ms later, and finish once the transaction ends. Returns the dormant contact's visit tag.
 */
async function passWaitsFor(name: string, hold: (tx: Tx, contactId: string) => Promise<void>, mode: "schedule" | "backfill") {
  const { runSetBased } = await import("../../src/services/tagging/set-based");
  const { systemCtx } = await import("../../src/services/context");
  const c = await client(t.app, tenant.tokens.admin).post("/v1/contacts", { name });
  await send([{ type: "visit", contactId: c.body.id, occurredAt: ago(400), idempotencyKey: `lock-${c.body.id}`, data: {} }]);
  let release!: () => void;
  const held = new Promise<void>((r) => (release = r));
  let locked!: () => void;
  const lockTaken = new Promise<void>((r) => (locked = r));
  const holder = t.rt.deps.db.transaction(async (tx) => {
    await hold(tx, c.body.id);
    locked();
    await held;
  });
  await lockTaken;
  let done = false;
  const pass = runSetBased({ ctx: systemCtx(t.rt.deps, tenant.id, "test"), mode }).then((r) => {
    done = true;
    return r;
  });
  await new Promise((r) => setTimeout(r, 300));
  expect(done).toBe(false);
  release();
  await holder;
  expect((await pass).contacts).toBeGreaterThanOrEqual(1);
  // 400 days without a visit: the pass made the contact dormant.
  const tagsNow = await client(t.app, tenant.tokens.admin).get(`/v1/contacts/${c.body.id}/tags`);
  return tagsNow.body.tags.find((x: { group: string }) => x.group === "visit");
}

describe("set-based pass and events worker", () => {
  it("a set-based chunk waits for a worker batch holding the tenant's tag lock, then applies", async () => {
    const { shareTagLocks } = await import("../../src/services/tagging/set-based");
    // A "worker batch": a transaction sharing the tag locks, open until released.
    const visit = await passWaitsFor("锁测试", (tx) => shareTagLocks(tx, tenant.id), "schedule");
    expect(visit).toMatchObject({ name: "沉睡", reason: { ruleId: "visit-dormant" } });
  });
});

describe("set-based pass: parts and aggregates", () => {
  it("a chunk holds the lock of the one part of the id space its contacts lie in, so another pass's chunk of that part waits", async () => {
    const { tagLockKeys } = await import("../../src/services/tagging/set-based");
    const { partOf, PARTS } = await import("../../src/services/tagging/tag-state");
    expect(PARTS).toBe(4);
    expect(["00000000", "3fffffff", "40000000", "7fffffff", "80000000", "bfffffff", "c0000000", "ffffffff"].map((p) => partOf(`${p}-0000-4000-8000-000000000000`))).toEqual([0, 0, 1, 1, 2, 2, 3, 3]);
    // "Another pass": a transaction holding the contact's part exclusively, as its chunk would.
    const visit = await passWaitsFor("分区锁", async (tx, contactId) => {
      await tx.execute(sql`select pg_advisory_xact_lock(hashtext(${tagLockKeys(tenant.id)[partOf(contactId)]!}::text))`);
    }, "backfill");
    expect(visit).toMatchObject({ name: "沉睡" });
  });

  it("siyu_latest gives the value of the latest row, ties broken by the greater id, as the ordered array_agg it replaces", async () => {
    const rows = rowsOf<{ g: number; latest: number | null; ordered: number | null }>(
      await t.rt.deps.db.execute(sql`
        select g, siyu_latest(at, id, v) as latest, (array_agg(v order by at desc, id desc))[1] as ordered
        from (values
          (1, '2026-01-01T00:00:00Z'::timestamptz, '00000000-0000-4000-8000-000000000001'::uuid, 3::float8),
          (1, '2026-03-01T00:00:00Z', '00000000-0000-4000-8000-000000000001', 9),
          (1, '2026-02-01T00:00:00Z', '00000000-0000-4000-8000-000000000002', 5),
          (2, '2026-03-01T00:00:00Z', '00000000-0000-4000-8000-00000000000a', 4),
          (2, '2026-03-01T00:00:00Z', '00000000-0000-4000-8000-00000000000b', 7),
          (3, '2026-03-01T00:00:00Z', '00000000-0000-4000-8000-000000000001', 6),
          (3, '2026-04-01T00:00:00Z', '00000000-0000-4000-8000-000000000001', null)
        ) x(g, at, id, v) group by g order by g`),
    );
    expect(rows.map((r) => [r.g, r.latest === null ? null : Number(r.latest), r.ordered === null ? null : Number(r.ordered)])).toEqual([
      [1, 9, 9],
      [2, 7, 7],
      [3, null, null],
    ]);
    const [none] = rowsOf<{ v: number | null }>(await t.rt.deps.db.execute(sql`select siyu_latest(now(), gen_random_uuid(), 1::float8) filter (where false) as v`));
    expect(none!.v).toBeNull();
  });
});

describe("nightly recheck times", () => {
  it("a new contact is due, a pass sets when it is next due, and an edit makes it due again", async () => {
    const { runSetBased } = await import("../../src/services/tagging/set-based");
    const { systemCtx } = await import("../../src/services/context");
    // -Infinity: due now ('-infinity' in PostgreSQL); otherwise the time in ms.
    const recheck = async (id: string) => {
      const r = await t.rt.deps.db.execute(sql`select recheck_at = '-infinity' as due, extract(epoch from recheck_at) * 1000 as ms from contact_tag_state where contact_id = ${id}::uuid`);
      const [row] = rowsOf<{ due: boolean; ms: string }>(r);
      return row!.due ? -Infinity : Math.round(Number(row!.ms));
    };
    const admin = client(t.app, tenant.tokens.admin);
    const c = await admin.post("/v1/contacts", { name: "复查测试" });
    expect(await recheck(c.body.id)).toBe(-Infinity);
    // A visit 100 days ago: dormant (180 days) is due 80 days from now.
    await send([{ type: "visit", contactId: c.body.id, occurredAt: ago(100), idempotencyKey: `rc-${c.body.id}`, data: {} }]);
    expect(await recheck(c.body.id)).toBe(-Infinity); // the worker made it due
    await runSetBased({ ctx: systemCtx(t.rt.deps, tenant.id, "test"), mode: "schedule" });
    const next = await recheck(c.body.id);
    const visitAt = (await t.rt.deps.db.select().from(events).where(eq(events.idempotencyKey, `rc-${c.body.id}`)))[0]!.occurredAt.getTime();
    expect(next).toBe(visitAt + 180 * 86_400_000);
    expect((await admin.patch(`/v1/contacts/${c.body.id}`, { gender: "female" })).status).toBe(200);
    expect(await recheck(c.body.id)).toBe(-Infinity);
  });
});
