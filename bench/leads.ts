/**
 * Lead assignment for `npm run bench`: a clinic with 20 consultants (capacities, skills) and the
 * strategy chain skill -> round_robin; N new leads signalled by concurrent callers through
 * POST /v1/leads, each graded and routed while holding the tenant's lead lock. Throughput,
 * request -> answer (committed) latency, and a check that every lead has exactly one owner.
 */
import { sql } from "drizzle-orm";
import type { Runtime } from "../src/bootstrap";
import { rowsOf as rows } from "../src/db/client";
import { systemCtx } from "../src/services/context";
import { putLeadSettings } from "../src/services/leads/leads";
import { createStaff } from "../src/services/staff/create";
import { createTenant } from "../src/services/tenants/create";
import { createToken } from "../src/services/tokens/tokens";
import type { Row } from "./tagging";

const log = (s: string) => process.stderr.write(`[bench] ${s}\n`);

const CONSULTANTS = 20;
const NEEDS = ["祛痘", "抗衰", "美白", "脱毛", "正畸", "种植牙", "减重", "产后修复"] as const;
const SOURCES = ["wecom_qr", "livestream", "referral", "api", "rule", "import"] as const;
/** Capacity of consultant i as a share of an even split of the leads: 0.8x to 1.6x, 1.2x on average (20% room overall). */
const CAPACITY_SHARE = [0.8, 1.0, 1.2, 1.4, 1.6];

