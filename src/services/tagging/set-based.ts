import { eq, sql, type SQL } from "drizzle-orm";
import { tagGroups, tags } from "../../db/schema/index";
import { foldText, orderRules, resolve } from "../../domain/tagging/evaluate";
import type { Aggregate, Comparison, Condition, Rule, RuleSet } from "../../domain/tagging/rules";
import { dbOf, withTransaction, type Ctx } from "../context";
import { activeRules, type ActiveRules } from "./rule-set";

/**
 * The set-based evaluator: the same rules compiled to SQL and run over every contact of a tenant,
 * one statement per rule in (priority, id) order inside one transaction, so each rule sees what the
 * previous ones set, exactly like the incremental evaluator (src/domain/tagging/evaluate.ts, whose
 * header states the semantics both follow). Only changed rows are written, each with its history.
 */
export interface SetBasedResult {
  rules: number;
  added: number;
  removed: number;
  /** Dry runs only: per tag, how many contacts would gain and lose it, with a few of them. */
  preview?: { group: string; tag: string; gains: number; losses: number; sampleGains: string[]; sampleLosses: string[] }[];
}

const DAY_MS = 86_400_000;
const OPS: Record<Comparison, string> = { eq: "=", ne: "<>", gt: ">", gte: ">=", lt: "<", lte: "<=" };

class Compiler {
  /**
   * Per-contact aggregates, computed once per pass by a single GROUP BY over the tenant's events
   * (temp table siyu_agg, alias a) instead of a subquery per contact and rule.
   */
  readonly columns: { name: string; expr: SQL }[] = [];
  private readonly byKey = new Map<string, string>();

  constructor(
    private readonly set: RuleSet,
    private readonly nowIso: string,
  ) {}

  /** Register an aggregate column (deduplicated by its definition); returns its name. */
  private column(key: string, expr: () => SQL): string {
    let name = this.byKey.get(key);
    if (!name) {
      name = `a${this.columns.length}`;
      this.byKey.set(key, name);
      this.columns.push({ name, expr: expr() });
    }
    return name;
  }

  /** The filter of an aggregate over `events e` (the GROUP BY supplies the contact). */
  private filter(types: readonly string[], windowDays: number | undefined, where?: Record<string, string | number | boolean>): SQL {
    const parts = [sql`e.type in (${sql.join(types.map((t) => sql`${t}`), sql`, `)})`, sql`e.occurred_at <= ${this.nowIso}::timestamptz`];
    if (windowDays !== undefined) parts.push(sql`e.occurred_at > ${this.nowIso}::timestamptz - make_interval(secs => ${windowDays * 86400}::float8)`);
    if (where) for (const [k, v] of Object.entries(where)) parts.push(sql`e.payload -> ${k} = ${JSON.stringify(v)}::jsonb`);
    return sql.join(parts, sql` and `);
  }

  private n(v: Parameters<typeof resolve>[0]): number {
    return resolve(v, this.set.params);
  }



  private num(field: string): SQL {
    return sql`(case when jsonb_typeof(e.payload -> ${field}) = 'number' then (e.payload ->> ${field})::float8 end)`;
  }

  agg(a: Aggregate): SQL {
    const windowDays = a.windowDays === undefined ? undefined : this.n(a.windowDays);
    const f = () => this.filter(a.events, windowDays, a.where);
    const key = JSON.stringify({ ...a, windowDays });
    const col = (expr: () => SQL) => sql.raw(`a.${this.column(key, expr)}`);
    switch (a.metric) {
      case "count":
        return sql`coalesce(${col(() => sql`count(*) filter (where ${f()})::float8`)}, 0)`;
      case "sum":
        return sql`coalesce(${col(() => sql`sum(${this.num(a.field!)}) filter (where ${f()})`)}, 0)`;
      case "min":
        return col(() => sql`min(${this.num(a.field!)}) filter (where ${f()})`);
      case "max":
        return col(() => sql`max(${this.num(a.field!)}) filter (where ${f()})`);
      case "last":
        return col(() => sql`(array_agg(${this.num(a.field!)} order by e.occurred_at desc, e.id desc) filter (where ${f()}))[1]`);
      case "days_since":
        return col(() => sql`floor(extract(epoch from (${this.nowIso}::timestamptz - max(e.occurred_at) filter (where ${f()}))) * 1000 / ${DAY_MS})::float8`);
    }
  }

  private cmp(left: SQL, op: Comparison, right: number): SQL {
    if (Number.isNaN(right)) return sql`false`;
    return sql`coalesce((${left}) ${sql.raw(OPS[op])} ${right}::float8, false)`;
  }

