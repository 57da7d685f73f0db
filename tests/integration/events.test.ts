import { and, eq, inArray, isNull, sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { contacts, events } from "../../src/db/schema/index";
import { startWorkers, type RunningWorker } from "../../src/jobs/workers";
import { createRedis } from "../../src/queue/connection";
import { Producer } from "../../src/queue/producer";
import { systemCtx } from "../../src/services/context";
import { ingestEvents } from "../../src/services/events/ingest";
import { handleSweepEvents } from "../../src/jobs/sweep-events";
import { client, createTestTenant, phone, type TestTenant } from "../helpers/factories";
import { createTestRuntime, type TestRuntime } from "../helpers/runtime";
import { waitFor } from "../helpers/wait";

let t: TestRuntime;
let tenant: TestTenant;
let other: TestTenant;

beforeAll(async () => {
  t = await createTestRuntime();
  tenant = await createTestTenant(t.rt.deps);
  other = await createTestTenant(t.rt.deps);
});
afterAll(async () => t?.close());

const at = (minutesAgo = 5) => new Date(Date.now() - minutesAgo * 60_000).toISOString();
let n = 0;
const key = () => `k-${Date.now()}-${++n}`;

async function eventRows(tenantId: string) {
  return t.rt.deps.db.select().from(events).where(eq(events.tenantId, tenantId));
}

describe("POST /v1/events", () => {
  it("stores one event before answering 202 and queues it", async () => {
    const api = client(t.app, tenant.tokens.marketing);
    const c = await client(t.app, tenant.tokens.admin).post("/v1/contacts", { name: "周女士" });
    const k = key();
    const res = await api.post("/v1/events", { events: [{ type: "article_read", contactId: c.body.id, occurredAt: at(), idempotencyKey: k, data: { articleId: "a-1", topic: "祛痘", dwellSeconds: 40 } }] });
    expect(res.status).toBe(202);
    expect(res.body).toMatchObject({ accepted: 1, duplicates: 0, enqueued: true });
    const [row] = await t.rt.deps.db.select().from(events).where(eq(events.id, res.body.ids[0]));
    expect(row).toMatchObject({ type: "article_read", contactId: c.body.id, idempotencyKey: k, source: "api" });
    expect(row!.payload).toEqual({ articleId: "a-1", topic: "祛痘", dwellSeconds: 40 });
    const job = await t.rt.deps.producer.queue("events").getJob(`evb-${res.body.ids[0]}`);
    expect(job?.data).toEqual({ tenantId: tenant.id, eventIds: [res.body.ids[0]] });
  });

  it("accepts a repeat as a duplicate and never stores it twice, in one batch or across requests", async () => {
    const api = client(t.app, tenant.tokens.admin);
    const ext = `wm_dup_${Date.now()}`;
    const k = key();
    const ev = { type: "message_received", externalUserId: ext, occurredAt: at(), idempotencyKey: k, data: { text: "想咨询祛痘" } };
    const first = await api.post("/v1/events", { events: [ev, ev] });
    expect(first.status).toBe(202);
    expect(first.body).toMatchObject({ accepted: 1, duplicates: 1 });
    expect(first.body.ids[0]).toBe(first.body.ids[1]);
    const again = await api.post("/v1/events", { events: [ev] });
    expect(again.body).toMatchObject({ accepted: 0, duplicates: 1, ids: [first.body.ids[0]] });
    const rows = (await eventRows(tenant.id)).filter((r) => r.idempotencyKey === k);
    expect(rows).toHaveLength(1);
  });

  it("treats idempotency keys per tenant: the same key in another tenant is a new event", async () => {
    const k = key();
    const ev = { type: "visit", externalUserId: "wm_shared_id", occurredAt: at(), idempotencyKey: k, data: {} };
    const a = await client(t.app, tenant.tokens.admin).post("/v1/events", { events: [ev] });
    const b = await client(t.app, other.tokens.admin).post("/v1/events", { events: [ev] });
    expect(a.body.accepted).toBe(1);
    expect(b.body.accepted).toBe(1);
    expect(a.body.ids[0]).not.toBe(b.body.ids[0]);
  });

  it("takes a batch of 1,000 and refuses 1,001", async () => {
    const api = client(t.app, tenant.tokens.admin);
    const batch = Array.from({ length: 1000 }, (_, i) => ({ type: "article_read", externalUserId: `wm_batch_${i % 50}`, occurredAt: at(), idempotencyKey: `batch-${i}`, data: { articleId: `a${i}` } }));
    const ok = await api.post("/v1/events", { events: batch });
    expect(ok.status).toBe(202);
    expect(ok.body.accepted).toBe(1000);
    expect(new Set(ok.body.ids).size).toBe(1000);
    const tooMany = await api.post("/v1/events", { events: [...batch, { ...batch[0], idempotencyKey: "batch-x" }] });
    expect(tooMany.status).toBe(422);
    expect(tooMany.body.errors[0].field).toBe("events");
  });

  it("refuses the whole batch when one event is bad, naming every bad field, and stores nothing", async () => {
    const api = client(t.app, tenant.tokens.admin);
    const before = (await eventRows(tenant.id)).length;
    const res = await api.post("/v1/events", {
      events: [
        { type: "visit", externalUserId: "wm_ok", occurredAt: at(), idempotencyKey: key(), data: {} },
        { type: "purchase", externalUserId: "wm_ok", occurredAt: at(), idempotencyKey: key(), data: { amount: -5, items: [] } },
        { type: "nope", externalUserId: "wm_ok", occurredAt: at(), idempotencyKey: key(), data: {} },
        { type: "visit", externalUserId: "wm_ok", occurredAt: "yesterday", idempotencyKey: key(), data: {} },
        { type: "visit", phone: "12345", occurredAt: at(), idempotencyKey: key(), data: {} },
      ],
    });
    expect(res.status).toBe(422);
    expect(res.headers.get("content-type")).toContain("application/problem+json");
    const fields = res.body.errors.map((e: { field: string }) => e.field);
    expect(fields).toEqual(expect.arrayContaining(["events[1].data.amount", "events[2].type", "events[3].occurredAt"]));
    expect((await eventRows(tenant.id)).length).toBe(before);
  });

  it("names an unknown contactId, and creates contacts for unknown externalUserId and phone", async () => {
    const api = client(t.app, tenant.tokens.admin);
    const missing = await api.post("/v1/events", { events: [{ type: "visit", contactId: "7f0e2a1c-1111-4222-8333-944455556666", occurredAt: at(), idempotencyKey: key(), data: {} }] });
    expect(missing.status).toBe(422);
    expect(missing.body.errors).toEqual([{ field: "events[0].contactId", message: "no such contact" }]);
    const p = phone();
    const ext = `wm_new_${Date.now()}`;
    const res = await api.post("/v1/events", {
      events: [
        { type: "contact_added", externalUserId: ext, occurredAt: at(), idempotencyKey: key(), data: { state: "qr_store" } },
        { type: "appointment_booked", phone: `+86 ${p}`, occurredAt: at(), idempotencyKey: key(), data: { at: new Date(Date.now() + 86_400_000).toISOString() } },
        { type: "visit", phone: p, occurredAt: at(), idempotencyKey: key(), data: {} },
      ],
    });
    expect(res.status).toBe(202);
    const rows = await t.rt.deps.db.select().from(events).where(sql`${events.id} in ${res.body.ids}`);
    const byType = Object.fromEntries(rows.map((r) => [r.type, r.contactId]));
    expect(byType.appointment_booked).toBe(byType.visit);
    const [byExt] = await t.rt.deps.db.select().from(contacts).where(and(eq(contacts.tenantId, tenant.id), eq(contacts.externalUserId, ext)));
    expect(byExt?.id).toBe(byType.contact_added);
    expect(byExt?.source).toBe("wecom");
  });

  it("is refused to consultants and reviewers", async () => {
    for (const role of ["consultant", "reviewer"] as const) {
      const res = await client(t.app, tenant.tokens[role]).post("/v1/events", { events: [{ type: "visit", externalUserId: "x", occurredAt: at(), idempotencyKey: key(), data: {} }] });
      expect(res.status).toBe(403);
    }
  });
});

describe("GET /v1/events (timeline)", () => {
  it("pages through events that share a timestamp to the microsecond, without gaps or repeats", async () => {
    const api = client(t.app, tenant.tokens.admin);
    const ext = `wm_page_${Date.now()}`;
    const same = "2026-11-01T10:00:00.123456+08:00";
    const res = await api.post("/v1/events", { events: Array.from({ length: 7 }, (_, i) => ({ type: "article_read", externalUserId: ext, occurredAt: i < 5 ? same : at(i), idempotencyKey: key(), data: { articleId: `p${i}` } })) });
    const contactId = (await t.rt.deps.db.select().from(events).where(eq(events.id, res.body.ids[0])))[0]!.contactId;
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const page: any = await api.get(`/v1/events?contactId=${contactId}&limit=2${cursor ? `&cursor=${cursor}` : ""}`);
      expect(page.status).toBe(200);
      seen.push(...page.body.items.map((e: { id: string }) => e.id));
      cursor = page.body.nextCursor;
    } while (cursor);
    expect(seen).toHaveLength(7);
    expect(new Set(seen)).toEqual(new Set(res.body.ids));
  });
});

