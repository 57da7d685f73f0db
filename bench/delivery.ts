/**
 * Calendar delivery for `npm run bench` (BENCH_ONLY=delivery):
 * 1. fan-out planning of one approved post to N recipients (default 100,000): the segment compiled
 *    to SQL, skip reasons, the fatigue window over a ledger with history, the ledger upsert and the
 *    sends insert, in one transaction (planEntry, as the sweep runs it). Target: under 5 s.
 * 2. sends per second through the delivery queue to the fake WeCom over HTTP: the same N recipients
 *    as shared copy (one add_msg_template per sender and minute, up to 10,000 customers each), then
 *    M personal sends ({{name}}: one add_msg_template each), each through the compliance gate and
 *    the guarded `sending` commit, by one worker process (concurrency 4); then reading the results.
 */
import { sql } from "drizzle-orm";
import type { Runtime } from "../src/bootstrap";
import { rowsOf as rows } from "../src/db/client";
import { calendarEntries, calendars } from "../src/db/schema/index";
import { startWorkers } from "../src/jobs/workers";
import { systemCtx, type Ctx } from "../src/services/context";
import { planEntry } from "../src/services/delivery/plan-entry";
import { previewCalendar } from "../src/services/delivery/preview";
import { pollMessage } from "../src/services/delivery/results";
import { createPost, reviewPost, submitPost } from "../src/services/posts/posts";
import { createStaff } from "../src/services/staff/create";
import { createTenant } from "../src/services/tenants/create";
import { putWecomSettings } from "../src/services/wecom/settings";
import type { RunningFakeWecom } from "../src/wecom/fake/index";
import type { Row } from "./tagging";

const log = (s: string) => process.stderr.write(`[bench] ${s}\n`);
const SENDERS = 10;
const fmt = (n: number) => Math.round(n).toLocaleString("en");