  score(name: string): SQL {
    const terms: SQL[] = [];
    for (const r of this.set.rules) {
      for (const a of r.then) {
        if (!("score" in a) || a.score.name !== name || !r.trigger.events) continue;
        const add = this.n(a.score.add);
        const hl = a.score.halfLifeDays * DAY_MS;
        const types = r.trigger.events;
        const colName = this.column(JSON.stringify({ score: name, rule: r.id, add, hl }), () => sql`sum(${add}::float8 * power(0.5::float8, (extract(epoch from (${this.nowIso}::timestamptz - e.occurred_at)) * 1000)::float8 / ${hl}::float8)) filter (where ${this.filter(types, undefined)})`);
        terms.push(sql`coalesce(${sql.raw(`a.${colName}`)}, 0)`);
      }
    }
    return terms.length ? sql.join(terms, sql` + `) : sql`0::float8`;
  }

  private match(m: Extract<Condition, { match: unknown }>["match"]): SQL {
    const words = (m.need ? (this.set.needs[m.need] ?? []) : (m.keywords ?? [])).map(foldText);
    if (!words.length) return sql`false`;
    const sources = m.in ?? ["message", "article", "items"];
    const texts: SQL[] = [];
    const str = (key: string, types: string[]) =>
      sql`select e.payload ->> ${key} where e.type in (${sql.join(types.map((t) => sql`${t}`), sql`, `)}) and jsonb_typeof(e.payload -> ${key}) = 'string'`;
    if (sources.includes("message")) texts.push(str("text", ["message_received"]));
    if (sources.includes("article")) texts.push(str("topic", ["article_read"]), str("title", ["article_read"]));
    if (sources.includes("items")) {
      texts.push(str("item", ["appointment_booked", "visit"]));
      texts.push(sql`select x #>> '{}' from jsonb_array_elements(case when e.type in ('purchase', 'consultation_outcome') and jsonb_typeof(e.payload -> 'items') = 'array' then e.payload -> 'items' else '[]'::jsonb end) x where jsonb_typeof(x) = 'string'`);
    }
    const windowDays = m.windowDays === undefined ? undefined : this.n(m.windowDays);
    const scope = sql.join(
      [sql`e.tenant_id = c.tenant_id`, sql`e.contact_id = c.id`, sql`e.occurred_at <= ${this.nowIso}::timestamptz`, ...(windowDays !== undefined ? [sql`e.occurred_at > ${this.nowIso}::timestamptz - make_interval(secs => ${windowDays * 86400}::float8)`] : [])],
      sql` and `,
    );
    const hit = sql.join(words.map((w) => sql`position(${w} in lower(normalize(t.txt, NFKC))) > 0`), sql` or `);
    return sql`exists (select 1 from events e cross join lateral (${sql.join(texts, sql` union all `)}) t(txt) where ${scope} and t.txt <> '' and (${hit}))`;
  }

  cond(c: Condition | undefined): SQL {
    if (!c) return sql`true`;
    if ("all" in c) return sql`(${sql.join(c.all.map((x) => this.cond(x)), sql` and `)})`;
    if ("any" in c) return sql`(${sql.join(c.any.map((x) => this.cond(x)), sql` or `)})`;
    if ("not" in c) return sql`(not ${this.cond(c.not)})`;
    if ("agg" in c) return this.cmp(this.agg(c.agg), c.op, this.n(c.value));
    if ("tag" in c) {
      const names = c.tag.in ? sql` and t.name in (${sql.join(c.tag.in.map((x) => sql`${x}`), sql`, `)})` : sql``;
      // The pass works on siyu_wt, its working copy of the tenant's tags (see runSetBased).
      const ex = sql`exists (select 1 from siyu_wt ct join tags t on t.id = ct.tag_id join tag_groups g on g.id = t.group_id where ct.contact_id = c.id and g.key = ${c.tag.group}${names})`;
      return (c.present ?? true) ? ex : sql`(not ${ex})`;
    }
    if ("field" in c) {
      const col = sql.raw({ source: "c.source", gender: "c.gender", sourceState: "c.source_state" }[c.field]);
      const values = Array.isArray(c.value) ? c.value : [c.value];
      if (c.op === "in") return sql`coalesce(${col} in (${sql.join(values.map((v) => sql`${v}`), sql`, `)}), false)`;
      return c.op === "eq" ? sql`coalesce(${col} = ${values[0]!}, false)` : sql`(${col} is distinct from ${values[0]!})`;
    }
    if ("match" in c) return this.match(c.match);
    return this.cmp(this.score(c.score), c.op, this.n(c.value));
  }

