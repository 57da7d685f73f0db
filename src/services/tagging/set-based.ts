import { eq, sql, type SQL } from "drizzle-orm";
import { rowsOf, type Tx } from "../../db/client";
import { tagGroups, tags } from "../../db/schema/index";
import { foldText, orderRules, resolve } from "../../domain/tagging/evaluate";
import { EVENT_TYPES } from "../../domain/events/types";
import type { Action, Aggregate, Comparison, Condition, Rule, RuleSet } from "../../domain/tagging/rules";
import { dbOf, type Ctx } from "../context";
import { PARALLEL, PARTS, partOf, tagBit, tagLockKeys, uuidArray } from "./tag-state";
export { shareTagLocks, tagLockKeys } from "./tag-state";
import { activeRules, type ActiveRules } from "./rule-set";

/**
 * The set-based evaluator: the same rules compiled to SQL and run over every contact of a tenant.
 * Its semantics are the incremental evaluator's (src/domain/tagging/evaluate.ts states them):
 *
 * - Every aggregate, score and keyword match the rules use is computed in one GROUP BY over the
 *   events of a chunk of contacts (an index range scan on events(tenant_id, contact_id, ...)).
 * - The rules then run as a chain in one SELECT: the working tags are one text[] column per tag
 *   group, and the rules, in (priority, id) order, are a few stacked subqueries (see `plan`), each
 *   deciding which rules fire from the tags below and rewriting the groups their actions touch.
 * - Only the net difference to the contact's current tags is written, each change attributed to
 *   the last fired rule that acted on that tag, in the same statement (removals, additions,
 *   history), with the contact's tag bits and next recheck time (contact_tag_state).
 *
 * A backfill splits the tenant's contacts into id ranges of about CHUNK contacts; the nightly pass
 * takes only the contacts whose time-based tags are due, CHUNK ids at a time. Each chunk is one
 * transaction, PARALLEL at a time on their own connections (lanes). The id space is split into
 * parts (tag-state.ts) and a chunk lies in one, holding that part's advisory lock, which every
 * other tag writer shares: a chunk never races them, nor another pass's chunk, on the same tags. A
 * lane takes the next chunk of a part no other lane is working, so the lanes never wait for each
 * other and finish together.
 */
export interface SetBasedResult {
  rules: number;
  added: number;
  removed: number;
  /** Contacts evaluated. */
  contacts: number;
  /** Dry runs only: per tag, how many contacts would gain and lose it, with a few of them. */
  preview?: { group: string; tag: string; gains: number; losses: number; sampleGains: string[]; sampleLosses: string[] }[];
}

const DAY_MS = 86_400_000;
const OPS: Record<Comparison, string> = { eq: "=", ne: "<>", gt: ">", gte: ">=", lt: "<", lte: "<=" };
/**
 * Contacts per chunk (one transaction each). Events are stored in time order, so a chunk's events
 * (a range of contact ids) lie on nearly every page of the events table: fewer, larger chunks
 * visit those pages fewer times (8% less CPU at a million contacts than chunks of 40,000).
 */
export const CHUNK = 100_000;

const lit = (s: string) => sql`${s}::text`;

/**
 * Each event type as one bit (`e.tb`, computed once per event in eventsSource): an aggregate's
 * type filter is then an integer AND instead of text comparisons, once per event and aggregate.
 */
const TYPE_BIT = new Map<string, number>(EVENT_TYPES.map((t, i) => [t, 1 << i]));
if (EVENT_TYPES.length > 31) throw new Error("event type bits need more than an int");
const typeMask = (types: readonly string[]) => types.reduce((m, t) => m | (TYPE_BIT.get(t) ?? 0), 0);
const typeBits = sql.raw(`(case e.type ${EVENT_TYPES.map((t, i) => `when '${t}' then ${1 << i}`).join(" ")} else 0 end)`);
/**
 * A LIKE pattern matching texts that contain `w` (with %, _ and backslash escaped). `text LIKE ANY
 * (patterns)` finds any of a list of words in less than half the time of one position() per word
 * (byte-wise in a deterministic collation, as String.includes).
 */
const containsPattern = (w: string) => `%${w.replace(/[\\%_]/g, "\\$&")}%`;
const textArray = (xs: readonly string[]) => (xs.length ? sql`array[${sql.join(xs.map(lit), sql`, `)}]::text[]` : sql`'{}'::text[]`);

class Compiler {
  /**
   * Per-contact aggregates, computed once per chunk by a single GROUP BY over its events (alias a).
   * Rendered last (`expr()`): a keyword match column holds every word list of its sources and window.
   */
  readonly columns: { name: string; expr: () => SQL }[] = [];
  private readonly byKey = new Map<string, string>();
  /** Tag groups the rules read or write: the working state, one text[] column each. */
  readonly groups: string[] = [];
  /** The SQL reference holding each group's tags at the current step of the chain. */
  private state = new Map<string, SQL>();

  constructor(
    private readonly set: RuleSet,
    private readonly nowIso: string,
    readonly exclusive: ReadonlySet<string>,
  ) {
    const add = (g: string) => {
      if (!this.groups.includes(g)) this.groups.push(g);
    };
    const visit = (c: Condition | undefined): void => {
      if (!c) return;
      if ("all" in c) c.all.forEach(visit);
      else if ("any" in c) c.any.forEach(visit);
      else if ("not" in c) visit(c.not);
      else if ("tag" in c) add(c.tag.group);
    };
    for (const r of set.rules) {
      visit(r.when);
      for (const g of actionGroups(r.then)) add(g);
    }
    this.groups.forEach((g, i) => this.state.set(g, sql.raw(`q.g${i}`)));
  }

  private column(key: string, expr: () => SQL): string {
    let name = this.byKey.get(key);
    if (!name) {
      name = `a${this.columns.length}`;
      this.byKey.set(key, name);
      const built = expr();
      this.columns.push({ name, expr: () => built });
    }
    return name;
  }