export async function benchDelivery(rt: Runtime, fake: RunningFakeWecom, app: { corpId: string; agentId: number; secret: string; callbackToken: string; encodingAesKey: string }, n: number, personal: number): Promise<Row[]> {
  const db = rt.deps.db;
  const tenant = await createTenant({ deps: rt.deps, input: { slug: `bench-dlv-${Date.now()}`, name: "Bench clinic (delivery)" } });
  const ctx = systemCtx(rt.deps, tenant.id, "bench");
  const admin = await createStaff({ ctx, input: { name: "Bench admin", email: "admin@bench-dlv.test", role: "admin" } });
  const marketing = await createStaff({ ctx, input: { name: "运营", email: "mk@bench-dlv.test", role: "marketing" } });
  const reviewer = await createStaff({ ctx, input: { name: "审核", email: "rv@bench-dlv.test", role: "reviewer" } });
  const as = (s: { id: string }, role: "admin" | "marketing" | "reviewer"): Ctx => ({ ...ctx, actor: { kind: "staff", staffId: s.id, role, name: role, via: "token" } });
  await putWecomSettings({ ctx: as(admin, "admin"), input: app });
  const senders: string[] = [];
  for (let i = 0; i < SENDERS; i++) {
    senders.push((await createStaff({ ctx, input: { name: `顾问${i}`, email: `c${i}@bench-dlv.test`, role: "consultant", wecomUserId: `dlv${i}` } })).id);
    fake.control.createStaff({ userid: `dlv${i}`, name: `顾问${i}` });
  }
  const total = n + personal;
  log(`delivery: ${fmt(total)} contacts (${SENDERS} consultants), in PostgreSQL and as WeCom customers in the fake`);
  // Recipients of the big post: need:祛痘; 1% opted out, 0.5% removed the consultant; the personal
  // post goes to `personal` other contacts. A third of the big audience had a marketing send
  // yesterday, 3% of all already three (the fatigue cap skips them).
  await db.execute(sql`
    insert into contacts (tenant_id, name, external_user_id, source, owner_staff_id, marketing_opt_out_at, deleted_at)
    select ${tenant.id}::uuid, '客户' || g, 'wmbench' || lpad(g::text, 24, '0'), case when g <= ${n} then 'big' else 'personal' end,
      (array[${sql.join(senders.map((s) => sql`${s}::uuid`), sql`, `)}])[1 + g % ${SENDERS}],
      case when g <= ${n} and g % 100 = 7 then now() end, case when g <= ${n} and g % 200 = 9 then now() end
    from generate_series(1, ${total}) g`);
  await db.execute(sql`
    insert into contact_tags (tenant_id, contact_id, tag_id, source)
    select c.tenant_id, c.id, t.id, 'rule' from contacts c
    join tag_groups tg on tg.tenant_id = c.tenant_id and tg.key = 'need' join tags t on t.group_id = tg.id and t.name = '祛痘'
    where c.tenant_id = ${tenant.id}::uuid and c.source = 'big'`);
  await db.execute(sql`
    insert into send_quota (tenant_id, contact_id, day, mass, marketing)
    select c.tenant_id, c.id, d.day, 1, case when (hashtext(c.id::text || 'f') & 65535) % 100 < 9 then 3 else 1 end
    from contacts c cross join lateral (select (now() at time zone 'Asia/Shanghai')::date - 1 as day) d
    where c.tenant_id = ${tenant.id}::uuid and c.source = 'big' and (hashtext(c.id::text) & 65535) % 3 = 0`);
  await db.execute(sql`vacuum analyze contacts`);
  await db.execute(sql`vacuum analyze contact_tags`);
  await db.execute(sql`vacuum analyze send_quota`);
  const owners = rows<{ ext: string; owner: string }>(await db.execute(sql`select c.external_user_id as ext, s.wecom_user_id as owner from contacts c join staff s on s.id = c.owner_staff_id where c.tenant_id = ${tenant.id}::uuid`));
  for (const o of owners) fake.control.createContact({ externalUserId: o.ext, name: "客户", followedBy: o.owner });

  async function approved(body: string) {
    const p = await createPost({ ctx: as(marketing, "marketing"), input: { kind: "community_post", body } });
    await submitPost({ ctx: as(marketing, "marketing"), id: p.id });
    return reviewPost({ ctx: as(reviewer, "reviewer"), id: p.id, input: { decision: "approve", contentHash: p.contentHash } });
  }
  async function calendarFor(key: string, audience: string, template: string) {
    // Now (the current minute, no quiet hours): due at once.
    const at = new Intl.DateTimeFormat("sv-SE", { timeZone: "Asia/Shanghai", year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", hourCycle: "h23" }).format(rt.deps.now());
    const [date, time] = at.split(" ") as [string, string];
    const definition = { name: key, timeZone: "Asia/Shanghai", quietHours: { start: "00:00", end: "00:00" }, audience: { segment: audience }, variables: {}, entries: [{ key: "e", when: { date, time }, kind: "text", channel: "single", service: false, template, variables: {} }] };
    const [cal] = await db.insert(calendars).values({ tenantId: tenant.id, key, name: key, source: "api", kind: "dated", definition, contentHash: key, version: 1, status: "published", publishedAt: rt.deps.now() }).returning();
    const post = await approved(template);
    const [entry] = await db.insert(calendarEntries).values({ tenantId: tenant.id, calendarId: cal!.id, key: "e", when: { kind: "at", at: `${date}T${time}` }, kind: "text", channel: "single", postId: post.id, calendarVersion: 1 }).returning();
    return { calendarId: cal!.id, entryId: entry!.id, postId: post.id };
  }

  // 1. Planning.
  const big = await calendarFor("bench-big", "need:祛痘", "冬季干燥，祛痘期间请注意保湿，本周六有皮肤科医生线上答疑，欢迎参加。");
  const t0 = performance.now();
  const preview = await previewCalendar({ ctx: as(marketing, "marketing"), id: big.calendarId, input: { sample: 20 } });
  const previewMs = performance.now() - t0;
  log(`delivery: preview of ${fmt(n)} recipients in ${(previewMs / 1000).toFixed(2)} s`);
  const t1 = performance.now();
  const plan = await planEntry({ ctx, id: big.entryId });
  const planMs = performance.now() - t1;
  if (plan.outcome !== "planned") throw new Error(`planning failed: ${JSON.stringify(plan)}`);
  // The preview (rolled back) said exactly what planning then did.
  if (preview.totals.planned !== plan.planned || preview.totals.skipped !== plan.skipped) throw new Error(`the preview (${JSON.stringify(preview.totals)}) differs from the plan (${plan.planned} planned, ${plan.skipped} skipped)`);
  const reasons = plan.reasons.map((r) => `${fmt(r.n)} ${r.reason.split(":")[0]!.replace(/ on \d{4}-.*$/, "").replace(/ \(or was removed\)$/, "")}`).join(", ");
  log(`delivery: planned ${fmt(plan.planned)}, skipped ${fmt(plan.skipped)} (${reasons}) in ${(planMs / 1000).toFixed(2)} s`);
  const again = performance.now();
  const replan = await planEntry({ ctx, id: big.entryId });
  const replanMs = performance.now() - again;
  if (replan.outcome !== "planned" || replan.planned !== 0) throw new Error("planning twice added sends");

  // 2. Sends through the queue: shared copy first.
  const sendingOf = async (postId: string) =>
    rows<{ done: number; left: number }>(
      await db.execute(sql`select count(*) filter (where status = 'sending' and wecom_msgid is not null)::int as done, count(*) filter (where status in ('planned', 'queued') or (status = 'sending' and wecom_msgid is null))::int as left from sends where post_id = ${postId}::uuid`),
    )[0]!;
  const wait = async (postId: string) => {
    for (;;) {
      const s = await sendingOf(postId);
      if (s.left === 0) return s.done;
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  // The batches were armed at planning (due now); the worker starts on a full queue.
  const w0 = performance.now();
  const workers = startWorkers(rt.deps, rt.redisUrl, ["delivery"]);
  const sharedDone = await wait(big.postId);
  const sharedMs = performance.now() - w0;
  const msgs = [...fake.state.massMessages.values()].filter((m) => m.text?.content.startsWith("冬季干燥"));
  log(`delivery: shared copy: ${fmt(sharedDone)} recipients in ${msgs.length} add_msg_template calls, ${(sharedMs / 1000).toFixed(1)} s`);
  // Personal copy, planned while the worker runs: its batches are armed at commit and taken at once.
  const personalCal = await calendarFor("bench-personal", `source = "personal"`, "{{name}}您好，您的专属护肤方案已更新，回复1预约面诊。");
  const p0 = performance.now();
  await planEntry({ ctx, id: personalCal.entryId });
  const personalDone = await wait(personalCal.postId);
  const personalMs = performance.now() - p0;
  await Promise.all(workers.map((w) => w.close()));
  log(`delivery: personal copy: ${fmt(personalDone)} messages in ${(personalMs / 1000).toFixed(1)} s`);

  // Results: every sender confirms; one poll per message reads them.
  for (const m of msgs) for (const task of m.tasks) fake.control.staffConfirmsMassMessage(m.msgid, task.userid);
  const r0 = performance.now();
  let sent = 0;
  for (const m of msgs) sent += (await pollMessage(rt.deps, { tenantId: tenant.id, msgid: m.msgid })).sent;
  const resultsMs = performance.now() - r0;
  log(`delivery: results of ${msgs.length} messages (${fmt(sent)} sent) read in ${(resultsMs / 1000).toFixed(1)} s`);

  return [
    {
      name: `Calendar fan-out planning, ${fmt(n)} recipients`,
      value: `${(planMs / 1000).toFixed(2)} s`,
      detail: `one approved post to the segment need:祛痘 (${fmt(n)} contacts over ${SENDERS} consultants): one transaction under the tenant's planning lock; candidates by one INSERT … SELECT with sender, local time and skip reasons (1% opted out, 0.5% removed the consultant), the fatigue window over a ledger with yesterday's sends for a third of them, the ledger upsert (WeCom's cap) and the sends INSERT … SELECT: ${fmt(plan.planned)} planned, ${fmt(plan.skipped)} skipped (${reasons}). Planning again (a no-op) ${(replanMs / 1000).toFixed(2)} s; the preview (same planner, rolled back, with a sample) ${(previewMs / 1000).toFixed(2)} s. Target: under 5 s`,
    },
    {
      name: "Calendar sends through the queue to WeCom (fake, HTTP)",
      value: `${fmt(sharedDone / (sharedMs / 1000))} recipients/s shared copy; ${fmt(personalDone / (personalMs / 1000))} messages/s personal copy`,
      detail: `one delivery worker (concurrency 4), the fake WeCom on loopback. Shared copy: the ${fmt(sharedDone)} planned sends above in ${msgs.length} add_msg_template calls (one per sender and minute, up to 10,000 customers each) in ${(sharedMs / 1000).toFixed(1)} s: claim with skip-locked, consent re-check, the compliance gate, the guarded move to sending committed before each call, msgid recorded. Personal copy ({{name}}): ${fmt(personalDone)} sends, one add_msg_template each (8 in flight per batch), gate and commit per message, in ${(personalMs / 1000).toFixed(1)} s; WeCom itself allows 10,000 add_msg_template calls a minute per corp (~166/s), which the client's limiter keeps to. Results (staff confirmation, then get_groupmsg_task and get_groupmsg_send_result pages of 1,000) for the ${msgs.length} shared messages read in ${(resultsMs / 1000).toFixed(1)} s (${fmt(sent)} sent)`,
    },
  ];
}