  /** Contacts a rule applies to in this pass (see `applicable` in the evaluator). */
  applicable(r: Rule, mode: "backfill" | "schedule"): SQL {
    if (mode === "schedule") return r.trigger.schedule === "daily" ? sql`true` : sql`false`;
    if (r.trigger.schedule === "daily") return sql`true`;
    const types = r.trigger.events!;
    const colName = this.column(JSON.stringify({ has: [...types].sort() }), () => sql`bool_or(e.type in (${sql.join(types.map((t) => sql`${t}`), sql`, `)}))`);
    return sql`coalesce(${sql.raw(`a.${colName}`)}, false)`;
  }
}

/**
 * Run every applicable rule over all of a tenant's (not deleted) contacts. The rules run one
 * statement each on a working copy of the tenant's tags (a temporary table), so later rules see
 * earlier ones' effects; then only the net difference is written to contact_tags and tag_history,
 * each change attributed to the last rule that made it, as the incremental evaluator does.
 */
export async function runSetBased({ ctx, mode, now, rules, dryRun = false }: { ctx: Ctx; mode: "backfill" | "schedule"; now?: Date; rules?: ActiveRules; dryRun?: boolean }): Promise<SetBasedResult> {
  const { ruleSet, version, exclusiveGroups } = rules ?? (await activeRules(dbOf(ctx), ctx.tenantId));
  const nowIso = (now ?? ctx.deps.now()).toISOString();
  const compiler = new Compiler(ruleSet, nowIso);
  return withTransaction(ctx, async (tx, ctx) => {
    // One set-based pass per tenant at a time (a publish backfill and the nightly pass never interleave).
    if (!dryRun) await tx.execute(sql`select pg_advisory_xact_lock(hashtext(${`siyu-tagging-${ctx.tenantId}`}))`);
    const tagRows = await tx.select({ id: tags.id, groupId: tags.groupId, group: tagGroups.key, name: tags.name }).from(tags).innerJoin(tagGroups, eq(tagGroups.id, tags.groupId)).where(eq(tags.tenantId, ctx.tenantId));
    const groupId = new Map(tagRows.map((t) => [t.group, t.groupId]));
    const tagId = new Map(tagRows.map((t) => [`${t.group}\u0000${t.name}`, t.id]));
    await tx.execute(sql`create temp table siyu_wt on commit drop as select contact_id, tag_id, coalesce(rule_id, '') as rule_id from contact_tags where tenant_id = ${ctx.tenantId}::uuid`);
    await tx.execute(sql`create unique index on siyu_wt (contact_id, tag_id)`);
    await tx.execute(sql`create temp table siyu_wt_removed (contact_id uuid not null, tag_id uuid not null, rule_id text not null, primary key (contact_id, tag_id)) on commit drop`);
    // Compile every rule first (registering the aggregates they need), then compute those once.
    const compiled = orderRules(ruleSet.rules).map((r) => ({ r, applicable: compiler.applicable(r, mode), cond: compiler.cond(r.when) }));
    const cols = compiler.columns.length ? compiler.columns : [{ name: "a0", expr: sql`count(*)` }];
    await tx.execute(sql`create temp table siyu_agg on commit drop as select e.contact_id, ${sql.join(cols.map((c) => sql`${c.expr} as ${sql.raw(c.name)}`), sql`, `)} from events e where e.tenant_id = ${ctx.tenantId}::uuid group by e.contact_id`);
    await tx.execute(sql`create unique index on siyu_agg (contact_id)`);
    let rulesRun = 0;
    for (const { r, applicable, cond } of compiled) {
      const matching = sql`select c.id from contacts c left join siyu_agg a on a.contact_id = c.id where c.tenant_id = ${ctx.tenantId}::uuid and c.deleted_at is null and ${applicable} and ${cond}`;
      let ran = false;
      for (const a of r.then) {
        let del: SQL | null = null;
        let ins: string | null = null;
        if ("set" in a || "add" in a) {
          const ref = "set" in a ? a.set : a.add;
          const tid = tagId.get(`${ref.group}\u0000${ref.tag}`);
          if (!tid) continue;
          ins = tid;
          if ("set" in a || exclusiveGroups.has(ref.group)) del = sql`w.tag_id in (select id from tags where group_id = ${groupId.get(ref.group)!}::uuid and id <> ${tid}::uuid)`;
        } else if ("remove" in a) {
          const tid = tagId.get(`${a.remove.group}\u0000${a.remove.tag}`);
          if (!tid) continue;
          del = sql`w.tag_id = ${tid}::uuid`;
        } else if ("clear" in a) {
          const gid = groupId.get(a.clear.group);
          if (!gid) continue;
          del = sql`w.tag_id in (select id from tags where group_id = ${gid}::uuid)`;
        } else continue; // scores are computed from events; leads and enrollments are not tags
        ran = true;
        const delCte = del ? sql`delete from siyu_wt w where w.contact_id in (select id from m) and ${del} returning w.contact_id, w.tag_id` : sql`select null::uuid as contact_id, null::uuid as tag_id where false`;
        const insCte = ins ? sql`insert into siyu_wt (contact_id, tag_id, rule_id) select id, ${ins}::uuid, ${r.id} from m on conflict (contact_id, tag_id) do update set rule_id = excluded.rule_id returning contact_id` : sql`select null::uuid as contact_id where false`;
        await tx.execute(sql`
          with m as (${matching}),
          del as (${delCte}),
          rem as (insert into siyu_wt_removed select contact_id, tag_id, ${r.id} from del on conflict (contact_id, tag_id) do update set rule_id = excluded.rule_id returning 1),
          ins as (${insCte})
          select (select count(*) from rem) + (select count(*) from ins) as n`);
      }
      if (ran) rulesRun++;
    }
    if (dryRun) {
      // Nothing is written: compare the working copy with the real tags and report per tag.
      const rows = rowsOf<{ grp: string; tag: string; kind: string; n: number; sample: string[] }>(
        await tx.execute(sql`
          select g.key as grp, t.name as tag, d.kind, count(*)::int as n, (array_agg(d.contact_id::text order by d.contact_id))[1:5] as sample
          from (
            select w.contact_id, w.tag_id, 'gain' as kind from siyu_wt w
              where not exists (select 1 from contact_tags ct where ct.contact_id = w.contact_id and ct.tag_id = w.tag_id)
            union all
            select ct.contact_id, ct.tag_id, 'loss' from contact_tags ct
              where ct.tenant_id = ${ctx.tenantId}::uuid
                and ct.contact_id in (select id from contacts where tenant_id = ${ctx.tenantId}::uuid and deleted_at is null)
                and not exists (select 1 from siyu_wt w where w.contact_id = ct.contact_id and w.tag_id = ct.tag_id)
          ) d join tags t on t.id = d.tag_id join tag_groups g on g.id = t.group_id
          group by g.key, t.name, d.kind order by g.key, t.name`),
      );
      const byTag = new Map<string, NonNullable<SetBasedResult["preview"]>[number]>();
      for (const r of rows) {
        const key = `${r.grp}:${r.tag}`;
        const e = byTag.get(key) ?? { group: r.grp, tag: r.tag, gains: 0, losses: 0, sampleGains: [], sampleLosses: [] };
        if (r.kind === "gain") Object.assign(e, { gains: r.n, sampleGains: r.sample });
        else Object.assign(e, { losses: r.n, sampleLosses: r.sample });
        byTag.set(key, e);
      }
      const preview = [...byTag.values()];
      return { rules: rulesRun, added: preview.reduce((n, p) => n + p.gains, 0), removed: preview.reduce((n, p) => n + p.losses, 0), preview };
    }
    // Only the net difference reaches the real tables.
    const removed = rowsOf<{ n: number }>(
      await tx.execute(sql`
        with gone as (
          delete from contact_tags ct where ct.tenant_id = ${ctx.tenantId}::uuid
            and ct.contact_id in (select id from contacts where tenant_id = ${ctx.tenantId}::uuid and deleted_at is null)
            and not exists (select 1 from siyu_wt w where w.contact_id = ct.contact_id and w.tag_id = ct.tag_id)
          returning ct.contact_id, ct.tag_id),
        hist as (
          insert into tag_history (tenant_id, contact_id, tag_id, action, source, rule_id, rule_version)
          select ${ctx.tenantId}::uuid, g.contact_id, g.tag_id, 'remove', 'rule', r.rule_id, ${version}::int
          from gone g left join siyu_wt_removed r on r.contact_id = g.contact_id and r.tag_id = g.tag_id
          returning 1)
        select count(*)::int as n from hist`),
    );
    const added = rowsOf<{ n: number }>(
      await tx.execute(sql`
        with fresh as (
          insert into contact_tags (tenant_id, contact_id, tag_id, source, rule_id, rule_version)
          select ${ctx.tenantId}::uuid, w.contact_id, w.tag_id, 'rule', w.rule_id, ${version}::int from siyu_wt w
          where not exists (select 1 from contact_tags ct where ct.contact_id = w.contact_id and ct.tag_id = w.tag_id)
          returning contact_id, tag_id, rule_id),
        hist as (
          insert into tag_history (tenant_id, contact_id, tag_id, action, source, rule_id, rule_version)
          select ${ctx.tenantId}::uuid, contact_id, tag_id, 'add', 'rule', rule_id, ${version}::int from fresh
          returning 1)
        select count(*)::int as n from hist`),
    );
    return { rules: rulesRun, added: added[0]?.n ?? 0, removed: removed[0]?.n ?? 0 };
  });
}

function rowsOf<T>(r: unknown): T[] {
  return (Array.isArray(r) ? r : (r as { rows: T[] }).rows) as T[];
}
