/**
 * Funnel metrics for `npm run bench` (BENCH_ONLY=metrics): one tenant with N contacts over two years
 * and ten events each (most of them reads and messages; appointments, visits, consultations,
 * purchases, refunds and survey answers with their metric_facts), leads with their assignments and
 * SLA breaches, post-visit follow-ups and calendar sends, all generated set-based; then every
 * dashboard query timed through the metrics services (median of several runs after a warm-up).
 * Target: every dashboard query under 1 s at 1,000,000 contacts and 10,000,000 events.
 */
import { sql } from "drizzle-orm";
import type { Runtime } from "../src/bootstrap";
import { rowsOf as rows } from "../src/db/client";
import { systemCtx, type Ctx } from "../src/services/context";
import { attribution as attribute } from "../src/services/attribution/attribute";
import { calendarReport } from "../src/services/calendars/report";
import { computeMetric } from "../src/services/metrics/compute-metric";
import { metricsFunnel } from "../src/services/metrics/funnel";
import { metricsScorecards } from "../src/services/metrics/scorecards";
import { metricsTrends } from "../src/services/metrics/trends";
import { createSegment } from "../src/services/segments/segments";
import { createStaff } from "../src/services/staff/create";
import { createTenant } from "../src/services/tenants/create";
import type { Row } from "./tagging";

const log = (s: string) => process.stderr.write(`[bench] ${s}\n`);

const CONSULTANTS = 20;
const CLINICS = 3;
const CALENDARS = 3;
const RUNS = 7;
const fmt = (n: number) => n.toLocaleString("en");

/** Median milliseconds of `RUNS` calls after one warm-up call. */
async function median(fn: () => Promise<unknown>): Promise<number> {
  await fn();
  const times: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const t0 = performance.now();
    await fn();
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)]!;
}

/** Local day `n` days from today in Asia/Shanghai (the tenant's zone), "YYYY-MM-DD". */
const localDay = (n: number) => new Date(Date.now() + 8 * 3_600_000 + n * 86_400_000).toISOString().slice(0, 10);