describe("events worker", () => {
  let workers: RunningWorker[] = [];
  afterAll(async () => {
    await Promise.all(workers.map((w) => w.close()));
  });

  it("processes queued events: marks them processed once and updates the contact", async () => {
    const api = client(t.app, tenant.tokens.admin);
    const ext = `wm_worker_${Date.now()}`;
    const res = await api.post("/v1/events", {
      events: [
        { type: "contact_added", externalUserId: ext, occurredAt: at(60), idempotencyKey: key(), data: { state: "qr_douyin" } },
        { type: "article_read", externalUserId: ext, occurredAt: at(30), idempotencyKey: key(), data: { articleId: "a9" } },
        { type: "contact_deleted", externalUserId: ext, occurredAt: at(10), idempotencyKey: key(), data: { by: "contact" } },
      ],
    });
    workers = startWorkers(t.rt.deps, t.rt.redisUrl, ["events"]);
    const ids: string[] = res.body.ids;
    const rows = await waitFor(
      async () => {
        const r = await t.rt.deps.db.select().from(events).where(sql`${events.id} in ${ids}`);
        return r.every((x) => x.processedAt) ? r : null;
      },
      { what: "events processed" },
    );
    expect(rows.map((r) => r.attempts)).toEqual([1, 1, 1]);
    const [c] = await t.rt.deps.db.select().from(contacts).where(eq(contacts.id, rows[0]!.contactId));
    expect(c!.sourceState).toBe("qr_douyin");
    const deleted = rows.find((r) => r.type === "contact_deleted")!;
    expect(c!.deletedAt?.toISOString()).toBe(deleted.occurredAt.toISOString());
    expect(c!.lastEventAt!.getTime()).toBeGreaterThan(Date.now() - 11 * 60_000);
    // Listing the timeline shows them newest first, processed.
    const timeline = await api.get(`/v1/events?contactId=${c!.id}`);
    expect(timeline.body.items.map((e: { type: string }) => e.type)).toEqual(["contact_deleted", "article_read", "contact_added"]);
    expect(timeline.body.items.every((e: { processedAt: string | null }) => e.processedAt)).toBe(true);
  });
});