  private get now(): SQL {
    return sql`${this.nowIso}::timestamptz`;
  }

  /**
   * A window's bounds as constants (`timestamptz - interval` is only stable, so PostgreSQL would
   * compute it again for every event and aggregate). Millisecond arithmetic, as the incremental
   * evaluator's.
   */
  private window(windowDays: number | undefined): SQL {
    const parts = [sql`e.occurred_at <= ${this.now}`];
    const from = windowDays === undefined ? NaN : Date.parse(this.nowIso) - windowDays * DAY_MS;
    // A window reaching before any representable time holds every event up to now.
    if (from >= -8.64e15) parts.push(sql`e.occurred_at > ${new Date(from).toISOString()}::timestamptz`);
    return sql.join(parts, sql` and `);
  }

  private filter(types: readonly string[], windowDays: number | undefined, where?: Record<string, string | number | boolean>): SQL {
    const parts = [sql.raw(`(e.tb & ${typeMask(types)}) <> 0`), this.window(windowDays)];
    if (where) for (const [k, v] of Object.entries(where)) parts.push(sql.raw(`coalesce(e.${this.payloadColumn(`w:${k}=${JSON.stringify(v)}`, types, () => sql`e.payload -> ${lit(k)} = ${JSON.stringify(v)}::jsonb`)}, false)`));
    return sql.join(parts, sql` and `);
  }

  /**
   * Values read from the payload (numeric fields, `where` tests), computed once per event in
   * eventsSource, only for the event types whose aggregates read them (NULL for the others).
   */
  private readonly payloadColumns = new Map<string, { name: string; expr: SQL; types: Set<string> }>();

  private payloadColumn(key: string, types: readonly string[], expr: () => SQL): string {
    let c = this.payloadColumns.get(key);
    if (!c) this.payloadColumns.set(key, (c = { name: `p${this.payloadColumns.size}`, expr: expr(), types: new Set() }));
    for (const t of types) c.types.add(t);
    return c.name;
  }

  private n(v: Parameters<typeof resolve>[0]): number {
    return resolve(v, this.set.params);
  }

  private num(field: string, types: readonly string[]): SQL {
    return sql.raw(`e.${this.payloadColumn(`n:${field}`, types, () => sql`(case when jsonb_typeof(e.payload -> ${lit(field)}) = 'number' then (e.payload ->> ${lit(field)})::float8 end)`)}`);
  }

  private agg(a: Aggregate): SQL {
    const windowDays = a.windowDays === undefined ? undefined : this.n(a.windowDays);
    const f = () => this.filter(a.events, windowDays, a.where);
    const key = JSON.stringify({ ...a, windowDays });
    const col = (expr: () => SQL) => sql.raw(`q.${this.column(key, expr)}`);
    switch (a.metric) {
      case "count":
        return sql`coalesce(${col(() => sql`count(*) filter (where ${f()})::float8`)}, 0)`;
      case "sum":
        if (a.subtract) {
          const minus = a.subtract;
          return sql`coalesce(${col(() => sql`sum(case when ${sql.raw(`(e.tb & ${typeMask(minus)}) <> 0`)} then -${this.num(a.field!, minus)} else ${this.num(a.field!, a.events)} end) filter (where ${this.filter([...a.events, ...minus], windowDays, a.where)})`)}, 0)`;
        }
        return sql`coalesce(${col(() => sql`sum(${this.num(a.field!, a.events)}) filter (where ${f()})`)}, 0)`;
      case "min":
        return col(() => sql`min(${this.num(a.field!, a.events)}) filter (where ${f()})`);
      case "max":
        return col(() => sql`max(${this.num(a.field!, a.events)}) filter (where ${f()})`);
      case "last":
        // The value of the latest matching event (ties by id), as (array_agg(v order by
        // occurred_at desc, id desc))[1] would give, without a sort per contact (drizzle/0017).
        return col(() => sql`siyu_latest(e.occurred_at, e.id, ${this.num(a.field!, a.events)}) filter (where ${f()})`);
      case "days_since":
        return col(() => sql`floor(extract(epoch from (${this.now} - max(e.occurred_at) filter (where ${f()}))) * 1000 / ${DAY_MS})::float8`);
    }
  }

  private cmp(left: SQL, op: Comparison, right: number): SQL {
    if (Number.isNaN(right)) return sql`false`;
    return sql`coalesce((${left}) ${sql.raw(OPS[op])} ${right}::float8, false)`;
  }

  /**
   * A decaying score: per half-life, one sum over the events of every rule that adds to it (an
   * event's points are the adds of the rules its type triggers), each halved every half-life.
   */
  private score(name: string): SQL {
    const byHalfLife = new Map<number, { add: number; mask: number }[]>();
    for (const r of this.set.rules) {
      for (const a of r.then) {
        if (!("score" in a) || a.score.name !== name || !r.trigger.events) continue;
        const hl = a.score.halfLifeDays * DAY_MS;
        const list = byHalfLife.get(hl) ?? [];
        list.push({ add: this.n(a.score.add), mask: typeMask(r.trigger.events) });
        byHalfLife.set(hl, list);
      }
    }
    const terms = [...byHalfLife].map(([hl, parts]) => {
      const mask = parts.reduce((m, p) => m | p.mask, 0);
      const points = sql.raw(parts.map((p) => `(case when (e.tb & ${p.mask}) <> 0 then ${p.add}::float8 else 0 end)`).join(" + "));
      const colName = this.column(JSON.stringify({ score: name, hl, parts }), () => sql`sum((${points}) * power(0.5::float8, (extract(epoch from (${this.now} - e.occurred_at)) * 1000)::float8 / ${hl}::float8)) filter (where ${sql.raw(`(e.tb & ${mask}) <> 0`)} and ${this.window(undefined)})`);
      return sql`coalesce(${sql.raw(`q.${colName}`)}, 0)`;
    });
    return terms.length ? sql.join(terms, sql` + `) : sql`0::float8`;
  }

