import type { Action, Aggregate, Comparison, Condition, NumberOrParam, Rule, RuleSet } from "./rules";

/**
 * The incremental evaluator, pure: facts about one contact + `now` + the rule set in, tag changes
 * out. Its semantics are the contract the set-based SQL evaluator reproduces:
 * - Applicable rules: on an event, those whose trigger lists its type; on the nightly pass, those
 *   with `schedule: daily`; on a backfill, scheduled rules and event rules for which the contact has
 *   at least one event of a trigger type. They run in (priority, id) order against the working tag
 *   state, so a later rule sees what an earlier one set; within an exclusive group the last set wins.
 * - Aggregates look at the contact's events with occurredAt <= now, within (now - windowDays, now]
 *   when a window is given. count and sum of nothing are 0; min, max, last and days_since of
 *   nothing are null, and every comparison with null is false.
 * - A score is a function of events: each event whose type triggers a rule with that score action
 *   adds `add`, halving every `halfLifeDays` until now. Score actions change no tags.
 */

export interface EventFact {
  id: string;
  type: string;
  occurredAt: Date;
  data: Record<string, unknown>;
}

export interface ContactFacts {
  fields: { source: string | null; gender: string | null; sourceState: string | null };
  /** Current tags: group key -> tag names. */
  tags: Record<string, string[]>;
  /** Every event of the contact (any order). */
  events: EventFact[];
}

export type EvalTrigger = { kind: "event"; event: EventFact } | { kind: "schedule" } | { kind: "backfill" };

export interface TagChange {
  action: "add" | "remove";
  group: string;
  tag: string;
  ruleId: string;
}

export type Effect = { kind: "lead"; ruleId: string; source: string; score?: number | undefined } | { kind: "enroll"; ruleId: string; calendar: string };

export interface EvalResult {
  changes: TagChange[];
  effects: Effect[];
  /** The tag state after the pass. */
  tags: Record<string, string[]>;
  /** Rules whose condition held, in the order they ran. */
  fired: string[];
}

const DAY = 86_400_000;

/** Fold text for keyword matching: full-width to half-width (NFKC) and lower case. */
export function foldText(s: string): string {
  return s.normalize("NFKC").toLowerCase();
}

export function resolve(v: NumberOrParam, params: Record<string, number>): number {
  return typeof v === "number" ? v : (params[v.param] ?? Number.NaN);
}

function inWindow(e: EventFact, now: Date, windowDays: number | undefined): boolean {
  const t = e.occurredAt.getTime();
  if (t > now.getTime()) return false;
  return windowDays === undefined || t > now.getTime() - windowDays * DAY;
}

export function aggregate(a: Aggregate, events: EventFact[], now: Date, params: Record<string, number>): number | null {
  const windowDays = a.windowDays === undefined ? undefined : resolve(a.windowDays, params);
  const types = a.subtract ? [...a.events, ...a.subtract] : a.events;
  const matching = events.filter((e) => types.includes(e.type) && inWindow(e, now, windowDays) && (!a.where || Object.entries(a.where).every(([k, v]) => e.data[k] === v)));
  const num = (e: EventFact) => {
    const v = a.field ? e.data[a.field] : undefined;
    return typeof v === "number" && Number.isFinite(v) ? v : null;
  };
  switch (a.metric) {
    case "count":
      return matching.length;
    case "sum":
      return matching.reduce((s, e) => (a.subtract?.includes(e.type) ? s - (num(e) ?? 0) : s + (num(e) ?? 0)), 0);
    case "min":
    case "max": {
      const vals = matching.map(num).filter((v): v is number => v !== null);
      if (!vals.length) return null;
      return a.metric === "min" ? Math.min(...vals) : Math.max(...vals);
    }
    case "last": {
      const latest = latestOf(matching);
      return latest ? num(latest) : null;
    }
    case "days_since": {
      const latest = latestOf(matching);
      return latest ? Math.floor((now.getTime() - latest.occurredAt.getTime()) / DAY) : null;
    }
  }
}

function latestOf(events: EventFact[]): EventFact | undefined {
  let best: EventFact | undefined;
  for (const e of events) if (!best || e.occurredAt > best.occurredAt || (e.occurredAt.getTime() === best.occurredAt.getTime() && e.id > best.id)) best = e;
  return best;
}

export function compare(left: number | null, op: Comparison, right: number): boolean {
  if (left === null || Number.isNaN(right)) return false;
  switch (op) {
    case "eq":
      return left === right;
    case "ne":
      return left !== right;
    case "gt":
      return left > right;
    case "gte":
      return left >= right;
    case "lt":
      return left < right;
    case "lte":
      return left <= right;
  }
}

/** The texts keyword matching reads from one event, by source. */
export function textsOf(e: EventFact, sources: readonly string[]): string[] {
  const out: string[] = [];
  const str = (v: unknown) => (typeof v === "string" && v ? [v] : []);
  if (sources.includes("message") && e.type === "message_received") out.push(...str(e.data.text));
  if (sources.includes("article") && e.type === "article_read") out.push(...str(e.data.topic), ...str(e.data.title));
  if (sources.includes("items")) {
    if (e.type === "appointment_booked" || e.type === "visit") out.push(...str(e.data.item));
    if ((e.type === "purchase" || e.type === "consultation_outcome") && Array.isArray(e.data.items)) for (const i of e.data.items) out.push(...str(i));
  }
  return out;
}