async function generate(rt: Runtime, ctx: Ctx, n: number): Promise<{ staffIds: string[]; clinicIds: string[] }> {
  const db = rt.deps.db;
  const T = ctx.tenantId;
  const clinicIds = rows<{ id: string }>(await db.execute(sql`insert into clinics (tenant_id, name) select ${T}::uuid, '门店' || g from generate_series(1, ${CLINICS}) g returning id::text as id`)).map((r) => r.id);
  const staffIds: string[] = [];
  for (let i = 0; i < CONSULTANTS; i++) staffIds.push((await createStaff({ ctx, input: { name: `顾问${String(i).padStart(2, "0")}`, email: `c${i}@bench-metrics.test`, role: "consultant", wecomUserId: `c${i}`, clinicId: clinicIds[i % CLINICS]! } })).id);
  const staffArr = sql.raw(`array[${staffIds.map((s) => `'${s}'`).join(",")}]::uuid[]`);
  const clinicArr = sql.raw(`array[${clinicIds.map((s) => `'${s}'`).join(",")}]::uuid[]`);
  await db.execute(sql`insert into wecom_channels (tenant_id, kind, name, state, config_id, staff_user_ids) select ${T}::uuid, 'channel', '渠道' || g, 'qr_' || g, 'cfg' || g, array['c0'] from generate_series(0, 6) g`);

  // Contacts over two years; ids derived from the row number, so events and referrers need no lookup.
  // 40% came through a channel code, 10% were referred by an earlier contact.
  log(`metrics: ${fmt(n)} contacts`);
  const cid = (g: SqlLike) => sql`md5(${T}::text || ':' || ${g})::uuid`;
  await db.execute(sql`
    insert into contacts (id, tenant_id, name, source, source_state, gender, owner_staff_id, clinic_id, referrer_contact_id, created_at)
    select ${cid(sql`g`)}, ${T}::uuid, '客户' || g,
      case when g % 10 < 4 then 'wecom' when g % 10 < 7 then 'import' when g % 10 < 9 then 'livestream' else 'referral' end,
      case when g % 10 < 4 then 'qr_' || (g % 7) end,
      case when g % 3 = 0 then 'male' else 'female' end,
      (${staffArr})[1 + g % ${CONSULTANTS}], (${clinicArr})[1 + (g % ${CONSULTANTS}) % ${CLINICS}],
      case when g % 10 = 9 and g > 1000 then ${cid(sql`(g - 997)`)} end,
      now() - make_interval(secs => (hashtext(g::text || 'c') & 2147483647) % (730 * 86400))
    from generate_series(1, ${n}) g
    order by 10`);

  // Ten events per contact, spread over its life (so recent weeks are busier than old ones):
  // 60% article reads, 25% messages, 4.5% livestreams, 3% appointments, 2.5% visits, 2% consultations,
  // 2% purchases, 0.2% refunds, 0.8% survey answers.
  log(`metrics: ${fmt(n * 10)} events`);
  const chunk = 100_000;
  for (let lo = 1; lo <= n; lo += chunk) {
    const hi = Math.min(n, lo + chunk - 1);
    await db.execute(sql`
      insert into events (tenant_id, contact_id, type, occurred_at, received_at, source, idempotency_key, payload, processed_at)
      select ${T}::uuid, ${cid(sql`g`)}, x.type, x.at, x.at, 'bench', g || '-' || k, x.payload, x.at
      from generate_series(${lo}::int, ${hi}::int) g cross join generate_series(0, 9) k
      cross join lateral (select hashtext(g::text || '-' || k) & 2147483647 as r, (hashtext(g::text || 'c') & 2147483647) % (730 * 86400) as life) h
      cross join lateral (select now() - make_interval(secs => floor(h.life::float8 * ((h.r >> 10) % 1000) / 1000.0)) as at,
        case when h.r % 1000 < 600 then 'article_read' when h.r % 1000 < 850 then 'message_received' when h.r % 1000 < 880 then 'appointment_booked'
          when h.r % 1000 < 905 then 'visit' when h.r % 1000 < 925 then 'consultation_outcome' when h.r % 1000 < 945 then 'purchase'
          when h.r % 1000 < 947 then 'refund' when h.r % 1000 < 955 then 'survey_answered' else 'livestream_attended' end as type) t
      cross join lateral (select t.at, t.type, case t.type
          when 'article_read' then jsonb_build_object('articleId', 'a' || (h.r % 100), 'topic', '祛痘')
          when 'message_received' then jsonb_build_object('text', '请问多少钱')
          when 'appointment_booked' then jsonb_build_object('at', t.at + interval '3 days', 'item', '热玛吉')
          when 'visit' then '{}'::jsonb
          when 'consultation_outcome' then case when h.r % 100 < 45 then jsonb_build_object('outcome', 'converted', 'amount', 1000 + h.r % 20000, 'items', jsonb_build_array('热玛吉'))
            else jsonb_build_object('outcome', 'lost', 'lostReason', '价格敏感') end
          when 'purchase' then jsonb_build_object('amount', 500 + h.r % 29500, 'items', jsonb_build_array('热玛吉'))
          when 'refund' then jsonb_build_object('amount', 100 + h.r % 2000)
          when 'survey_answered' then jsonb_build_object('score', (array[10,10,10,9,9,9,8,8,7,6,5,3,0])[1 + h.r % 13])
          else jsonb_build_object('liveId', 'l1', 'minutes', h.r % 90) end as payload) x`);
  }
  // The facts the events worker writes when it applies these (recordFacts), with the same frozen dimensions.
  log("metrics: metric_facts");
  await db.execute(sql`
    insert into metric_facts (event_id, tenant_id, contact_id, kind, occurred_at, staff_id, clinic_id, channel, outcome, reason, amount, score, items)
    select e.id, e.tenant_id, e.contact_id,
      case e.type when 'appointment_booked' then 'appointment' when 'consultation_outcome' then 'consultation' when 'survey_answered' then 'survey' else e.type end,
      e.occurred_at, c.owner_staff_id, c.clinic_id, coalesce(c.source_state, c.source), e.payload ->> 'outcome', e.payload ->> 'lostReason',
      (e.payload ->> 'amount')::numeric, (e.payload ->> 'score')::smallint,
      case when e.payload ? 'items' then array['热玛吉'] end
    from events e join contacts c on c.id = e.contact_id
    where e.tenant_id = ${T}::uuid and e.type in ('appointment_booked', 'visit', 'consultation_outcome', 'purchase', 'refund', 'survey_answered')
    order by e.occurred_at`);

  // Leads on 20% of the contacts, assigned within a day of arriving, due 30 minutes later; 12% never
  // contacted, the rest within 35 minutes (a sixth of them late). Those of the last 14 days are still open.
  log("metrics: leads, assignments, SLA breaches");
  await db.execute(sql`
    insert into leads (tenant_id, contact_id, clinic_id, status, source, owner_staff_id, active_owner_staff_id, assigned_at, first_contact_due_at, first_contacted_at, closed_at, closed_reason, created_at, grade)
    select c.tenant_id, c.id, c.clinic_id, case when a.open then 'open' when a.r % 2 = 0 then 'converted' else 'lost' end, 'rule', c.owner_staff_id,
      case when a.open then c.owner_staff_id end, a.at, a.at + interval '30 minutes',
      case when a.r % 100 < 12 then null else a.at + make_interval(secs => (a.r >> 8) % 2100) end,
      case when not a.open then a.at + interval '10 days' end, case when not a.open then 'bench' end, a.at, (array['A','B','C','D'])[1 + a.r % 4]
    from contacts c
    cross join lateral (select hashtext(c.id::text || 'lead') & 2147483647 as r, least(now() - interval '1 hour', c.created_at + make_interval(secs => (hashtext(c.id::text) & 65535))) as at) a0
    cross join lateral (select a0.r, a0.at, a0.at > now() - interval '14 days' as open) a
    where c.tenant_id = ${T}::uuid and (hashtext(c.id::text || 'lead') & 2147483647) % 5 = 0
    order by a.at`);
  await db.execute(sql`insert into lead_assignments (tenant_id, lead_id, contact_id, to_staff_id, kind, strategy, at) select tenant_id, id, contact_id, owner_staff_id, 'assign', 'round_robin', assigned_at from leads where tenant_id = ${T}::uuid order by assigned_at`);
  await db.execute(sql`
    insert into lead_sla_breaches (tenant_id, lead_id, staff_id, due_at, breached_at, action)
    select tenant_id, id, owner_staff_id, first_contact_due_at, first_contact_due_at + interval '5 seconds', 'kept' from leads
    where tenant_id = ${T}::uuid and first_contact_due_at < now() and (first_contacted_at is null or first_contacted_at > first_contact_due_at)
    order by first_contact_due_at`);

  log("metrics: follow-ups, one per visit");
  await db.execute(sql`
    insert into follow_ups (tenant_id, contact_id, staff_id, clinic_id, visit_event_id, due_at, status, completed_at, completed_by_staff_id)
    select f.tenant_id, f.contact_id, f.staff_id, f.clinic_id, f.event_id, f.occurred_at + interval '3 days', s.status,
      case when s.status = 'done' then f.occurred_at + interval '3 days 2 hours' end, case when s.status = 'done' then f.staff_id end
    from metric_facts f
    cross join lateral (select case when (hashtext(f.event_id::text) & 1023) % 100 < 70 then 'done' when (hashtext(f.event_id::text) & 1023) % 100 < 80 then 'skipped'
      when (hashtext(f.event_id::text) & 1023) % 100 < 83 then 'cancelled' else 'open' end as status) s
    where f.tenant_id = ${T}::uuid and f.kind = 'visit'
    order by f.occurred_at`);

  // Three calendars, each sending once to a third of the contacts over the last 90 days (95% sent).
  log("metrics: calendar sends");
  const cal = rows<{ calendar_id: string; entry_id: string; post_id: string }>(
    await db.execute(sql`
      with c as (insert into calendars (tenant_id, key, name, source, kind, definition, content_hash, version, status, published_at)
        select ${T}::uuid, 'cal' || g, '日历' || g, 'api', 'dated', '{}'::jsonb, md5(g::text), 1, 'published', now() - interval '100 days' from generate_series(1, ${CALENDARS}) g returning id, key),
      p as (insert into posts (tenant_id, kind, body, content_hash, status) select ${T}::uuid, 'mass_message', '内容' || g, md5('p' || g), 'approved' from generate_series(1, ${CALENDARS}) g returning id, body),
      cp as (select c.id as calendar_id, p.id as post_id from (select id, row_number() over (order by key) n from c) c join (select id, row_number() over (order by body) n from p) p using (n)),
      e as (insert into calendar_entries (tenant_id, calendar_id, key, "when", kind, channel, post_id, calendar_version)
        select ${T}::uuid, calendar_id, 'e1', '{"weekday": 2, "time": "10:00"}'::jsonb, 'text', 'single', post_id, 1 from cp returning id, calendar_id, post_id)
      select calendar_id::text, id::text as entry_id, post_id::text from e`),
  );
  const calValues = sql.join(cal.map((c, i) => sql`(${i}, ${c.post_id}::uuid, ${c.calendar_id}::uuid, ${c.entry_id}::uuid)`), sql`, `);
  await db.execute(sql`
    insert into sends (tenant_id, post_id, calendar_id, entry_id, contact_id, occurrence, sender_staff_id, scheduled_at, status, sent_at, result_at)
    select c.tenant_id, k.post_id, k.calendar_id, k.entry_id, c.id, '', c.owner_staff_id, s.at,
      case when s.r % 100 < 95 then 'sent' else 'failed' end, s.at + interval '20 minutes', s.at + interval '1 hour'
    from contacts c cross join (values ${calValues}) as k(i, post_id, calendar_id, entry_id)
    cross join lateral (select hashtext(c.id::text || 's' || k.i) & 2147483647 as r) h
    cross join lateral (select h.r, now() - make_interval(secs => h.r % (90 * 86400)) as at) s
    where c.tenant_id = ${T}::uuid and h.r % 3 = 0
    order by s.at`);
  // A tenth of the sent calendar sends clicked once, 1 minute to 2 hours after they went out: the
  // tracked link (as /l/{code} keeps it) and the article_read the click stores (source link, naming
  // its send), the touches attribution credits to calendar entries.
  await db.execute(sql`
    with k as (
      select s.id as send_id, s.post_id, s.contact_id, s.sent_at + make_interval(secs => 60 + h.r % 7140) as at
      from sends s cross join lateral (select hashtext(s.id::text || 'click') & 2147483647 as r) h
      where s.tenant_id = ${T}::uuid and s.status = 'sent' and h.r % 10 = 0 and s.sent_at < now() - interval '2 hours'
    ),
    l as (
      insert into tracked_links (code, tenant_id, send_id, post_id, contact_id, url, article_id, topic, clicks, first_click_at, last_click_at)
      select 'b' || md5(k.send_id::text), ${T}::uuid, k.send_id, k.post_id, k.contact_id, 'https://example.com/acne', 'a-acne', '祛痘', 1, k.at, k.at from k
    )
    insert into events (tenant_id, contact_id, type, occurred_at, received_at, source, idempotency_key, payload, processed_at)
    select ${T}::uuid, k.contact_id, 'article_read', k.at, k.at, 'link', 'click-' || k.send_id,
      jsonb_build_object('articleId', 'a-acne', 'topic', '祛痘', 'via', 'link', 'click', 1, 'postId', k.post_id, 'sendId', k.send_id), k.at
    from k order by k.at`);
  return { staffIds, clinicIds };
}