describe("no accepted event is lost", () => {
  it("answers 202 while Redis is unreachable, and the sweeper enqueues the stored events later", async () => {
    const conn = createRedis(t.rt.redisUrl, "producer");
    await new Promise((r) => conn.once("ready", r));
    const deadProducer = new Producer(conn, t.rt.config.QUEUE_PREFIX);
    conn.disconnect();
    const ctx = systemCtx({ ...t.rt.deps, producer: deadProducer }, tenant.id, "test");
    const r = await ingestEvents({ ctx, input: { events: [{ type: "visit", externalUserId: "wm_redis_down", occurredAt: at(), idempotencyKey: key(), data: {} }] } });
    expect(r).toMatchObject({ accepted: 1, enqueued: false });
    const id = r.ids[0]!;
    expect(await t.rt.deps.producer.queue("events").getJob(`evb-${id}`)).toBeUndefined();
    // The tenant's pipeline view counts it as pending; another tenant's view does not.
    const mine = await client(t.app, tenant.tokens.admin).get("/v1/queues");
    expect(mine.body.events.pending).toBeGreaterThanOrEqual(1);
    expect(mine.body.events.oldestPendingAt).not.toBeNull();
    const theirs = await client(t.app, other.tokens.admin).get("/v1/queues");
    expect(theirs.body.events.pending).toBe(0);
    const sweep = await handleSweepEvents({ ...t.rt.deps, now: () => new Date(Date.now() + 120_000) }, { graceSeconds: 60 });
    expect(sweep.enqueued).toBeGreaterThanOrEqual(1);
    const jobs = await t.rt.deps.producer.queue("events").getJobs(["waiting", "delayed", "prioritized"]);
    expect(jobs.some((j) => j.data.tenantId === tenant.id && (j.data.eventIds as string[]).includes(id))).toBe(true);
    await deadProducer.close();
  });

  it("survives a restart after Redis lost its data: a new process processes every accepted event exactly once", async () => {
    // Process 1 accepts events and dies before any worker ran.
    const first = await createTestRuntime();
    const tn = await createTestTenant(first.rt.deps);
    const api = client(first.app, tn.tokens.admin);
    const batch = Array.from({ length: 40 }, (_, i) => ({ type: "article_read", externalUserId: `wm_restart_${i % 7}`, occurredAt: at(), idempotencyKey: `restart-${i}`, data: { articleId: `a${i}` } }));
    const res = await api.post("/v1/events", { events: batch });
    expect(res.body.accepted).toBe(40);
    // Redis loses everything under this runtime's prefix (e.g. restarted without persistence).
    const keys = await first.rt.redis.keys(`${first.rt.config.QUEUE_PREFIX}:*`);
    if (keys.length) await first.rt.redis.del(...keys);
    await first.rt.close().catch(() => {});

    // Process 2 starts on the same database: the startup sweep re-enqueues, the worker applies.
    const { bootstrap } = await import("../../src/bootstrap");
    const { loadConfig } = await import("../../src/config/env");
    const { createLogger } = await import("../../src/logger");
    const config = loadConfig({ ...first.env, SWEEP_AFTER_SECONDS: "1" });
    await new Promise((r) => setTimeout(r, 1100));
    const rt2 = await bootstrap(config, { logger: createLogger({ level: "silent" }) });
    const ws = startWorkers(rt2.deps, rt2.redisUrl, ["scheduler", "maintenance", "events"]);
    try {
      const rows = await waitFor(
        async () => {
          const pending = await rt2.deps.db.select({ id: events.id }).from(events).where(and(eq(events.tenantId, tn.id), isNull(events.processedAt)));
          return pending.length === 0 ? rt2.deps.db.select().from(events).where(eq(events.tenantId, tn.id)) : null;
        },
        { what: "all events processed after restart", timeoutMs: 20_000 },
      );
      expect(rows).toHaveLength(40);
      expect(rows.every((r) => r.attempts === 1)).toBe(true);
    } finally {
      await Promise.all(ws.map((w) => w.close()));
      await rt2.close();
      const postgres = (await import("postgres")).default;
      const admin = postgres(process.env.DATABASE_URL!, { max: 1, onnotice: () => {} });
      await admin.unsafe(`drop database if exists ${new URL(first.databaseUrl).pathname.slice(1)} with (force)`);
      await admin.end();
    }
  });
});

