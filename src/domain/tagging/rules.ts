import { z } from "zod";
import { EVENT_TYPES } from "../events/types";

/**
 * The tag rule language (shared/DESIGN.md section 4). A rule is data: a trigger, a condition and
 * actions. The same definition is evaluated incrementally per event and set-based in SQL, so every
 * construct here has a meaning in both (see the evaluators).
 */

const eventType = z.enum(EVENT_TYPES as [string, ...string[]]);
const id = z.string().regex(/^[a-z0-9][a-z0-9_-]{1,63}$/, "lowercase letters, digits, _ and -");

/** A number, or a reference to a parameter of the rule set (thresholds marketing can tune). */
export const NumberOrParam = z.union([z.number().finite(), z.object({ param: id }).strict()]);
export type NumberOrParam = z.infer<typeof NumberOrParam>;

export const Comparison = z.enum(["eq", "ne", "gt", "gte", "lt", "lte"]);
export type Comparison = z.infer<typeof Comparison>;

/** Event payload fields an aggregate can sum or compare (numbers in the typed event schemas). */
export const NUMERIC_FIELDS = ["amount", "minutes", "dwellSeconds", "score"] as const;

/** An aggregate over the contact's events, optionally within the last `windowDays` days. */
export const Aggregate = z
  .object({
    metric: z.enum(["count", "sum", "min", "max", "last", "days_since"]),
    events: z.array(eventType).min(1),
    /** For sum/min/max/last: the numeric data field (amount, minutes, dwellSeconds, score). */
    field: z.enum(NUMERIC_FIELDS).optional(),
    /** For sum: events whose field counts negative, e.g. refunds in a spend total. */
    subtract: z.array(eventType).min(1).optional(),
    windowDays: NumberOrParam.optional(),
    /** Only events whose data matches, e.g. { outcome: "converted" }. */
    where: z.record(z.string().regex(/^[A-Za-z][A-Za-z0-9_]*$/), z.union([z.string(), z.number(), z.boolean()])).optional(),
  })
  .strict()
  .superRefine((a, ctx) => {
    const needsField = a.metric === "sum" || a.metric === "min" || a.metric === "max" || a.metric === "last";
    if (needsField && !a.field) ctx.addIssue({ code: "custom", path: ["field"], message: `is required for ${a.metric}` });
    if (!needsField && a.field) ctx.addIssue({ code: "custom", path: ["field"], message: `is not used by ${a.metric}` });
    if (a.subtract && a.metric !== "sum") ctx.addIssue({ code: "custom", path: ["subtract"], message: "is only used by sum" });
    const both = a.subtract?.filter((t) => a.events.includes(t));
    if (both?.length) ctx.addIssue({ code: "custom", path: ["subtract"], message: `${both.join(", ")} cannot both add and subtract` });
  });
export type Aggregate = z.infer<typeof Aggregate>;

/** Where keyword matching looks: message text, article topics, consultation / purchase / visit items. */
export const TEXT_SOURCES = ["message", "article", "items"] as const;

export type Condition =
  | { all: Condition[] }
  | { any: Condition[] }
  | { not: Condition }
  | { agg: Aggregate; op: Comparison; value: NumberOrParam }
  | { tag: { group: string; in?: string[] | undefined }; present?: boolean | undefined }
  | { field: "source" | "gender" | "sourceState"; op: "eq" | "ne" | "in"; value: string | string[] }
  | { match: { need?: string | undefined; keywords?: string[] | undefined; in?: (typeof TEXT_SOURCES)[number][] | undefined; windowDays?: NumberOrParam | undefined } }
  | { score: string; op: Comparison; value: NumberOrParam };

/**
 * Pick a union branch by the object's key (all / any / not / agg / tag / field / match / score),
 * so a mistake is reported at its real path (when.all[1].agg.metric) rather than as "no branch matched".
 */
function keyedUnion<T>(name: string, branches: Record<string, () => z.ZodType>): z.ZodType<T> {
  return z.unknown().transform((value, ctx) => {
    const key = value && typeof value === "object" && !Array.isArray(value) ? Object.keys(branches).find((k) => k in (value as object)) : undefined;
    if (!key) {
      ctx.addIssue({ code: "custom", message: `a ${name} needs one of: ${Object.keys(branches).join(", ")}` });
      return z.NEVER;
    }
    const r = branches[key]!().safeParse(value);
    if (!r.success) {
      for (const i of r.error.issues) ctx.addIssue({ code: "custom", message: i.message, path: i.path as (string | number)[] });
      return z.NEVER;
    }
    return r.data as T;
  }) as unknown as z.ZodType<T>;
}

