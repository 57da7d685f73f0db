import { and, eq, sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { rowsOf } from "../../src/db/client";
import { contacts, contactTags, events, tagGroups, tags } from "../../src/db/schema/index";
import { seededRandom } from "../../src/domain/random";
import { DEFAULT_TAG_GROUPS } from "../../src/domain/tagging/default-groups";
import { evaluate, type EventFact } from "../../src/domain/tagging/evaluate";
import type { Rule } from "../../src/domain/tagging/rules";
import { systemCtx } from "../../src/services/context";
import { activeRules } from "../../src/services/tagging/rule-set";
import { runSetBased } from "../../src/services/tagging/set-based";
import { createTestTenant } from "../helpers/factories";
import { createTestRuntime, type TestRuntime } from "../helpers/runtime";

/**
 * The property that makes tags trustworthy at any scale: on random contacts and event histories,
 * the set-based SQL evaluator and the incremental evaluator reach the same tags.
 */
let t: TestRuntime;
const EXCLUSIVE = new Set(DEFAULT_TAG_GROUPS.filter((g) => g.exclusive).map((g) => g.key));
const NOW = new Date("2026-11-23T04:00:00.000Z");
const DAY = 86_400_000;

beforeAll(async () => {
  t = await createTestRuntime();
});
afterAll(async () => t?.close());


// The last four hold LIKE's special characters: "5折_%" and "c:\\d" are keywords below, found only
// where they really are (a pattern left unescaped would find "5折_%" in "5折券" too).
const TEXTS = ["你好", "想祛痘", "热玛吉多少钱", "想做隐形矫正", "冰点脱毛疼吗", "产后修复", "随便看看", "ＨＥＬＬＯ 美白", "减肥有什么项目", "5折_%活动", "5折券", "路径 c:\\d", "c:d"];
const TOPICS = ["祛痘指南", "抗衰科普", "种植牙须知", "医生访谈", "门店活动"];
const ITEMS = ["水光针", "热玛吉", "祛痘疗程", "牙齿矫正", "光子嫩肤", "盆底修复"];
const TITLES = ["冬季补水", "热玛吉问答", "ＨＥＬＬＯ 新客"];

/**
 * Keyword rules on fewer text sources than the default ones (triggered by every event type whose
 * texts they read, as a rule must be for the two evaluators to agree) (each rule's sources are joined into
 * one text per event in SQL), one with its own window; they add need tags on top of the defaults.
 */
const EXTRA_RULES: Rule[] = [
  { id: "test-article-only", name: "article words", priority: 150, trigger: { events: ["article_read"] }, when: { match: { keywords: ["须知", "热玛吉", "hello"], in: ["article"] } }, then: [{ add: { group: "need", tag: "种植牙" } }] },
  { id: "test-message-items", name: "message or item words", priority: 150, trigger: { events: ["message_received", "purchase", "visit", "appointment_booked", "consultation_outcome"] }, when: { match: { keywords: ["热玛吉", "光子", "5折_%", "c:\\d"], in: ["message", "items"], windowDays: 30 } }, then: [{ add: { group: "need", tag: "抗衰" } }] },
];

function randomHistory(r: () => number, contactId: string): EventFact[] {
  const n = Math.floor(r() * 14);
  const pick = <T>(xs: T[]) => xs[Math.floor(r() * xs.length)]!;
  const out: EventFact[] = [];
  for (let i = 0; i < n; i++) {
    // Some times land exactly on window and dormancy boundaries; a few are dated ahead (scheduled).
    const daysAgo = r() < 0.15 ? pick([0, 14, 28, 180, 365]) : r() < 0.04 ? -pick([1, 20, 150]) : Math.floor(r() * 720 * 100) / 100;
    const type = pick(["contact_added", "visit", "visit", "purchase", "purchase", "message_received", "article_read", "livestream_attended", "group_joined", "appointment_booked", "consultation_outcome", "consultation_outcome", "refund", "survey_answered", "survey_answered", "referral_joined", "referral_converted"]);
    const data: Record<string, unknown> =
      type === "purchase" ? { amount: pick([0, 300, 4999, 5000, 12000, 19999.5, 20000, 30000]), items: [pick(ITEMS)] }
      : type === "message_received" ? { text: pick(TEXTS) }
      : type === "article_read" ? { articleId: `a${i}`, topic: pick(TOPICS), ...(r() < 0.5 ? { title: pick(TITLES) } : {}) }
      : type === "livestream_attended" ? { liveId: "l1", minutes: 20 }
      : type === "group_joined" ? { chatId: "wr1" }
      : type === "appointment_booked" ? { at: NOW.toISOString(), item: pick(ITEMS) }
      : type === "consultation_outcome" ? (r() < 0.4 ? { outcome: "converted", amount: 8000, items: [pick(ITEMS)] } : { outcome: "lost", lostReason: pick(["价格敏感", "担心效果", "恐惧疼痛", "时间不便", "选择了其他机构", "其他"]) })
      : type === "refund" ? { amount: pick([300, 5000, 15000]) }
      : type === "survey_answered" ? { score: pick([0, 6, 7, 8, 9, 10]) }
      : type === "referral_joined" || type === "referral_converted" ? { referredContactId: "1b9f1c1e-7a55-4a7c-9a55-1c1e7a554a7c" }
      : type === "visit" ? { item: pick(ITEMS) }
      : {};
    out.push({ id: `${contactId.slice(0, 8)}-0000-4000-8000-${String(i).padStart(12, "0")}`, type, occurredAt: new Date(NOW.getTime() - Math.round(daysAgo * DAY)), data });
  }
  return out;
}

const norm = (x: Record<string, string[]>) => Object.fromEntries(Object.entries(x).filter(([, v]) => v.length).map(([k, v]) => [k, [...v].sort()] as const).sort((a, b) => (a[0] < b[0] ? -1 : 1)));

describe("set-based SQL and incremental evaluators agree", () => {
  it.each([1, 2, 3, 4, 5])("on 40 random contacts (seed %i)", async (seed) => {
    const r = seededRandom(seed * 7919);
    const tenant = await createTestTenant(t.rt.deps);
    const active = await activeRules(t.rt.deps.db, tenant.id);
    const ruleSet = { ...active.ruleSet, rules: [...active.ruleSet.rules, ...EXTRA_RULES] };
    const rules = { ...active, ruleSet };
    const expected = new Map<string, Record<string, string[]>>();
    for (let i = 0; i < 40; i++) {
      const [c] = await t.rt.deps.db.insert(contacts).values({ tenantId: tenant.id, name: `c${i}`, source: r() < 0.5 ? "wecom" : "import" }).returning();
      const history = randomHistory(r, c!.id).map((e, j) => ({ ...e, id: crypto.randomUUID(), idx: j }));
      if (history.length) {
        await t.rt.deps.db.insert(events).values(history.map((e) => ({ id: e.id, tenantId: tenant.id, contactId: c!.id, type: e.type, occurredAt: e.occurredAt, source: "test", idempotencyKey: `${c!.id}-${e.idx}`, payload: e.data, processedAt: NOW })));
      }
      // Incremental: each event in a random arrival order, then the nightly pass.
      const order = [...history].sort(() => r() - 0.5);
      let tags: Record<string, string[]> = {};
      const seen: EventFact[] = [];
      for (const e of order) {
        seen.push(e);
        tags = evaluate({ fields: { source: c!.source, gender: null, sourceState: null }, tags, events: seen }, { kind: "event", event: e }, NOW, ruleSet, EXCLUSIVE).tags;
      }
      tags = evaluate({ fields: { source: c!.source, gender: null, sourceState: null }, tags, events: history }, { kind: "schedule" }, NOW, ruleSet, EXCLUSIVE).tags;
      expected.set(c!.id, norm(tags));
    }
    // Odd seeds split the 40 contacts into id-range chunks of about 8, run two at a time.
    const first = await runSetBased({ ctx: systemCtx(t.rt.deps, tenant.id, "test"), mode: "backfill", now: NOW, rules, ...(seed % 2 ? { chunk: 8 } : {}) });
    expect(first.contacts).toBe(40);
    const rows = await t.rt.deps.db
      .select({ contactId: contactTags.contactId, group: tagGroups.key, name: tags.name })
      .from(contactTags)
      .innerJoin(tags, eq(tags.id, contactTags.tagId))
      .innerJoin(tagGroups, eq(tagGroups.id, tags.groupId))
      .where(and(eq(contactTags.tenantId, tenant.id)));
    const actual = new Map<string, Record<string, string[]>>();
    for (const id of expected.keys()) actual.set(id, {});
    for (const row of rows) (actual.get(row.contactId)![row.group] ??= []).push(row.name);
    const mismatches = [...expected].filter(([id, exp]) => JSON.stringify(norm(actual.get(id)!)) !== JSON.stringify(exp)).map(([id, exp]) => `${id}: incremental ${JSON.stringify(exp)} vs SQL ${JSON.stringify(norm(actual.get(id)!))}`);
    expect(mismatches).toEqual([]);
    expect(await staleBits(tenant.id)).toEqual([]);
    // The pass marks the rows of tags with a bit (the tag index leaves them out), never others.
    const marks = rowsOf<{ bit: boolean; marked: boolean; n: number }>(
      await t.rt.deps.db.execute(sql`select tg.ordinal < 63 as bit, ct.in_tag_bits as marked, count(*)::int as n from contact_tags ct join tags tg on tg.id = ct.tag_id where ct.tenant_id = ${tenant.id}::uuid group by 1, 2`),
    );
    expect(marks.filter((m) => m.bit !== m.marked)).toEqual([]);
    // A second pass over the same state writes nothing: only changed rows are ever written.
    const again = await runSetBased({ ctx: systemCtx(t.rt.deps, tenant.id, "test"), mode: "backfill", now: NOW, rules });
    expect(again.added + again.removed).toBe(0);

    // Nights later: the nightly pass evaluates only contacts whose time-based tags may have changed
    // (contact_tag_state), and still agrees with evaluating every contact.
    let state = new Map([...expected].map(([id, tg]) => [id, tg]));
    const histories = new Map<string, EventFact[]>();
    for (const e of await t.rt.deps.db.select().from(events).where(eq(events.tenantId, tenant.id))) {
      histories.set(e.contactId, [...(histories.get(e.contactId) ?? []), { id: e.id, type: e.type, occurredAt: e.occurredAt, data: e.payload }]);
    }
    const sources = new Map((await t.rt.deps.db.select().from(contacts).where(eq(contacts.tenantId, tenant.id))).map((c) => [c.id, c.source]));
    let evaluated = 0;
    for (const days of [1, 14, 15, 100, 181, 366, 400]) {
      const at = new Date(NOW.getTime() + days * DAY);
      const night = await runSetBased({ ctx: systemCtx(t.rt.deps, tenant.id, "test"), mode: "schedule", now: at, rules, ...(seed % 2 ? { chunk: 8 } : {}) });
      evaluated += night.contacts;
      state = new Map([...state].map(([id, tg]) => [id, norm(evaluate({ fields: { source: sources.get(id)!, gender: null, sourceState: null }, tags: tg, events: histories.get(id) ?? [] }, { kind: "schedule" }, at, ruleSet, EXCLUSIVE).tags)]));
      const now = await tagsOf(tenant.id, [...state.keys()]);
      const wrong = [...state].filter(([id, exp]) => JSON.stringify(norm(now.get(id)!)) !== JSON.stringify(exp)).map(([id, exp]) => `day ${days} ${id}: every contact ${JSON.stringify(exp)} vs due ones ${JSON.stringify(norm(now.get(id)!))}`);
      expect(wrong).toEqual([]);
      expect(await staleBits(tenant.id)).toEqual([]);
    }
    // The point: far fewer evaluations than seven passes over every contact.
    expect(evaluated).toBeLessThan(7 * 40);
  });
});

async function tagsOf(tenantId: string, ids: string[]): Promise<Map<string, Record<string, string[]>>> {
  const rows = await t.rt.deps.db
    .select({ contactId: contactTags.contactId, group: tagGroups.key, name: tags.name })
    .from(contactTags)
    .innerJoin(tags, eq(tags.id, contactTags.tagId))
    .innerJoin(tagGroups, eq(tagGroups.id, tags.groupId))
    .where(eq(contactTags.tenantId, tenantId));
  const out = new Map<string, Record<string, string[]>>(ids.map((id) => [id, {}]));
  for (const row of rows) (out.get(row.contactId)![row.group] ??= []).push(row.name);
  return out;
}

/** Contacts whose tag bits (contact_tag_state) disagree with their tags in contact_tags. */
async function staleBits(tenantId: string): Promise<string[]> {
  const r = await t.rt.deps.db.execute(sql`
    select s.contact_id::text as id from contact_tag_state s
    where s.tenant_id = ${tenantId}::uuid and s.tag_bits <> coalesce((select bit_or(1::bigint << tg.ordinal) from contact_tags ct join tags tg on tg.id = ct.tag_id where ct.contact_id = s.contact_id and tg.ordinal < 63), 0)`);
  return rowsOf<{ id: string }>(r).map((x) => x.id);
}