const pct = (sorted: number[], q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
const fmtMs = (ms: number) => (ms < 10 ? ms.toFixed(1) : ms.toFixed(0));

/** `url`: the API (bench/run.ts serves it on loopback). */
export async function benchLeads(rt: Runtime, url: string, n: number, concurrency: number): Promise<Row[]> {
  const db = rt.deps.db;
  const tenant = await createTenant({ deps: rt.deps, input: { slug: `bench-leads-${Date.now()}`, name: "Bench clinic (leads)" } });
  const ctx = systemCtx(rt.deps, tenant.id, "bench");
  log(`leads: a tenant with ${CONSULTANTS} consultants, ${n} contacts with tags`);
  // The clinic's integration signals leads with an admin's API token.
  const admin = await createStaff({ ctx, input: { name: "Bench admin", email: "admin@bench-leads.test", role: "admin" } });
  const token = (await createToken({ ctx, input: { staffId: admin.id, name: "bench" } })).token;
  const capacities: number[] = [];
  for (let i = 0; i < CONSULTANTS; i++) {
    // Sixteen specialists (one or two needs each, every need covered by three or more), four generalists.
    const skills = i < 16 ? [NEEDS[i % 8]!, ...(i % 2 === 0 ? [NEEDS[(i + 3) % 8]!] : [])] : [];
    const capacity = Math.max(1, Math.round((n / CONSULTANTS) * CAPACITY_SHARE[i % CAPACITY_SHARE.length]!));
    capacities.push(capacity);
    await createStaff({ ctx, input: { name: `顾问${i}`, email: `c${i}@bench-leads.test`, role: "consultant", wecomUserId: `c${i}`, skills, capacity } });
  }
  await putLeadSettings({ ctx, input: { assignment: { chain: [{ strategy: "skill" }, { strategy: "round_robin" }] } } });

  // Unowned contacts (an owner would take the lead directly, without routing). Tags as the rules
  // leave them: a need on 60% (a second one on 15%), engagement on 70%, spending on 40%.
  await db.execute(sql`insert into contacts (tenant_id, name, source) select ${tenant.id}::uuid, '客户' || g, (array['wecom','import','livestream'])[1 + g % 3] from generate_series(1, ${n}) g`);
  const tag = (group: string, names: readonly string[], share: number, salt: string) => sql`
    insert into contact_tags (tenant_id, contact_id, tag_id, source)
    select c.tenant_id, c.id, t.id, 'rule'
    from contacts c
    join tag_groups g on g.tenant_id = c.tenant_id and g.key = ${group}
    join tags t on t.group_id = g.id and t.name = (${sql.raw(`array[${names.map((x) => `'${x}'`).join(",")}]`)})[1 + ((hashtext(c.id::text || ${salt}) & 65535) % ${names.length})]
    where c.tenant_id = ${tenant.id}::uuid and (hashtext(c.id::text || ${salt} || 'share') & 1023) < ${Math.round(share * 1024)}
    on conflict do nothing`;
  await db.execute(tag("need", NEEDS, 0.6, "need1"));
  await db.execute(tag("need", NEEDS, 0.15, "need2"));
  await db.execute(tag("engagement", ["高", "中", "低"], 0.7, "eng"));
  await db.execute(tag("spending", ["高消费", "中消费", "低消费"], 0.4, "spend"));
  await db.execute(sql`vacuum analyze contacts`);
  await db.execute(sql`vacuum analyze contact_tags`);
  const ids = rows<{ id: string }>(await db.execute(sql`select id from contacts where tenant_id = ${tenant.id}::uuid order by name`)).map((r) => r.id);

  log(`leads: signalling ${n} new leads through POST /v1/leads, ${concurrency} concurrent requests`);
  const latencies: number[] = [];
  let next = 0;
  let done = 0;
  let lastAnswer = 0;
  const started = performance.now();
  let lastDone = 0;
  const progress = setInterval(() => {
    log(`leads: ${done}/${n} assigned, ${Math.round(done / ((performance.now() - started) / 1000))}/s (last 5 s: ${Math.round((done - lastDone) / 5)}/s)`);
    lastDone = done;
  }, 5000);
  try {
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (next < ids.length) {
          const i = next++;
          // A quarter of the signals name the need they are about (a form, a keyword); the rest rely on the contact's tags.
          const input = { contactId: ids[i]!, source: SOURCES[i % SOURCES.length]!, score: 5 + (i % 4) * 5, ...(i % 4 === 0 ? { need: NEEDS[(i * 7) % 8]! } : {}) };
          const t0 = performance.now();
          const res = await fetch(`${url}/v1/leads`, { method: "POST", headers: { authorization: `Bearer ${token}`, "content-type": "application/json" }, body: JSON.stringify(input) });
          const text = await res.text();
          // 201: a new lead, committed with its owner (200 would mean an open lead was raised instead).
          if (res.status !== 201) throw new Error(`POST /v1/leads answered ${res.status}: ${text}`);
          const t1 = performance.now();
          latencies.push(t1 - t0);
          lastAnswer = Math.max(lastAnswer, t1);
          done++;
        }
      }),
    );
  } finally {
    clearInterval(progress);
  }
  const secs = (lastAnswer - started) / 1000;
  latencies.sort((a, b) => a - b);

  // Sanity (not timed): one open lead per contact, each with exactly one assignment, owned by one
  // consultant who also owns the contact (or in the pool), nobody above capacity.
  const [s] = rows<{ leads: number; contacts: number; one_move: number; owned: number; pooled: number; agree: number }>(
    await db.execute(sql`
      select count(*)::int as leads, count(distinct l.contact_id)::int as contacts,
        count(*) filter (where (select count(*) from lead_assignments a where a.lead_id = l.id) = 1)::int as one_move,
        count(l.active_owner_staff_id)::int as owned,
        count(*) filter (where l.active_owner_staff_id is null)::int as pooled,
        count(*) filter (where l.active_owner_staff_id is not distinct from c.owner_staff_id)::int as agree
      from leads l join contacts c on c.id = l.contact_id
      where l.tenant_id = ${tenant.id}::uuid and l.status = 'open'`),
  );
  const loads = rows<{ open: number; capacity: number }>(
    await db.execute(sql`select s.capacity, (select count(*)::int from leads l where l.tenant_id = s.tenant_id and l.active_owner_staff_id = s.id) as open from staff s where s.tenant_id = ${tenant.id}::uuid and s.role = 'consultant' order by s.created_at`),
  );
  const byStrategy = rows<{ strategy: string | null; n: number }>(
    await db.execute(sql`select coalesce(strategy, kind) as strategy, count(*)::int as n from lead_assignments where tenant_id = ${tenant.id}::uuid group by 1 order by 2 desc`),
  );
  const over = loads.filter((l) => l.open > l.capacity).length;
  const ok = s!.leads === n && s!.contacts === n && s!.one_move === n && s!.agree === n && s!.owned + s!.pooled === n && over === 0;
  const strategies = byStrategy.map((b) => `${b.n.toLocaleString("en")} ${b.strategy}`).join(", ");
  const check = ok
    ? `every lead has exactly one owner (a consultant, or the pool): ${n.toLocaleString("en")} open leads on ${n.toLocaleString("en")} contacts, one assignment each (${strategies}), ${s!.owned.toLocaleString("en")} owned by a consultant who also owns the contact, ${s!.pooled.toLocaleString("en")} in the pool, nobody above capacity`
    : `CHECK FAILED: ${JSON.stringify({ ...s, overCapacity: over, byStrategy })}`;
  log(`leads: ${check}`);
  log(`leads: loads ${loads.map((l) => `${l.open}/${l.capacity}`).join(" ")}`);
  if (!ok) throw new Error(`lead assignment sanity check failed: ${check}`);

  const rate = n / secs;
  return [
    {
      name: "Lead assignment (grade + route, one tenant)",
      value: `${Math.round(rate).toLocaleString("en")} assignments/s; p50 ${fmtMs(pct(latencies, 0.5))} ms, p99 ${fmtMs(pct(latencies, 0.99))} ms`,
      detail: `${n.toLocaleString("en")} new leads, one POST /v1/leads each (admin API token), ${concurrency} concurrent, in ${secs.toFixed(1)} s; latency = request -> 201 answer, sent after the lead's transaction committed (graded, routed, contact owner set, assignment and audit rows); max ${fmtMs(latencies[latencies.length - 1]!)} ms. One tenant: ${CONSULTANTS} consultants (capacities ${Math.min(...capacities)}-${Math.max(...capacities)}, 16 with one or two need skills, always on shift), chain skill -> round_robin, unowned contacts with need / engagement / spending tags, a quarter of the signals naming a need; no workers running. Assignments in a tenant are serialised by its advisory lock, so concurrent requests queue: p50 ~ ${concurrency} / throughput. Check: ${check}`,
    },
  ];
}