type SqlLike = ReturnType<typeof sql>;

export async function benchMetrics(rt: Runtime, contactsN: number): Promise<Row[]> {
  const db = rt.deps.db;
  const tenant = await createTenant({ deps: rt.deps, input: { slug: `bench-metrics-${Date.now()}`, name: "Bench clinic (metrics)" } });
  const ctx = systemCtx(rt.deps, tenant.id, "bench");
  const t0 = performance.now();
  const { staffIds, clinicIds } = await generate(rt, ctx, contactsN);
  const segA = await createSegment({ ctx, input: { name: "女性客户", expression: "gender = female" } });
  await createSegment({ ctx, input: { name: "渠道3", expression: "state = qr_3" } });
  log(`metrics: data generated in ${((performance.now() - t0) / 1000).toFixed(0)} s; vacuum analyze`);
  for (const table of ["contacts", "events", "metric_facts", "leads", "lead_assignments", "lead_sla_breaches", "follow_ups", "sends", "calendar_entries", "tracked_links"]) await db.execute(sql.raw(`vacuum analyze ${table}`));
  const [size] = rows<{ events: number; facts: number; facts30: number; leads: number; sends: number; follow_ups: number; breaches: number }>(
    await db.execute(sql`select (select count(*) from events)::int as events, (select count(*) from metric_facts)::int as facts,
      (select count(*) from metric_facts where occurred_at >= now() - interval '30 days')::int as facts30,
      (select count(*) from leads)::int as leads, (select count(*) from sends)::int as sends, (select count(*) from follow_ups)::int as follow_ups,
      (select count(*) from lead_sla_breaches)::int as breaches`),
  );
  log(`metrics: ${JSON.stringify(size)}`);
  const month = { from: localDay(-29), to: localDay(1) };
  const quarter = { from: localDay(-89), to: localDay(1) };

  const calendarId = rows<{ id: string }>(await db.execute(sql`select id::text as id from calendars where tenant_id = ${tenant.id}::uuid order by key limit 1`))[0]!.id;
  const funnel: [string, Record<string, string>][] = [
    ["ungrouped", {}],
    ["by clinic", { by: "clinic" }],
    ["by consultant", { by: "consultant" }],
    ["by channel", { by: "channel" }],
    ["by segment (2)", { by: "segment" }],
    ["by calendar (3)", { by: "calendar" }],
    ["one clinic", { clinicId: clinicIds[0]! }],
    ["one consultant", { staffId: staffIds[0]! }],
    ["one segment", { segmentId: segA.id }],
    ["one calendar", { calendarId }],
  ];
  const funnelMs: [string, number][] = [];
  for (const [name, q] of funnel) {
    const ms = await median(() => metricsFunnel({ ctx, input: { ...month, ...q } }));
    funnelMs.push([name, ms]);
    log(`metrics: funnel ${name}: ${ms.toFixed(0)} ms`);
  }
  const trends: [string, Record<string, string>][] = [
    ["by day", { period: "day" }],
    ["by day and clinic", { period: "day", by: "clinic" }],
    ["by week and segment", { period: "week", by: "segment" }],
  ];
  const trendMs: [string, number][] = [];
  for (const [name, q] of trends) {
    const ms = await median(() => metricsTrends({ ctx, input: { ...quarter, ...q } }));
    trendMs.push([name, ms]);
    log(`metrics: trends 90 days ${name}: ${ms.toFixed(0)} ms`);
  }
  const scoreMs = await median(() => metricsScorecards({ ctx, input: month }));
  log(`metrics: scorecards: ${scoreMs.toFixed(0)} ms`);
  const dealMs = await median(() => computeMetric({ ctx, input: { metric: "deal_rate", ...quarter, period: "day", scope: { clinicId: clinicIds[0]! } } }));
  log(`metrics: computeMetric deal_rate daily, one clinic, 90 days: ${dealMs.toFixed(0)} ms`);
  const attribution: [string, Record<string, string>][] = [
    ["by entry, last touch", { by: "entry", model: "last_touch" }],
    ["by calendar, linear", { by: "calendar", model: "linear" }],
    ["by content, linear", { by: "content", model: "linear" }],
    ["by consultant, last touch", { by: "consultant", model: "last_touch" }],
  ];
  const attMs: [string, number][] = [];
  let attributed: Awaited<ReturnType<typeof attribute>> | null = null;
  for (const [name, q] of attribution) {
    const ms = await median(async () => (attributed = await attribute({ ctx, input: { from: month.from, to: month.to, ...q } })));
    attMs.push([name, ms]);
    log(`metrics: attribution ${name}: ${ms.toFixed(0)} ms`);
  }
  const reportMs = await median(() => calendarReport({ ctx, id: calendarId }));
  log(`metrics: calendar report (one calendar): ${reportMs.toFixed(0)} ms`);
  const [clicks] = rows<{ links: number }>(await db.execute(sql`select count(*)::int as links from tracked_links where tenant_id = ${tenant.id}::uuid`));

  const scale = `${fmt(contactsN)} contacts, ${fmt(size!.events)} events (${fmt(size!.facts)} metric_facts, ${fmt(size!.facts30)} in the last 30 days), ${fmt(size!.leads)} leads (${fmt(size!.breaches)} SLA breaches), ${fmt(size!.follow_ups)} follow-ups, ${fmt(size!.sends)} calendar sends`;
  const list = (xs: [string, number][]) => xs.map(([n, ms]) => `${n} ${ms.toFixed(0)} ms`).join(", ");
  const worst = (xs: [string, number][]) => xs.reduce((a, b) => (b[1] > a[1] ? b : a));
  const fw = worst(funnelMs);
  const tw = worst(trendMs);
  const how = `median of ${RUNS} calls of the service after a warm-up, VACUUM ANALYZE after loading, one statement per source table, two at a time (METRICS_PARALLEL_STATEMENTS)`;
  return [
    {
      name: "Metrics: funnel, 30 days",
      value: `${fmt(contactsN)} contacts: ${funnelMs[0]![1].toFixed(0)} ms ungrouped; slowest ${fw[1].toFixed(0)} ms (${fw[0]})`,
      detail: `every funnel metric (上门率, 成交率, 回访率, 二开率, 转介绍率, NPS, revenue, lead response median/p90, SLA breach rate) for the last 30 local days: ${list(funnelMs)}; ${how}; ${scale}. Target: every dashboard query under 1 s`,
    },
    {
      name: "Metrics: trends, 90 days",
      value: `${fmt(contactsN)} contacts: ${trendMs[0]![1].toFixed(0)} ms by day; slowest ${tw[1].toFixed(0)} ms (${tw[0]})`,
      detail: `the funnel per bucket over the last 90 local days, every bucket listed: ${list(trendMs)}; one metric as a daily series (computeMetric deal_rate, one clinic, 90 days) ${dealMs.toFixed(0)} ms; ${how}; same data. Target: under 1 s`,
    },
    {
      name: "Metrics: attribution, 30 days",
      value: `${fmt(contactsN)} contacts: slowest ${worst(attMs)[1].toFixed(0)} ms (${worst(attMs)[0]}); calendar report ${reportMs.toFixed(0)} ms`,
      detail: `conversions of the last 30 local days (${fmt(attributed!.conversions.conversions)}, ${fmt(attributed!.attributed.conversions)} with a touch) credited to the touches of their contact in the 30 days before each (link clicks on calendar sends, article reads, livestreams): ${list(attMs)}; the calendar report of one calendar (per entry: sends, clicks, both models' credit) ${reportMs.toFixed(0)} ms; conversions split by contact into two parts run side by side (METRICS_PARALLEL_STATEMENTS), each conversion an index probe of its contact's events; median of ${RUNS} calls after a warm-up; same data, with ${fmt(clicks!.links)} clicked tracked links (a tenth of the sent calendar sends). Target: under 1 s`,
    },
    {
      name: "Metrics: consultant scorecards, 30 days",
      value: `${fmt(contactsN)} contacts: ${scoreMs.toFixed(0)} ms`,
      detail: `${CONSULTANTS} consultants: leads received, contacted within SLA, median response, consultations, conversions, revenue, follow-ups, SLA breaches; ${how}; same data. Target: under 1 s`,
    },
  ];
}