  /**
   * The texts keyword matches read, one column per set of sources a rule names (usually just
   * one): each event's texts from those sources, folded, joined by U+0001 (see eventsSource).
   */
  private readonly texts = new Map<string, { name: string; sources: string[] }>();

  private textColumn(sources: readonly string[]): string {
    const key = [...new Set(sources)].sort().join(",");
    let t = this.texts.get(key);
    if (!t) {
      t = { name: `m${this.texts.size}`, sources: key.split(",") };
      this.texts.set(key, t);
    }
    return t.name;
  }

  /**
   * The events of a chunk, with the texts keyword matches read folded once per event (NFKC,
   * lower case), as textsOf reads them: message text, article topic and title, the item of a visit
   * or appointment, and a purchase's or consultation's string items. A rule's sources are joined
   * by U+0001 into one text (NULL when the event has none); no keyword contains U+0001, so a
   * keyword found in the joined text is found in one of them, and each keyword is looked for once
   * per event. `offset 0` keeps PostgreSQL from inlining the folded texts into every aggregate.
   */
  eventsSource(where: SQL): SQL {
    // Only what the aggregates read leaves the scan (no payload): the rows are sorted by contact.
    const fields = [...this.payloadColumns.values()].map((c) => sql`(case when e.type in (${sql.join([...c.types].sort().map(lit), sql`, `)}) then ${c.expr} end) as ${sql.raw(c.name)}`);
    const head = sql`e.id, e.contact_id, e.occurred_at, ${typeBits} as tb${fields.length ? sql`, ${sql.join(fields, sql`, `)}` : sql``}`;
    if (!this.texts.size) return sql`(select ${head} from events e where ${where} offset 0)`;
    const fold = (text: SQL) => sql`lower(normalize(${text}, NFKC))`;
    const str = (type: SQL, k: string) => sql`(case when ${type} and jsonb_typeof(e.payload -> ${lit(k)}) = 'string' then ${fold(sql`e.payload ->> ${lit(k)}`)} end)`;
    const bySource: Record<string, SQL[]> = {
      message: [str(sql`e.type = 'message_received'`, "text")],
      article: [str(sql`e.type = 'article_read'`, "topic"), str(sql`e.type = 'article_read'`, "title")],
      items: [
        str(sql`e.type in ('appointment_booked', 'visit')`, "item"),
        sql`(case when e.type in ('purchase', 'consultation_outcome') and jsonb_typeof(e.payload -> 'items') = 'array'
          then ${fold(sql`array_to_string(array(select x #>> '{}' from jsonb_array_elements(e.payload -> 'items') x where jsonb_typeof(x) = 'string' and x #>> '{}' <> ''), chr(1))`)} end)`,
      ],
    };
    const columns = [...this.texts.values()].map((t) => sql`nullif(concat_ws(chr(1), ${sql.join(t.sources.flatMap((s) => bySource[s] ?? []), sql`, `)}), '') as ${sql.raw(t.name)}`);
    return sql`(select ${head}, ${sql.join(columns, sql`, `)} from events e where ${where} offset 0)`;
  }

  /** Keyword / need match: one bool_or column over the event's folded texts of the rule's sources. */
  private match(m: Extract<Condition, { match: unknown }>["match"]): SQL {
    const words = (m.need ? (this.set.needs[m.need] ?? []) : (m.keywords ?? [])).map(foldText).filter((w) => w !== "");
    if (!words.length) return sql`false`;
    const sources = (m.in ?? ["message", "article", "items"]).filter((s) => s === "message" || s === "article" || s === "items");
    if (!sources.length) return sql`false`;
    const windowDays = m.windowDays === undefined ? undefined : this.n(m.windowDays);
    // Matches over the same texts and window share one column: a bit per word list, or'ed over the events.
    const groupKey = JSON.stringify({ sources: [...sources].sort(), windowDays });
    let group = this.matchGroups.get(groupKey);
    if (!group || (group.lists.length >= 62 && !group.lists.some((l) => JSON.stringify(l) === JSON.stringify(words)))) {
      const text = sql.raw(`e.${this.textColumn(sources)}`);
      const lists: string[][] = [];
      const g = { lists, name: "" };
      g.name = this.lazyColumn(() => sql`bit_or(case when ${text} is not null and ${this.window(windowDays)} then (${sql.join(
        lists.map((ws, k) => sql`(case when ${text} like any (${textArray(ws.map(containsPattern))}) then ${(1n << BigInt(k)).toString()}::bigint else 0::bigint end)`),
        sql` | `,
      )}) end)`);
      this.matchGroups.set(groupKey, (group = g));
    }
    let k = group.lists.findIndex((l) => JSON.stringify(l) === JSON.stringify(words));
    if (k < 0) k = group.lists.push(words) - 1;
    return sql.raw(`((coalesce(q.${group.name}, 0) & ${(1n << BigInt(k)).toString()}::bigint) <> 0)`);
  }

  private readonly matchGroups = new Map<string, { lists: string[][]; name: string }>();

  /** A column whose expression is rendered when the statement is built (after every rule is compiled). */
  private lazyColumn(expr: () => SQL): string {
    const name = `a${this.columns.length}`;
    this.columns.push({ name, expr });
    return name;
  }

  cond(c: Condition | undefined): SQL {
    if (!c) return sql`true`;
    if ("all" in c) return sql`(${sql.join(c.all.map((x) => this.cond(x)), sql` and `)})`;
    if ("any" in c) return sql`(${sql.join(c.any.map((x) => this.cond(x)), sql` or `)})`;
    if ("not" in c) return sql`(not ${this.cond(c.not)})`;
    if ("agg" in c) return this.cmp(this.agg(c.agg), c.op, this.n(c.value));
    if ("tag" in c) {
      const s = this.state.get(c.tag.group)!;
      const hit = c.tag.in ? sql`(${s} && ${textArray(c.tag.in)})` : sql`(cardinality(${s}) > 0)`;
      return (c.present ?? true) ? hit : sql`(not ${hit})`;
    }
    if ("field" in c) {
      const col = sql.raw({ source: "q.source", gender: "q.gender", sourceState: "q.source_state" }[c.field]);
      const values = Array.isArray(c.value) ? c.value : [c.value];
      if (c.op === "in") return sql`coalesce(${col} in (${sql.join(values.map(lit), sql`, `)}), false)`;
      return c.op === "eq" ? sql`coalesce(${col} = ${lit(values[0]!)}, false)` : sql`(${col} is distinct from ${lit(values[0]!)})`;
    }
    if ("match" in c) return this.match(c.match);
    return this.cmp(this.score(c.score), c.op, this.n(c.value));
  }

  /**
   * When the daily rules' results may next change without new facts, as a timestamptz over q
   * (NULL: never). The earliest of: an event leaving a window a daily rule reads (or entering it,
   * for events dated in the future), a days-since value reaching a threshold it is compared
   * with, a decaying score falling to a threshold (no earlier than the fastest half-life allows).
   * Conservative: an early recheck only costs one evaluation, which computes the next time.
   */
  recheck(rules: Rule[]): SQL {
    const parts: SQL[] = [];
    const days = (col: string, k: number) => sql`(${sql.raw(`q.${col}`)} + make_interval(secs => ${k * 86400}::float8))`;
    const future = this.column("future", () => sql`min(e.occurred_at) filter (where e.occurred_at > ${this.now})`);
    parts.push(sql.raw(`q.${future}`));
    const visit = (c: Condition | undefined): void => {
      if (!c) return;
      if ("all" in c) return c.all.forEach(visit);
      if ("any" in c) return c.any.forEach(visit);
      if ("not" in c) return visit(c.not);
      if ("agg" in c) {
        const a = c.agg;
        const w = a.windowDays === undefined ? undefined : this.n(a.windowDays);
        if (w !== undefined) {
          const types = a.subtract ? [...a.events, ...a.subtract] : a.events;
          const col = this.column(JSON.stringify({ exit: types, w, where: a.where }), () => sql`min(e.occurred_at) filter (where ${this.filter(types, w, a.where)})`);
          parts.push(days(col, w));
        }
        if (a.metric === "days_since") {
          const v = this.n(c.value);
          if (!Number.isFinite(v)) return;
          const col = this.column(JSON.stringify({ lastAt: a.events, w, where: a.where }), () => sql`max(e.occurred_at) filter (where ${this.filter(a.events, w, a.where)})`);
          for (const k of new Set([Math.floor(v), Math.floor(v) + 1, Math.ceil(v)])) parts.push(days(col, k));
        }
        return;
      }
      if ("match" in c) {
        const w = c.match.windowDays === undefined ? undefined : this.n(c.match.windowDays);
        if (w === undefined) return;
        const col = this.column(JSON.stringify({ exitAny: w }), () => sql`min(e.occurred_at) filter (where ${this.window(w)})`);
        parts.push(days(col, w));
        return;
      }
      if ("score" in c) {
        const v = this.n(c.value);
        if (!Number.isFinite(v)) return;
        const terms = this.set.rules.flatMap((r) => r.then.flatMap((a) => ("score" in a && a.score.name === c.score && r.trigger.events ? [{ add: this.n(a.score.add), hl: a.score.halfLifeDays }] : [])));
        if (!terms.length) return;
        const score = this.score(c.score);
        if (terms.every((t) => t.add > 0)) {
          // Falling only: from S above V it cannot reach V sooner than the fastest half-life takes.
          const hl = Math.min(...terms.map((t) => t.hl));
          if (v > 0) parts.push(sql`(case when (${score}) > ${v}::float8 then ${this.now} + make_interval(secs => ${hl * 86400}::float8 * ln((${score}) / ${v}::float8) / ln(2::float8)) end)`);
        } else parts.push(sql`(case when (${score}) <> 0 then ${this.now} + interval '1 day' end)`);
      }
    };
    for (const r of rules) if (r.trigger.schedule === "daily") visit(r.when);
    // least() skips NULLs: the earliest of the times still ahead, without a subquery per contact.
    return sql`least(${sql.join(
      parts.map((p) => sql`(case when (${p})::timestamptz > ${this.now} then (${p})::timestamptz end)`),
      sql`, `,
    )})`;
  }

  /** Whether a rule runs for a contact in this pass (see `applicable` in the evaluator). */
  applicable(r: Rule, mode: "backfill" | "schedule"): SQL | null {
    if (mode === "schedule") return r.trigger.schedule === "daily" ? sql`true` : null;
    if (r.trigger.schedule === "daily") return sql`true`;
    const types = r.trigger.events!;
    // One bit_or of the event types a contact has serves every rule's trigger.
    const colName = this.column("types", () => sql`bit_or(e.tb)`);
    return sql.raw(`(coalesce(q.${colName}, 0) & ${typeMask(types)}) <> 0`);
  }

  /**
   * The rule chain as a few stacked subqueries over `q` (the level below), each fenced with
   * `offset 0` so rows stream through once and no expression is duplicated by inlining. A level is
   * two subqueries: the first decides which of its rules fire (`f{i}`, from the tags below), the
   * second rewrites the groups their actions touch, each group as one expression that names its
   * state below once (see GroupWork), so any number of rules acting on one group share a level.
   * A new level starts only when a rule reads a group an earlier rule of the current level wrote
   * (the default rules need two or three levels). Returns a function of the base.
   */
  plan(chain: { i: number; r: Rule; applicable: SQL }[]): (base: SQL) => SQL {
    const levels: SQL[][] = [];
    let flags: SQL[] = [];
    let work = new Map<string, GroupWork>();
    const flush = () => {
      if (!flags.length) return;
      levels.push(flags);
      const states: SQL[] = [];
      for (const [g, w] of work) {
        const name = `s${levels.length}_${this.groups.indexOf(g)}`;
        states.push(sql`${w.result()} as ${sql.raw(name)}`);
        this.state.set(g, sql.raw(`q.${name}`));
      }
      if (states.length) levels.push(states);
      flags = [];
      work = new Map();
    };
    for (const { i, r, applicable } of chain) {
      if (condGroups(r.when).some((g) => work.has(g))) flush();
      flags.push(sql`(${applicable} and ${this.cond(r.when)}) as ${sql.raw(`f${i}`)}`);
      const fired = sql.raw(`q.f${i}`);
      for (const a of r.then) {
        const g = actionGroups([a])[0];
        if (!g) continue;
        let w = work.get(g);
        if (!w) work.set(g, (w = new GroupWork(this.state.get(g)!, this.exclusive.has(g))));
        w.apply(a, fired);
      }
    }
    flush();
    return (base) =>
      levels.reduce(
        (inner, cols) => sql`select q.*, ${sql.join(cols, sql`, `)} from (${inner}) q offset 0`,
        base,
      );
  }

  /** The groups' final references after every step. */
  finals(): SQL[] {
    return this.groups.map((g, i) => sql`${this.state.get(g)!} as ${sql.raw(`t${i}`)}`);
  }
}

/**
 * One group's tags through the actions of one level, as an expression that names the group's
 * state below (`old`, a column) once, so its size grows linearly with the actions, never doubling.
 * An exclusive group is its array: set / add replace it, clear empties it, remove drops one tag.
 * A non-exclusive group is tracked per tag the actions name, each a boolean (present below, then
 * `or` fired adds, `and not` fired removes and clears); tags no action names stay unless a clear
 * fired. `fired` is the rule's flag, a column of the level's first subquery.
 */
class GroupWork {
  private expr: SQL;
  private readonly present = new Map<string, SQL>();
  private cleared: SQL | null = null;

  constructor(
    private readonly old: SQL,
    private readonly exclusive: boolean,
  ) {
    this.expr = old;
  }

  private tag(t: string): SQL {
    const p = this.present.get(t);
    if (p) return p;
    const below = sql`(${lit(t)} = any(${this.old}))`;
    return this.cleared ? sql`(${below} and not ${this.cleared})` : below;
  }

  apply(a: Action, fired: SQL): void {
    if (this.exclusive) {
      if ("set" in a || "add" in a) this.expr = sql`(case when ${fired} then ${textArray([("set" in a ? a.set : a.add).tag])} else ${this.expr} end)`;
      else if ("clear" in a) this.expr = sql`(case when ${fired} then '{}'::text[] else ${this.expr} end)`;
      else if ("remove" in a) this.expr = sql`array_remove(${this.expr}, case when ${fired} then ${lit(a.remove.tag)} end)`;
      return;
    }
    if ("set" in a || "add" in a) {
      const t = ("set" in a ? a.set : a.add).tag;
      this.present.set(t, sql`(${this.tag(t)} or ${fired})`);
    } else if ("remove" in a) this.present.set(a.remove.tag, sql`(${this.tag(a.remove.tag)} and not ${fired})`);
    else if ("clear" in a) {
      for (const [t, p] of this.present) this.present.set(t, sql`(${p} and not ${fired})`);
      this.cleared = this.cleared ? sql`(${this.cleared} or ${fired})` : fired;
    }
  }

  result(): SQL {
    if (this.exclusive) return this.expr;
    const named = [...this.present.keys()];
    // The tags below that no action named (kept unless a clear fired), then the named ones present.
    let rest = this.old;
    for (const t of named) rest = sql`array_remove(${rest}, ${lit(t)})`;
    if (this.cleared) rest = sql`(case when ${this.cleared} then '{}'::text[] else ${rest} end)`;
    if (!named.length) return rest;
    return sql`array_cat(${rest}, array_remove(array[${sql.join(
      named.map((t) => sql`case when ${this.present.get(t)!} then ${lit(t)} end`),
      sql`, `,
    )}]::text[], null))`;
  }
}

function condGroups(c: Condition | undefined): string[] {
  if (!c) return [];
  if ("all" in c) return c.all.flatMap(condGroups);
  if ("any" in c) return c.any.flatMap(condGroups);
  if ("not" in c) return condGroups(c.not);
  return "tag" in c ? [c.tag.group] : [];
}

function actionGroups(actions: Action[]): string[] {
  const out: string[] = [];
  for (const a of actions) {
    const g = "set" in a ? a.set.group : "add" in a ? a.add.group : "remove" in a ? a.remove.group : "clear" in a ? a.clear.group : null;
    if (g && !out.includes(g)) out.push(g);
  }
  return out;
}

/**
 * Which fired rule a changed tag is attributed to: the last (in chain order) that acted on it, as
 * the incremental evaluator notes them. `x.name` is the tag, `r.f{i}` whether rule i fired.
 */
function attribution(chain: { i: number; r: Rule }[], group: string, action: "add" | "remove", exclusive: boolean): SQL {
  const whens: SQL[] = [];
  for (const { i, r } of [...chain].reverse()) {
    const conds: SQL[] = [];
    for (const a of r.then) {
      const ref = "set" in a ? a.set : "add" in a ? a.add : null;
      if (ref && ref.group === group) {
        // set / add note the tag they set and (set always, add in exclusive groups) the ones they displace.
        if (action === "add") conds.push(sql`x.name = ${lit(ref.tag)}`);
        else if ("set" in a || exclusive) conds.push(sql`true`);
      }
      if (action === "remove" && "remove" in a && a.remove.group === group) conds.push(sql`x.name = ${lit(a.remove.tag)}`);
      if (action === "remove" && "clear" in a && a.clear.group === group) conds.push(sql`true`);
    }
    if (conds.length) whens.push(sql`when r.${sql.raw(`f${i}`)} and (${sql.join(conds, sql` or `)}) then ${lit(r.id)}`);
  }
  return whens.length ? sql`(case ${sql.join(whens, sql` `)} else '?' end)` : sql`'?'::text`;
}

/** Split the uuid space into `n` equal ranges (random ids spread evenly over it). */
function idRanges(n: number): { lo: string | null; hi: string | null }[] {
  const bound = (k: number) => {
    const v = Math.floor((k * 2 ** 32) / n).toString(16).padStart(8, "0");
    return `${v}-0000-0000-0000-000000000000`;
  };
  return Array.from({ length: n }, (_, k) => ({ lo: k === 0 ? null : bound(k), hi: k === n - 1 ? null : bound(k + 1) }));
}

/**
 * Run every applicable rule over all of a tenant's (not deleted) contacts and write the net
 * changes (or, dry run, report them per tag without writing).
 */
export async function runSetBased({
  ctx,
  mode,
  now,
  rules,
  dryRun = false,
  chunk = CHUNK,
}: {
  ctx: Ctx;
  mode: "backfill" | "schedule";
  now?: Date;
  rules?: ActiveRules;
  dryRun?: boolean;
  /** Contacts per chunk (tests use small chunks to cover the splitting). */
  chunk?: number;
}): Promise<SetBasedResult> {
  const db = dbOf(ctx);
  const { ruleSet, version, exclusiveGroups } = rules ?? (await activeRules(db, ctx.tenantId));
  const nowIso = (now ?? ctx.deps.now()).toISOString();
  const compiler = new Compiler(ruleSet, nowIso, exclusiveGroups);
  // Rules that only open leads or enroll (effects of events, never replayed here) change no tag:
  // leaving them out keeps their conditions (e.g. keyword matches) out of the pass.
  const tagRules = ruleSet.rules.filter((r) => r.then.some((a) => !("lead" in a) && !("enroll" in a)));
  const chain = orderRules(tagRules).flatMap((r) => {
    const applicable = compiler.applicable(r, mode);
    return applicable ? [{ r, applicable }] : [];
  });
  const numbered = chain.map(({ r }, i) => ({ i, r }));
  const chainOver = compiler.plan(chain.map(({ r, applicable }, i) => ({ i, r, applicable })));
  const recheckAt = compiler.recheck(tagRules);
  const written = new Set(chain.flatMap(({ r }) => actionGroups(r.then)));
  const rulesRun = chain.filter(({ r }) => actionGroups(r.then).length).length;
  const empty: SetBasedResult = { rules: rulesRun, added: 0, removed: 0, contacts: 0, ...(dryRun ? { preview: [] } : {}) };
  if (!chain.length || !written.size) return empty;

  const tagRows = await db.select({ id: tags.id, group: tagGroups.key, name: tags.name, ordinal: tags.ordinal }).from(tags).innerJoin(tagGroups, eq(tagGroups.id, tags.groupId)).where(eq(tags.tenantId, ctx.tenantId));
  const groupTags = tagRows.filter((t) => compiler.groups.includes(t.group));
  // Tags the tenant deleted are not written (as in the incremental path); an empty list still needs a well-typed VALUES.
  const tagMap = groupTags.length
    ? sql`(values ${sql.join(
        groupTags.map((t) => sql`(${lit(t.group)}, ${lit(t.name)}, ${t.id}::uuid, ${sql.raw(tagBit(t.ordinal) ? "true" : "false")})`),
        sql`, `,
      )}) as tm(grp, name, tag_id, in_bits)`
    : sql`(select null::text as grp, null::text as name, null::uuid as tag_id, false as in_bits where false) tm`;
  const groupIds = [...new Set(groupTags.map((t) => t.id))];
  // The contact's tag bits after the chain: bits of the groups the rules write come from the final
  // tags, the others' bits are kept.
  const writtenTags = groupTags.filter((t) => written.has(t.group));
  const chainMask = writtenTags.reduce((m, t) => m | tagBit(t.ordinal), 0n);
  const chainBits = writtenTags.filter((t) => tagBit(t.ordinal)).map((t) => sql`(case when ${lit(t.name)} = any(r.${sql.raw(`t${compiler.groups.indexOf(t.group)}`)}) then ${tagBit(t.ordinal).toString()}::bigint else 0 end)`);
  const newBits = sql`((r.old_bits & ~${chainMask.toString()}::bigint) | ${chainBits.length ? sql.join(chainBits, sql` | `) : sql`0::bigint`})`;
  const cols = compiler.columns.length ? compiler.columns : [{ name: "a0", expr: () => sql`count(*)` }];
  const tenant = sql`${ctx.tenantId}::uuid`;

  // The contacts of each chunk, per part of the id space: id ranges over the whole tenant
  // (backfill), or the contacts whose time-based tags are due (nightly), in lists of `chunk` ids.
  type Scope = { lo: string | null; hi: string | null } | { ids: string[] };
  const parts: Scope[][] = Array.from({ length: PARTS }, () => []);
  if (mode === "schedule") {
    const due = rowsOf<{ id: string }>(await db.execute(sql`select contact_id as id from contact_tag_state where tenant_id = ${tenant} and recheck_at <= ${nowIso}::timestamptz order by contact_id`)).map((r) => r.id);
    const byPart: string[][] = Array.from({ length: PARTS }, () => []);
    for (const id of due) byPart[partOf(id)]!.push(id);
    byPart.forEach((ids, p) => {
      for (let i = 0; i < ids.length; i += chunk) parts[p]!.push({ ids: ids.slice(i, i + chunk) });
    });
  } else {
    const [{ n: total } = { n: 0 }] = rowsOf<{ n: number }>(await db.execute(sql`select count(*)::int as n from contacts where tenant_id = ${tenant} and deleted_at is null`));
    // A multiple of the parts, so that each range lies in one part and the parts get as many.
    const per = Math.max(1, Math.ceil(total / chunk / PARTS));
    idRanges(per * PARTS).forEach((r, k) => parts[Math.floor(k / per)]!.push(r));
  }
  // Round robin over the parts: the first chunks of every part, then the second ones, and so on.
  const scopes: { scope: Scope; part: number }[] = [];
  for (let i = 0; parts.some((ps) => i < ps.length); i++) parts.forEach((ps, p) => i < ps.length && scopes.push({ scope: ps[i]!, part: p }));

  const chunkSql = (scope: Scope) => {
    const range = (col: string) =>
      "ids" in scope
        ? sql`${sql.raw(col)} = any(${uuidArray(scope.ids)}::uuid[])`
        : sql.join([...(scope.lo ? [sql`${sql.raw(col)} >= ${scope.lo}::uuid`] : []), ...(scope.hi ? [sql`${sql.raw(col)} < ${scope.hi}::uuid`] : []), sql`true`], sql` and `);
    const current = groupIds.length
      ? sql`select ct.contact_id, ${sql.join(
          compiler.groups.map((g, i) => sql`coalesce(array_agg(tm.name) filter (where tm.grp = ${lit(g)}), '{}'::text[]) as ${sql.raw(`g${i}`)}`),
          sql`, `,
        )}
          from contact_tags ct join ${tagMap} on tm.tag_id = ct.tag_id
          where ct.tenant_id = ${tenant} and ${range("ct.contact_id")} group by ct.contact_id`
      : sql`select null::uuid as contact_id ${sql.join(
          compiler.groups.map((_, i) => sql`, '{}'::text[] as ${sql.raw(`g${i}`)}`),
          sql``,
        )} where false`;
    const base = sql`
      select c.id as cid, c.source, c.gender, c.source_state, k.recheck_at as old_recheck, (k.contact_id is null) as no_recheck, coalesce(k.tag_bits, 0) as old_bits, ${sql.join(
        cols.map((col) => sql.raw(`a.${col.name}`)),
        sql`, `,
      )}, ${sql.join(
        compiler.groups.map((_, i) => sql.raw(`coalesce(cur.g${i}, '{}'::text[]) as g${i}`)),
        sql`, `,
      )}
      from contacts c
      left join (select e.contact_id, ${sql.join(
        cols.map((col) => sql`${col.expr()} as ${sql.raw(col.name)}`),
        sql`, `,
      )} from ${compiler.eventsSource(sql`e.tenant_id = ${tenant} and ${range("e.contact_id")}`)} e group by e.contact_id) a on a.contact_id = c.id
      left join (${current}) cur on cur.contact_id = c.id
      left join contact_tag_state k on k.contact_id = c.id and ${range("k.contact_id")}
      where c.tenant_id = ${tenant} and c.deleted_at is null and ${range("c.id")}`;
    const chained = chainOver(base);
    const result = sql`
      select q.cid, ${sql.join(
        compiler.groups.map((_, i) => sql.raw(`q.g${i}`)),
        sql`, `,
      )}, ${sql.join(compiler.finals(), sql`, `)}, ${sql.join(
        numbered.map(({ i }) => sql.raw(`q.f${i}`)),
        sql`, `,
      )}, q.old_recheck, q.no_recheck, q.old_bits, ${recheckAt} as next_at
      from (${chained}) q`;
    // The differences per group: tags gained and lost, each with the rule it is attributed to. A
    // group whose tags did not change (most of them, for most groups) is passed over before unnesting.
    const diffs = compiler.groups.flatMap((g, i) => {
      if (!written.has(g)) return [];
      const ex = exclusiveGroups.has(g);
      const changed = sql.raw(`r.t${i} <> r.g${i}`);
      return [
        sql`select r.cid, ${lit(g)} as grp, x.name, 'add' as action, ${attribution(numbered, g, "add", ex)} as rule_id from r cross join unnest(r.${sql.raw(`t${i}`)}) x(name) where ${changed} and not (x.name = any(r.${sql.raw(`g${i}`)}))`,
        sql`select r.cid, ${lit(g)} as grp, x.name, 'remove' as action, ${attribution(numbered, g, "remove", ex)} as rule_id from r cross join unnest(r.${sql.raw(`g${i}`)}) x(name) where ${changed} and not (x.name = any(r.${sql.raw(`t${i}`)}))`,
      ];
    });
    return {
      head: sql`with r as materialized (${result}),
      d as materialized (select d.cid, tm.tag_id, tm.in_bits, d.grp, d.name, d.action, d.rule_id from (${sql.join(diffs, sql` union all `)}) d join ${tagMap} on tm.grp = d.grp and tm.name = d.name order by d.cid, tm.tag_id)`,
      range,
    };
  };

  const inTransaction = <T>(fn: (tx: Tx) => Promise<T>): Promise<T> => (ctx.tx ? fn(ctx.tx) : ctx.deps.db.transaction(fn));
  // The statement is large and runs once: compiling it (JIT) took longer than running it. A
  // chunk's aggregates and sorts fit in memory instead of spilling to disk. Every table it reads
  // is read by a range or list of contact ids, through an index: a full scan is never cheaper, yet
  // the planner picks one for contact_tags when its statistics predate the pass (a tenant's first
  // backfill fills it as it goes: a full scan of it per chunk cost that backfill 2–5 CPU-s of ~52 in two runs).
  const settings = async (tx: Tx) => {
    await tx.execute(sql`select set_config('jit', 'off', true), set_config('work_mem', '256MB', true), set_config('enable_seqscan', 'off', true)`);
  };
  const runChunk = async (k: number) => {
    const { scope, part } = scopes[k]!;
    const { head, range } = chunkSql(scope);
    if (dryRun) {
      return inTransaction(async (tx) => {
        await settings(tx);
        return rowsOf<{ grp: string; name: string; action: string; n: number; sample: string[]; contacts: number }>(
          await tx.execute(sql`${head}
          select d.grp, d.name, d.action, count(*)::int as n, (array_agg(d.cid::text order by d.cid))[1:5] as sample, (select count(*)::int from r) as contacts
          from d group by d.grp, d.name, d.action
          union all select null, null, null, 0, null, (select count(*)::int from r)`),
        );
      });
    }
    return inTransaction(async (tx) => {
      await settings(tx);
      await tx.execute(sql`select pg_advisory_xact_lock(hashtext(${tagLockKeys(ctx.tenantId)[part]!}::text))`);
      const stmt = sql`${head},
          del as (delete from contact_tags ct using d where d.action = 'remove' and ct.tenant_id = ${tenant} and ct.contact_id = d.cid and ct.tag_id = d.tag_id),
          -- Plain inserts (no ON CONFLICT, which costs a speculative insertion per row): the chunk
          -- holds the tag lock every other writer of tags shares, so d is exactly what changes.
          -- Rows go in index order (d is materialized by contact, then tag: the primary keys' order,
          -- and per tag ascending contacts for the tag index; both inserts read d in that order, so
          -- one sort serves both), so consecutive index insertions land on the same pages: a fifth
          -- less CPU per backfill than unordered.
          -- A tag with a bit (in_tag_bits) stays out of the tag index: its members are found by their bits.
          ins as (insert into contact_tags (tenant_id, contact_id, tag_id, source, rule_id, rule_version, in_tag_bits)
            select ${tenant}, d.cid, d.tag_id, 'rule', d.rule_id, ${version}::int, d.in_bits from d where d.action = 'add' returning 1),
          hist as (insert into tag_history (tenant_id, contact_id, tag_id, action, source, rule_id, rule_version)
            select ${tenant}, d.cid, d.tag_id, d.action, 'rule', d.rule_id, ${version}::int from d
            returning action),
          -- The contact's tag bits, and the next time its time-based tags may change. A recheck mark
          -- made meanwhile by a writer without the tag lock keeps '-infinity': only a row still
          -- holding what this chunk read gets the new time.
          nb as (select r.cid, r.next_at, r.old_recheck, r.no_recheck, ${newBits} as bits from r),
          rcu as (update contact_tag_state k
            set recheck_at = case when k.recheck_at is not distinct from nb.old_recheck then nb.next_at else k.recheck_at end, tag_bits = nb.bits
            from nb where ${range("k.contact_id")} and k.contact_id = nb.cid
              and (k.tag_bits <> nb.bits or (nb.next_at is distinct from nb.old_recheck and k.recheck_at is not distinct from nb.old_recheck)) returning 1),
          rci as (insert into contact_tag_state (contact_id, tenant_id, recheck_at, tag_bits) select nb.cid, ${tenant}, nb.next_at, nb.bits from nb where nb.no_recheck
            on conflict (contact_id) do nothing returning 1)${
              "ids" in scope
                ? sql`,
          -- Due contacts that were deleted: nothing to evaluate until they come back (an event makes them due).
          gone as (update contact_tag_state k set recheck_at = null where k.contact_id = any(${uuidArray(scope.ids)}::uuid[])
            and k.recheck_at <= ${nowIso}::timestamptz and not exists (select 1 from r where r.cid = k.contact_id) returning 1)`
                : sql``
            }
          select null as grp, null as name, h.action, count(*)::int as n, null as sample, (select count(*)::int from r) as contacts from hist h group by h.action
          union all select null, null, null, 0, null, (select count(*)::int from r)`;
      return rowsOf<{ grp: string; name: string; action: string; n: number; sample: string[]; contacts: number }>(await tx.execute(stmt));
    });
  };

  // PARALLEL lanes, each on its own connection, each taking the next chunk of a part no other lane
  // is working (there are twice as many parts as lanes, so there always is one until the end).
  const results: Awaited<ReturnType<typeof runChunk>>[] = [];
  if (ctx.tx) {
    // Inside a caller's transaction (tests, one-off tools): one chunk at a time on that transaction.
    for (let k = 0; k < scopes.length; k++) results[k] = await runChunk(k);
  } else {
    const taken = new Set<number>();
    const busy = new Set<number>();
    const lane = async () => {
      for (;;) {
        const k = scopes.findIndex((s, i) => !taken.has(i) && !busy.has(s.part));
        if (k < 0) return;
        taken.add(k);
        busy.add(scopes[k]!.part);
        try {
          results[k] = await runChunk(k);
        } finally {
          busy.delete(scopes[k]!.part);
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(PARALLEL, scopes.length) }, lane));
  }

  const out: SetBasedResult = { rules: rulesRun, added: 0, removed: 0, contacts: 0 };
  const byTag = new Map<string, NonNullable<SetBasedResult["preview"]>[number]>();
  for (const rows of results) {
    for (const row of rows) {
      if (row.action === null) {
        out.contacts += row.contacts;
        continue;
      }
      if (row.action === "add") out.added += row.n;
      else out.removed += row.n;
      if (!dryRun) continue;
      const key = `${row.grp}:${row.name}`;
      const e = byTag.get(key) ?? { group: row.grp, tag: row.name, gains: 0, losses: 0, sampleGains: [], sampleLosses: [] };
      if (row.action === "add") {
        e.gains += row.n;
        e.sampleGains = [...e.sampleGains, ...row.sample].sort().slice(0, 5);
      } else {
        e.losses += row.n;
        e.sampleLosses = [...e.sampleLosses, ...row.sample].sort().slice(0, 5);
      }
      byTag.set(key, e);
    }
  }
  if (dryRun) out.preview = [...byTag.values()].sort((a, b) => (a.group === b.group ? (a.tag < b.tag ? -1 : 1) : a.group < b.group ? -1 : 1));
  return out;
}