export const Condition: z.ZodType<Condition> = keyedUnion<Condition>("condition", {
  all: () => z.object({ all: z.array(Condition).min(1) }).strict(),
  any: () => z.object({ any: z.array(Condition).min(1) }).strict(),
  not: () => z.object({ not: Condition }).strict(),
  agg: () => z.object({ agg: Aggregate, op: Comparison, value: NumberOrParam }).strict(),
  tag: () => z.object({ tag: z.object({ group: id, in: z.array(z.string().min(1)).min(1).optional() }).strict(), present: z.boolean().optional() }).strict(),
  field: () => z.object({ field: z.enum(["source", "gender", "sourceState"]), op: z.enum(["eq", "ne", "in"]), value: z.union([z.string(), z.array(z.string()).min(1)]) }).strict(),
  match: () =>
    z
      .object({
        match: z
          .object({
            need: z.string().min(1).optional(),
            keywords: z.array(z.string().min(1)).min(1).optional(),
            in: z.array(z.enum(TEXT_SOURCES)).min(1).optional(),
            windowDays: NumberOrParam.optional(),
          })
          .strict()
          .refine((m) => Boolean(m.need) !== Boolean(m.keywords), { message: "give either need or keywords" }),
      })
      .strict(),
  score: () => z.object({ score: id, op: Comparison, value: NumberOrParam }).strict(),
});

const tagRef = z.object({ group: id, tag: z.string().min(1).max(30) }).strict();

export type Action =
  | { set: { group: string; tag: string } }
  | { add: { group: string; tag: string } }
  | { remove: { group: string; tag: string } }
  | { clear: { group: string } }
  | { score: { name: string; add: NumberOrParam; halfLifeDays: number } }
  | { lead: { source: string; score?: number | undefined } }
  | { enroll: { calendar: string } };

export const Action: z.ZodType<Action> = keyedUnion<Action>("action", {
  /** The contact holds this tag of an exclusive group, replacing the group's other tag. */
  set: () => z.object({ set: tagRef }).strict(),
  add: () => z.object({ add: tagRef }).strict(),
  remove: () => z.object({ remove: tagRef }).strict(),
  /** The contact holds no tag of this group (e.g. no spend left in the window). */
  clear: () => z.object({ clear: z.object({ group: id }).strict() }).strict(),
  /** Add to a decaying score (halves every halfLifeDays). */
  score: () => z.object({ score: z.object({ name: id, add: NumberOrParam, halfLifeDays: z.number().positive().max(3650) }).strict() }).strict(),
  /** Open (or raise) a lead for the contact. */
  lead: () => z.object({ lead: z.object({ source: z.string().min(1).max(64), score: z.number().int().min(0).max(100).optional() }).strict() }).strict(),
  /** Enroll the contact in a relative calendar. */
  enroll: () => z.object({ enroll: z.object({ calendar: z.string().min(1).max(100) }).strict() }).strict(),
});


export const Trigger = z
  .object({
    /** Evaluated when one of these events arrives. */
    events: z.array(eventType).min(1).optional(),
    /** Evaluated by the nightly pass over all contacts (time-based rules such as 沉睡). */
    schedule: z.enum(["daily"]).optional(),
  })
  .strict()
  .refine((t) => t.events || t.schedule, { message: "give events, schedule or both" });
export type Trigger = z.infer<typeof Trigger>;

export const Rule = z
  .object({
    id,
    name: z.string().min(1).max(100),
    description: z.string().max(2000).optional(),
    trigger: Trigger,
    /** Omitted: always true when triggered. */
    when: Condition.optional(),
    then: z.array(Action).min(1),
    /** Lower runs first; within a group the last matching set wins. */
    priority: z.number().int().min(0).max(1000).default(100),
  })
  .strict();
export type Rule = z.infer<typeof Rule>;

export const RuleFile = z
  .object({
    /** Thresholds and windows marketing can tune without touching rule logic. */
    params: z.record(id, z.number().finite()).default({}),
    rules: z.array(z.unknown()).min(1),
  })
  .strict();

/** Need types and the words that reveal them (message text, article topics, items). */
export const NeedDictionary = z.record(z.string().min(1).max(30), z.array(z.string().min(1)).min(1));
export type NeedDictionary = z.infer<typeof NeedDictionary>;

export interface RuleSet {
  params: Record<string, number>;
  needs: NeedDictionary;
  rules: Rule[];
}

export interface RuleIssue {
  file: string;
  ruleId: string | null;
  /** Path inside the rule, e.g. `when.all[1].agg.metric`. */
  path: string;
  message: string;
}

function pathOf(path: readonly PropertyKey[]): string {
  let out = "";
  for (const p of path) out += typeof p === "number" ? `[${p}]` : out ? `.${String(p)}` : String(p);
  return out || "(rule)";
}