/** Score value at `now` (see the module comment). */
export function scoreOf(name: string, rules: Rule[], events: EventFact[], now: Date, params: Record<string, number>): number {
  let total = 0;
  for (const r of rules) {
    for (const a of r.then) {
      if (!("score" in a) || a.score.name !== name || !r.trigger.events) continue;
      const add = resolve(a.score.add, params);
      for (const e of events) {
        if (!r.trigger.events.includes(e.type) || e.occurredAt.getTime() > now.getTime()) continue;
        total += add * 0.5 ** ((now.getTime() - e.occurredAt.getTime()) / (a.score.halfLifeDays * DAY));
      }
    }
  }
  return total;
}

function holds(c: Condition | undefined, facts: ContactFacts, tags: Record<string, string[]>, now: Date, set: RuleSet): boolean {
  if (!c) return true;
  if ("all" in c) return c.all.every((x) => holds(x, facts, tags, now, set));
  if ("any" in c) return c.any.some((x) => holds(x, facts, tags, now, set));
  if ("not" in c) return !holds(c.not, facts, tags, now, set);
  if ("agg" in c) return compare(aggregate(c.agg, facts.events, now, set.params), c.op, resolve(c.value, set.params));
  if ("tag" in c) {
    const have = tags[c.tag.group] ?? [];
    const hit = c.tag.in ? have.some((t) => c.tag.in!.includes(t)) : have.length > 0;
    return (c.present ?? true) ? hit : !hit;
  }
  if ("field" in c) {
    const v = facts.fields[c.field];
    if (c.op === "in") return v !== null && (Array.isArray(c.value) ? c.value : [c.value]).includes(v);
    const want = Array.isArray(c.value) ? c.value[0] : c.value;
    return c.op === "eq" ? v === want : v !== want;
  }
  if ("match" in c) {
    const words = (c.match.need ? (set.needs[c.match.need] ?? []) : (c.match.keywords ?? [])).map(foldText);
    const sources = c.match.in ?? ["message", "article", "items"];
    const windowDays = c.match.windowDays === undefined ? undefined : resolve(c.match.windowDays, set.params);
    return facts.events.some((e) => inWindow(e, now, windowDays) && textsOf(e, sources).some((t) => words.some((w) => foldText(t).includes(w))));
  }
  return compare(scoreOf(c.score, set.rules, facts.events, now, set.params), c.op, resolve(c.value, set.params));
}

export function applicable(r: Rule, trigger: EvalTrigger, eventTypes: Set<string>): boolean {
  if (trigger.kind === "event") return Boolean(r.trigger.events?.includes(trigger.event.type));
  if (trigger.kind === "schedule") return r.trigger.schedule === "daily";
  return r.trigger.schedule === "daily" || Boolean(r.trigger.events?.some((t) => eventTypes.has(t)));
}

export function orderRules(rules: Rule[]): Rule[] {
  return [...rules].sort((a, b) => a.priority - b.priority || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}

/** Run the applicable rules for one contact and return the tag changes against its current tags. */
export function evaluate(facts: ContactFacts, trigger: EvalTrigger, now: Date, set: RuleSet, exclusiveGroups: ReadonlySet<string>): EvalResult {
  const tags: Record<string, string[]> = Object.fromEntries(Object.entries(facts.tags).map(([g, t]) => [g, [...t]]));
  const eventTypes = new Set(facts.events.map((e) => e.type));
  const lastRule = new Map<string, string>();
  const effects: Effect[] = [];
  const fired: string[] = [];
  for (const r of orderRules(set.rules)) {
    if (!applicable(r, trigger, eventTypes)) continue;
    if (!holds(r.when, facts, tags, now, set)) continue;
    fired.push(r.id);
    for (const a of r.then) apply(a, r.id, tags, lastRule, effects, exclusiveGroups);
  }
  return { changes: diff(facts.tags, tags, lastRule), effects, tags, fired };
}

function apply(a: Action, ruleId: string, tags: Record<string, string[]>, lastRule: Map<string, string>, effects: Effect[], exclusive: ReadonlySet<string>): void {
  const note = (group: string, tag: string) => lastRule.set(`${group}\u0000${tag}`, ruleId);
  if ("set" in a) {
    const { group, tag } = a.set;
    for (const t of tags[group] ?? []) if (t !== tag) note(group, t);
    tags[group] = exclusive.has(group) ? [tag] : [...new Set([...(tags[group] ?? []), tag])];
    note(group, tag);
  } else if ("add" in a) {
    const { group, tag } = a.add;
    if (exclusive.has(group)) {
      for (const t of tags[group] ?? []) if (t !== tag) note(group, t);
      tags[group] = [tag];
    } else tags[group] = [...new Set([...(tags[group] ?? []), tag])];
    note(group, tag);
  } else if ("remove" in a) {
    tags[a.remove.group] = (tags[a.remove.group] ?? []).filter((t) => t !== a.remove.tag);
    note(a.remove.group, a.remove.tag);
  } else if ("clear" in a) {
    for (const t of tags[a.clear.group] ?? []) note(a.clear.group, t);
    tags[a.clear.group] = [];
  } else if ("lead" in a) effects.push({ kind: "lead", ruleId, source: a.lead.source, score: a.lead.score });
  else if ("enroll" in a) effects.push({ kind: "enroll", ruleId, calendar: a.enroll.calendar });
}

function diff(before: Record<string, string[]>, after: Record<string, string[]>, lastRule: Map<string, string>): TagChange[] {
  const out: TagChange[] = [];
  for (const g of new Set([...Object.keys(before), ...Object.keys(after)])) {
    const b = new Set(before[g] ?? []);
    const a = new Set(after[g] ?? []);
    for (const t of b) if (!a.has(t)) out.push({ action: "remove", group: g, tag: t, ruleId: lastRule.get(`${g}\u0000${t}`) ?? "?" });
    for (const t of a) if (!b.has(t)) out.push({ action: "add", group: g, tag: t, ruleId: lastRule.get(`${g}\u0000${t}`) ?? "?" });
  }
  return out;
}