describe("batches", () => {
  it("applies a request's events as one job, and one bad event does not hold back the others", async () => {
    const { handleProcessEvents } = await import("../../src/jobs/process-events");
    // Make one event fail for real: PostgreSQL refuses to mark it processed.
    await t.rt.deps.db.execute(sql`create or replace function siyu_test_poison() returns trigger language plpgsql as $$
      begin if new.idempotency_key = 'poison-pill' and new.processed_at is not null then raise exception 'poisoned event'; end if; return new; end $$`);
    await t.rt.deps.db.execute(sql`create trigger siyu_test_poison before update on events for each row execute function siyu_test_poison()`);
    try {
      const ctx = systemCtx(t.rt.deps, tenant.id, "test");
      const r = await ingestEvents({
        ctx,
        input: {
          events: [
            { type: "message_received", externalUserId: "wm_batch_a", occurredAt: at(), idempotencyKey: key(), data: { text: "想祛痘" } },
            { type: "message_received", externalUserId: "wm_batch_b", occurredAt: at(), idempotencyKey: "poison-pill", data: { text: "想美白" } },
            { type: "article_read", externalUserId: "wm_batch_c", occurredAt: at(), idempotencyKey: key(), data: { articleId: "a", topic: "抗衰" } },
          ],
        },
      });
      // One job carries the whole request.
      const job = await t.rt.deps.producer.queue("events").getJob(`evb-${r.ids[0]}`);
      expect(job?.data).toEqual({ tenantId: tenant.id, eventIds: r.ids });
      await expect(handleProcessEvents(t.rt.deps, job!.data, { jobId: job!.id })).rejects.toThrow();
      const rows = await t.rt.deps.db.select().from(events).where(inArray(events.id, r.ids));
      const byKey = new Map(rows.map((e) => [e.idempotencyKey, e]));
      const bad = byKey.get("poison-pill")!;
      expect(bad.processedAt).toBeNull();
      expect(bad.attempts).toBe(1);
      expect(bad.lastError).toMatch(/poisoned event/);
      const good = rows.filter((e) => e !== bad);
      expect(good.every((e) => e.processedAt && e.attempts === 1 && e.lastError === null)).toBe(true);
      // The good events' tags were written.
      const tagsOfA = await client(t.app, tenant.tokens.admin).get(`/v1/contacts/${good.find((e) => e.type === "message_received")!.contactId}/tags`);
      expect(tagsOfA.body.tags.map((x: { group: string; name: string }) => `${x.group}:${x.name}`)).toContain("need:祛痘");
      // A retry after the fault is gone applies the rest, and a repeat of the whole job changes nothing.
      await t.rt.deps.db.execute(sql`drop trigger siyu_test_poison on events`);
      expect(await handleProcessEvents(t.rt.deps, job!.data, { jobId: job!.id })).toEqual({ processed: 1, skipped: 2 });
      expect(await handleProcessEvents(t.rt.deps, job!.data, { jobId: job!.id })).toEqual({ processed: 0, skipped: 3 });
      const [after] = await t.rt.deps.db.select().from(events).where(eq(events.id, bad.id));
      expect(after!.processedAt).not.toBeNull();
      expect(after!.attempts).toBe(2);
    } finally {
      await t.rt.deps.db.execute(sql`drop trigger if exists siyu_test_poison on events`);
      await t.rt.deps.db.execute(sql`drop function if exists siyu_test_poison()`);
    }
  });

  it("splits a large request into jobs of 200 events", async () => {
    const ctx = systemCtx(t.rt.deps, tenant.id, "test");
    const r = await ingestEvents({ ctx, input: { events: Array.from({ length: 450 }, (_, i) => ({ type: "article_read", externalUserId: `wm_split_${i % 30}`, occurredAt: at(), idempotencyKey: key(), data: { articleId: `a${i}` } })) } });
    const sizes: number[] = [];
    for (const first of [0, 200, 400]) sizes.push(((await t.rt.deps.producer.queue("events").getJob(`evb-${r.ids[first]}`))?.data.eventIds as string[]).length);
    expect(sizes).toEqual([200, 200, 50]);
  });
});