/**
 * Validate a rule set's rules: each rule by the schema, then what the schema cannot see
 * (unknown params and groups, duplicate ids, `set` on a non-exclusive group, unknown needs).
 */
export function validateRules(
  input: { file: string; rules: unknown[]; params: Record<string, number> }[],
  ctx: { groups: Record<string, { exclusive: boolean; tags: readonly string[] }>; needs: NeedDictionary },
): { rules: Rule[]; issues: RuleIssue[] } {
  const issues: RuleIssue[] = [];
  const rules: Rule[] = [];
  const seen = new Map<string, string>();
  const params = Object.assign({}, ...input.map((f) => f.params)) as Record<string, number>;
  for (const f of input) {
    f.rules.forEach((raw, i) => {
      const rid = typeof (raw as { id?: unknown })?.id === "string" ? (raw as { id: string }).id : null;
      const parsed = Rule.safeParse(raw);
      if (!parsed.success) {
        for (const iss of parsed.error.issues) issues.push({ file: f.file, ruleId: rid ?? `#${i + 1}`, path: pathOf(iss.path), message: iss.message });
        return;
      }
      const r = parsed.data;
      const add = (path: string, message: string) => issues.push({ file: f.file, ruleId: r.id, path, message });
      if (seen.has(r.id)) add("id", `duplicate rule id (also in ${seen.get(r.id)})`);
      seen.set(r.id, f.file);
      walkParams(r, (path, name) => {
        if (!(name in params)) add(path, `unknown param ${name}`);
      });
      r.then.forEach((a, j) => {
        const ref = "set" in a ? a.set : "add" in a ? a.add : "remove" in a ? a.remove : null;
        if (!ref) return;
        const g = ctx.groups[ref.group];
        const key = Object.keys(a)[0]!;
        if (!g) return add(`then[${j}].${key}.group`, `unknown tag group ${ref.group}`);
        if (!g.tags.includes(ref.tag)) add(`then[${j}].${key}.tag`, `${ref.tag} is not a tag of ${ref.group}`);
        if (key === "set" && !g.exclusive) add(`then[${j}].set`, `${ref.group} is not exclusive: use add/remove`);
      });
      r.then.forEach((a, j) => {
        if ("clear" in a && !ctx.groups[a.clear.group]) add(`then[${j}].clear.group`, `unknown tag group ${a.clear.group}`);
        // A score is a function of events (each scoring event adds, then decays), which both
        // evaluators compute the same way; a condition would make it depend on evaluation order.
        if ("score" in a && (r.when || !r.trigger.events)) add(`then[${j}].score`, "score actions go in rules with event triggers and no condition");
      });
      walkConditions(r.when, "when", (c, path) => {
        if ("tag" in c && !ctx.groups[c.tag.group]) add(`${path}.tag.group`, `unknown tag group ${c.tag.group}`);
        if ("tag" in c && ctx.groups[c.tag.group] && c.tag.in) for (const t of c.tag.in) if (!ctx.groups[c.tag.group]!.tags.includes(t)) add(`${path}.tag.in`, `${t} is not a tag of ${c.tag.group}`);
        if ("match" in c && c.match.need && !ctx.needs[c.match.need]) add(`${path}.match.need`, `unknown need ${c.match.need}`);
      });
      rules.push(r);
    });
  }
  return { rules, issues };
}

export function walkConditions(c: Condition | undefined, path: string, visit: (c: Condition, path: string) => void): void {
  if (!c) return;
  visit(c, path);
  if ("all" in c) c.all.forEach((x, i) => walkConditions(x, `${path}.all[${i}]`, visit));
  else if ("any" in c) c.any.forEach((x, i) => walkConditions(x, `${path}.any[${i}]`, visit));
  else if ("not" in c) walkConditions(c.not, `${path}.not`, visit);
}

function walkParams(r: Rule, visit: (path: string, name: string) => void): void {
  const check = (v: NumberOrParam | undefined, path: string) => {
    if (v && typeof v === "object") visit(path, v.param);
  };
  walkConditions(r.when, "when", (c, path) => {
    if ("agg" in c) {
      check(c.value, `${path}.value`);
      check(c.agg.windowDays, `${path}.agg.windowDays`);
    } else if ("score" in c) check(c.value, `${path}.value`);
    else if ("match" in c) check(c.match.windowDays, `${path}.match.windowDays`);
  });
  r.then.forEach((a, j) => {
    if ("score" in a) check(a.score.add, `then[${j}].score.add`);
  });
}

export function formatRuleIssue(i: RuleIssue): string {
  return i.ruleId ? `${i.file}: rule ${i.ruleId}: ${i.path}: ${i.message}` : `${i.file}: ${i.path}: ${i.message}`;
}
