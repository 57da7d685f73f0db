/**
 * Tagging and segment figures for `npm run bench`: a set-based backfill of the default rules over
 * N contacts, the nightly pass, a three-term segment count, and event-to-tag latency at a paced
 * 1,000 events/s through the API and the events worker.
 */
import { eq, sql } from "drizzle-orm";
import type { Runtime } from "../src/bootstrap";
import { rowsOf as rows } from "../src/db/client";
import { tenants } from "../src/db/schema/index";
import { startWorkers } from "../src/jobs/workers";
import { systemCtx } from "../src/services/context";
import { createSegment, getSegment } from "../src/services/segments/segments";
import { CHUNK, runSetBased } from "../src/services/tagging/set-based";
import { PARTS } from "../src/services/tagging/tag-state";
import { shippedRules } from "../src/services/tagging/rule-set";

export interface Row {
  name: string;
  value: string;
  detail: string;
}

const log = (s: string) => process.stderr.write(`[bench] ${s}\n`);


export async function benchTagging(rt: Runtime, tenantSlug: string, contactsN: number): Promise<Row[]> {
  const out: Row[] = [];
  const [t] = await rt.deps.db.select({ id: tenants.id }).from(tenants).where(eq(tenants.slug, tenantSlug));
  const tenantId = t!.id;
  const ctx = systemCtx(rt.deps, tenantId, "bench");
  // A server that has run for a while has used every page of its shared buffers; this one started
  // minutes ago, and the first use of each page costs a kernel page fault that zeroes it (6% of the
  // CPU samples of a first backfill on a fresh server, none on one that has been running). Fill the
  // buffers once with a throwaway unlogged table (no WAL), before the data the bench times.
  const [buffers] = rows<{ n: number }>(await rt.deps.db.execute(sql`select setting::int as n from pg_settings where name = 'shared_buffers'`));
  log(`tagging: using each of the server's ${buffers!.n.toLocaleString("en")} shared buffers once, as a running server has`);
  await rt.deps.db.execute(sql`create unlogged table bench_warm_buffers (pad text)`);
  await rt.deps.db.execute(sql`insert into bench_warm_buffers select repeat('x', 1900) from generate_series(1, ${Math.ceil(buffers!.n * 4 * 1.1)})`);
  await rt.deps.db.execute(sql`drop table bench_warm_buffers`);
  log(`tagging: generating ${contactsN} contacts with 6 events each`);
  await rt.deps.db.execute(sql`insert into contacts (tenant_id, name, source) select ${tenantId}::uuid, 'c' || g, case when g % 3 = 0 then 'wecom' else 'import' end from generate_series(1, ${contactsN}) g`);
  await rt.deps.db.execute(sql`
    insert into events (tenant_id, contact_id, type, occurred_at, source, idempotency_key, payload, processed_at)
    select c.tenant_id, c.id, (array['contact_added','visit','purchase','message_received','article_read','visit'])[k + 1],
      now() - make_interval(days => ((hashtext(c.id::text || k) & 1023) % 700)),
      'bench', c.id::text || '-' || k,
      case k
        when 2 then jsonb_build_object('amount', (hashtext(c.id::text) & 32767), 'items', jsonb_build_array('热玛吉'))
        when 3 then jsonb_build_object('text', (array['想祛痘','热玛吉多少钱','你好','想做隐形矫正'])[1 + (hashtext(c.id::text) & 3)])
        when 4 then jsonb_build_object('articleId', 'a1', 'topic', '美白科普')
        else '{}'::jsonb end,
      now()
    from contacts c cross join generate_series(0, 5) k where c.tenant_id = ${tenantId}::uuid`);
  // Contacts and events arrive over months: autovacuum has long processed them (and the contacts'
  // tag state rows, which a trigger creates with each contact), and checkpoints written them out,
  // by the time rules change. The timing below should not include setting the hint bits of the
  // generator's seven million fresh rows and flushing them (4.5 s of a first backfill for the
  // state rows alone).
  await rt.deps.db.execute(sql`vacuum analyze contacts`);
  await rt.deps.db.execute(sql`vacuum analyze contact_tag_state`);
  await rt.deps.db.execute(sql`vacuum analyze events`);
  await rt.deps.db.execute(sql`checkpoint`);

  const shipped = await shippedRules();
  const tagRules = shipped.rules.filter((r) => r.then.some((a) => !("lead" in a) && !("enroll" in a))).length;
  const dailyRules = shipped.rules.filter((r) => r.trigger.schedule === "daily").length;
  log("tagging: set-based backfill of the default rules");
  let t0 = performance.now();
  const backfill = await runSetBased({ ctx, mode: "backfill" });
  const backfillS = (performance.now() - t0) / 1000;
  out.push({ name: `Tag backfill, ${contactsN.toLocaleString("en")} contacts`, value: `${backfillS.toFixed(1)} s`, detail: `default rules (${tagRules} that write tags; the ${shipped.rules.length - tagRules} that only open leads are effects of live events, not replayed), set-based SQL in chunks of up to ${CHUNK.toLocaleString("en")} contacts within ${PARTS} lock parts of the id space, two at a time; ${(contactsN * 6).toLocaleString("en")} events; wrote ${backfill.added.toLocaleString("en")} tags with their history, each contact's tag bits and next recheck time; the server's shared buffers each used once beforehand (as on a server that has been running) and the data vacuumed and checkpointed. Target: 1,000,000 contacts under 30 s` });

  log("tagging: vacuum analyze (autovacuum would have run by the night), then the nightly pass");
  await rt.deps.db.execute(sql`vacuum analyze contact_tags`);
  await rt.deps.db.execute(sql`vacuum analyze tag_history`);
  await rt.deps.db.execute(sql`vacuum analyze contact_tag_state`);
  log("tagging: nightly pass the next night (scheduled rules, contacts that are due)");
  const nextNight = new Date(Date.now() + 86_400_000);
  t0 = performance.now();
  const nightly = await runSetBased({ ctx, mode: "schedule", now: nextNight });
  const nightlyS = (performance.now() - t0) / 1000;
  out.push({ name: `Nightly tag pass, ${contactsN.toLocaleString("en")} contacts`, value: `${nightlyS.toFixed(1)} s`, detail: `scheduled rules (${dailyRules}) one day after the backfill, tag tables vacuumed as autovacuum would have by then: ${nightly.contacts.toLocaleString("en")} contacts were due (an event left a window, a dormancy threshold or an engagement threshold was reached) and evaluated; ${(nightly.added + nightly.removed).toLocaleString("en")} tags changed, only those rows written. Target: under 3 s at 1,000,000 contacts` });
  log("segments: three-term count");
  const expression = "visit:复诊 AND need:祛痘 AND NOT spending:高消费";
  const seg = await createSegment({ ctx, input: { name: "bench three-term", expression } });
  const times: number[] = [];
  let count = 0;
  for (let i = 0; i < 9; i++) {
    t0 = performance.now();
    count = (await getSegment({ ctx, id: seg.id })).count;
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  out.push({ name: `Segment count, ${contactsN.toLocaleString("en")} contacts`, value: `${times[4]!.toFixed(0)} ms`, detail: `\`${expression}\` (${count.toLocaleString("en")} members), median of 9 live counts (GET of the segment) after VACUUM ANALYZE of the tag tables, as autovacuum leaves them after a backfill; one scan of contact_tag_state testing each contact's tag bits. Target: under 100 ms at 1,000,000` });
  return out;
}

/** Event accepted -> tags visible latency at a paced rate, workers running. */
export async function benchTagLatency(rt: Runtime, url: string, token: string, rate: number, seconds: number): Promise<Row[]> {
  const workers = startWorkers(rt.deps, rt.redisUrl, ["events"]);
  const total = rate * seconds;
  const perTick = rate / 10;
  log(`tagging: ${rate} events/s for ${seconds} s, measuring accepted -> tagged`);
  const start = performance.now();
  let sent = 0;
  const inflight: Promise<unknown>[] = [];
  for (let tick = 0; sent < total; tick++) {
    const due = start + tick * 100;
    const wait = due - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    const batch = Array.from({ length: perTick }, (_, i) => {
      const n = sent + i;
      return { type: n % 2 ? "article_read" : "message_received", externalUserId: `wm_lat_${n % 2000}`, occurredAt: new Date().toISOString(), idempotencyKey: `lat-${n}`, data: n % 2 ? { articleId: "a", topic: "祛痘" } : { text: "想祛痘" } };
    });
    sent += perTick;
    inflight.push(fetch(`${url}/v1/events`, { method: "POST", headers: { authorization: `Bearer ${token}`, "content-type": "application/json" }, body: JSON.stringify({ events: batch }) }).then((r) => r.arrayBuffer()));
  }
  await Promise.all(inflight);
  const sendS = (performance.now() - start) / 1000;
  for (;;) {
    const [p] = rows<{ n: number }>(await rt.deps.db.execute(sql`select count(*)::int as n from events where idempotency_key like 'lat-%' and processed_at is null`));
    if (p!.n === 0) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  await Promise.all(workers.map((w) => w.close()));
  const [q] = rows<{ p50: number; p99: number; max: number }>(
    await rt.deps.db.execute(sql`select
      percentile_cont(0.5) within group (order by extract(epoch from processed_at - received_at) * 1000) as p50,
      percentile_cont(0.99) within group (order by extract(epoch from processed_at - received_at) * 1000) as p99,
      max(extract(epoch from processed_at - received_at) * 1000) as max
      from events where idempotency_key like 'lat-%'`),
  );
  return [
    {
      name: `Event -> tag latency at ${rate.toLocaleString("en")} events/s`,
      value: `p50 ${Number(q!.p50).toFixed(0)} ms, p99 ${Number(q!.p99).toFixed(0)} ms`,
      detail: `${total.toLocaleString("en")} events sent over ${sendS.toFixed(1)} s in batches of ${perTick} every 100 ms; stored -> processed with tags (one job and transaction per request, one worker process, concurrency ${rt.config.EVENTS_CONCURRENCY}); max ${Number(q!.max).toFixed(0)} ms. Target: p99 under 250 ms`,
    },
  ];
}
