import { Document, isMap, isScalar, isSeq, LineCounter, parseDocument, visit, type Node } from "yaml";
import { DEFAULT_TAG_GROUPS } from "../../domain/tagging/default-groups";
import type { Action, Comparison, Condition, NumberOrParam } from "../../domain/tagging/rules";
import { escapeHtml } from "../html";
import { hasMessage, type MessageKey, type Translate } from "./i18n";
import { clip } from "./present";

/**
 * What the marketing pages print, shaped from service results: the rule set as YAML (the editor's
 * format, that of tagging-rules/), rules summarised per tag group, refusals placed in the YAML,
 * segment expressions with a caret under an error, and the segment size chart (SVG).
 */

export interface Definition {
  params?: Record<string, number>;
  needs?: Record<string, string[]>;
  rules: unknown[];
}

/** A rule set as YAML in the style of tagging-rules/: short collections on one line. */
export function definitionYaml(def: Definition): string {
  const doc = new Document({ params: def.params ?? {}, needs: def.needs ?? {}, rules: def.rules });
  const short = (n: Node) => JSON.stringify(n.toJSON()).length <= 72;
  visit(doc, {
    // A rule itself stays a block (id, name, trigger … one per line); what is inside it may fold.
    Map: (_k, n) => {
      if (!n.has("then") && !n.has("rules") && short(n)) n.flow = true;
    },
    Seq: (_k, n) => {
      if (short(n)) n.flow = true;
    },
  });
  return doc.toString({ lineWidth: 0, flowCollectionPadding: false });
}

export interface Refusal {
  /** The rule's id (or #n for a rule without one); null: the set as a whole (params, needs, YAML). */
  ruleId: string | null;
  path: string;
  message: string;
  /** 1-based line in the submitted YAML, when we could place it. */
  line?: number | undefined;
}

/** The submitted YAML as a value, or the syntax errors with their line and column. */
export function parseDraftYaml(text: string): { value: unknown; lines: LineCounter; doc: Document.Parsed } | { errors: Refusal[] } {
  const lines = new LineCounter();
  const doc = parseDocument(text, { uniqueKeys: true, lineCounter: lines, prettyErrors: true });
  if (doc.errors.length) {
    return {
      errors: doc.errors.map((e) => ({ ruleId: null, path: e.linePos?.[0] ? `${e.linePos[0].line}:${e.linePos[0].col}` : "(yaml)", message: e.message.split("\n")[0]!, line: e.linePos?.[0]?.line })),
    };
  }
  return { value: doc.toJS(), lines, doc };
}

/** `when.all[1].agg.metric` -> ["when", "all", 1, "agg", "metric"]. */
function pathKeys(path: string): (string | number)[] {
  if (!path || path === "(rule)") return [];
  const out: (string | number)[] = [];
  for (const m of path.matchAll(/([^.[\]]+)|\[(\d+)\]/g)) out.push(m[2] !== undefined ? Number(m[2]) : m[1]!);
  return out;
}

/**
 * The service's refusals (`rules.<rule id>.<path>`, `params.x`, `rules`) as rows naming the rule and
 * the field, each placed on the line of the YAML where the bad field (or the nearest part of it that
 * exists) is written.
 */
export function placeRefusals(issues: { field: string; message: string }[], parsed: { value: unknown; lines: LineCounter; doc: Document.Parsed } | null): Refusal[] {
  const rules = parsed && parsed.value && typeof parsed.value === "object" ? (parsed.value as { rules?: unknown }).rules : undefined;
  return issues.map((i) => {
    const m = /^rules\.([^.]+)(?:\.(.*))?$/.exec(i.field);
    const ruleId = m && !/^\d+$/.test(m[1]!) ? m[1]! : null;
    const path = ruleId ? (m![2] ?? "(rule)") : i.field;
    // "rule need-acne: Invalid input" -> "Invalid input": the rule is named in its own column.
    const message = ruleId ? i.message.replace(/^rule [^:]+: /, "") : i.message;
    let keys: (string | number)[] = pathKeys(i.field);
    if (ruleId && Array.isArray(rules)) {
      const index = ruleId.startsWith("#") ? Number(ruleId.slice(1)) - 1 : rules.findIndex((r) => (r as { id?: unknown })?.id === ruleId);
      keys = index >= 0 ? ["rules", index, ...pathKeys(path)] : ["rules"];
    }
    let line: number | undefined;
    if (parsed) {
      // The deepest node of the path that exists: a missing field points at its parent.
      // (The line of the field's key, so a block value points at its key, not its first entry.)
      for (let n = keys.length; n > 0 && line === undefined; n--) {
        const parent = n === 1 ? parsed.doc.contents : parsed.doc.getIn(keys.slice(0, n - 1), true);
        const key = keys[n - 1];
        let node: unknown;
        if (isMap(parent)) node = parent.items.find((pair) => (isScalar(pair.key) ? pair.key.value : pair.key) === key)?.key;
        else if (isSeq(parent) && typeof key === "number") node = parent.items[key];
        const range = (node as Node | undefined)?.range;
        if (range) line = parsed.lines.linePos(range[0]).line;
      }
    }
    return { ruleId, path, message, line };
  });
}

// ---- the rule set, summarised per tag group ----

const OPS: Record<Comparison, string> = { eq: "=", ne: "≠", gt: ">", gte: "≥", lt: "<", lte: "≤" };
const GROUP_KEYS: readonly string[] = DEFAULT_TAG_GROUPS.map((g) => g.key);

function num(v: NumberOrParam | undefined, params: Record<string, number>): string {
  if (v === undefined) return "";
  if (typeof v === "number") return String(v);
  return params[v.param] !== undefined ? `${v.param} (${params[v.param]})` : v.param;
}


export function actionText(t: Translate, a: Action, params: Record<string, number>): string {
  if ("set" in a) return t("rules.act.set", { tag: `${a.set.group}:${a.set.tag}` });
  if ("add" in a) return t("rules.act.add", { tag: `${a.add.group}:${a.add.tag}` });
  if ("remove" in a) return t("rules.act.remove", { tag: `${a.remove.group}:${a.remove.tag}` });
  if ("clear" in a) return t("rules.act.clear", { group: a.clear.group });
  if ("score" in a) return t("rules.act.score", { name: a.score.name, add: num(a.score.add, params), days: a.score.halfLifeDays });
  if ("lead" in a) return t("rules.act.lead", { source: a.lead.source, score: a.lead.score ?? 0 });
  return t("rules.act.enroll", { calendar: a.enroll.calendar });
}

export function conditionText(t: Translate, c: Condition, params: Record<string, number>, depth = 0): string {
  const wrap = (s: string) => (depth > 0 ? `(${s})` : s);
  if ("all" in c) return wrap(c.all.map((x) => conditionText(t, x, params, depth + 1)).join(t("rules.cond.and")));
  if ("any" in c) return wrap(c.any.map((x) => conditionText(t, x, params, depth + 1)).join(t("rules.cond.or")));
  if ("not" in c) return t("rules.cond.not", { cond: conditionText(t, c.not, params, depth + 1) });
  if ("agg" in c) {
    const a = c.agg;
    const field = a.field ? `.${a.field}` : "";
    const minus = a.subtract ? ` − ${a.subtract.join("、")}` : "";
    const where = a.where ? ` [${Object.entries(a.where).map(([k, v]) => `${k}=${v}`).join(", ")}]` : "";
    const win = a.windowDays !== undefined ? t("rules.cond.window", { days: num(a.windowDays, params) }) : "";
    return `${a.metric}(${a.events.join("、")}${field}${minus}${where})${win} ${OPS[c.op]} ${num(c.value, params)}`;
  }
  if ("tag" in c) {
    const tag = c.tag.in ? `${c.tag.group}:${c.tag.in.join("|")}` : c.tag.group;
    return t(c.present === false ? "rules.cond.noTag" : "rules.cond.hasTag", { tag });
  }
  if ("field" in c) return `${c.field} ${c.op === "in" ? "∈" : c.op === "ne" ? "≠" : "="} ${Array.isArray(c.value) ? c.value.join("|") : c.value}`;
  if ("match" in c) {
    const what = c.match.need ? t("rules.cond.need", { need: c.match.need }) : t("rules.cond.words", { words: clip((c.match.keywords ?? []).join("、"), 40) });
    return c.match.windowDays !== undefined ? what + t("rules.cond.window", { days: num(c.match.windowDays, params) }) : what;
  }
  return `${c.score} ${OPS[c.op]} ${num(c.value, params)}`;
}

interface RuleLike {
  id: string;
  name: string;
  trigger: { events?: string[]; schedule?: string };
  when?: Condition;
  then: Action[];
  priority?: number;
}

/** The tag group a rule fills: the first group its actions touch; score rules by the score's name; else leads or other. */
function groupOf(r: RuleLike): string {
  for (const a of r.then) {
    if ("set" in a) return a.set.group;
    if ("add" in a) return a.add.group;
    if ("remove" in a) return a.remove.group;
    if ("clear" in a) return a.clear.group;
  }
  for (const a of r.then) if ("score" in a && GROUP_KEYS.includes(a.score.name)) return a.score.name;
  if (r.then.some((a) => "lead" in a)) return "_lead";
  return "_other";
}

export interface RuleGroup {
  key: string;
  label: string;
  rules: { id: string; name: string; triggers: string; when: string; actions: string[]; priority: number }[];
}

/** The rules by tag group (the default groups' order, then leads, then anything else), each in a line people can read. */
export function ruleGroups(t: Translate, def: Definition, groupNames: Map<string, string>): RuleGroup[] {
  const params = def.params ?? {};
  const groups = new Map<string, RuleGroup>();
  const order = [...GROUP_KEYS, "_lead", "_other"];
  for (const raw of def.rules as RuleLike[]) {
    const key = groupOf(raw);
    let g = groups.get(key);
    if (!g) {
      const label = key === "_lead" ? t("rules.group.lead") : key === "_other" ? t("rules.group.other") : `${groupNames.get(key) ?? DEFAULT_TAG_GROUPS.find((d) => d.key === key)?.name ?? key}（${key}）`;
      groups.set(key, (g = { key, label, rules: [] }));
    }
    const events = (raw.trigger.events ?? []).map((e) => (hasMessage(`event.${e}`) ? t(`event.${e}` as MessageKey) : e));
    if (raw.trigger.schedule === "daily") events.push(t("rules.trigger.daily"));
    g.rules.push({
      id: raw.id,
      name: raw.name,
      triggers: events.join("、"),
      when: raw.when ? clip(conditionText(t, raw.when, params), 240) : t("rules.cond.always"),
      actions: raw.then.map((a) => actionText(t, a, params)),
      priority: raw.priority ?? 100,
    });
  }
  return [...groups.values()].sort((a, b) => (order.indexOf(a.key) < 0 ? 99 : order.indexOf(a.key)) - (order.indexOf(b.key) < 0 ? 99 : order.indexOf(b.key)));
}

// ---- segments ----

/** An expression split around the error position, to print with a caret under it. */
export function caretAt(expression: string, position: number): { before: string; at: string; after: string; column: number } {
  const p = Math.max(0, Math.min(position, expression.length));
  return { before: expression.slice(0, p), at: expression.slice(p, p + 1) || " ", after: expression.slice(p + 1), column: p + 1 };
}

/**
 * Daily sizes as a line with dots, the first and last day under it and the smallest and largest
 * size beside it. Every label is escaped here (the template prints the SVG raw).
 */
export function sizesSvg(points: { day: string; size: number }[], label: string): string {
  const w = 640;
  const h = 200;
  const left = 48;
  const right = 16;
  const top = 16;
  const bottom = 32;
  const sizes = points.map((p) => p.size);
  const max = Math.max(...sizes);
  const min = Math.min(...sizes);
  // From zero, so a small move looks small; a flat zero line still has a scale.
  const lo = Math.min(0, min);
  const hi = max > lo ? max : lo + 1;
  const x = (i: number) => (points.length === 1 ? left + (w - left - right) / 2 : left + (i / (points.length - 1)) * (w - left - right));
  const y = (v: number) => top + (1 - (v - lo) / (hi - lo)) * (h - top - bottom);
  const xy = points.map((p, i) => `${x(i).toFixed(1)},${y(p.size).toFixed(1)}`);
  const line = points.length > 1 ? `<polyline points="${xy.join(" ")}" class="seg-line"/>` : "";
  const dots = points.map((p, i) => `<circle cx="${x(i).toFixed(1)}" cy="${y(p.size).toFixed(1)}" r="3" class="seg-dot"><title>${escapeHtml(`${p.day}: ${p.size}`)}</title></circle>`).join("");
  const first = points[0]!;
  const last = points[points.length - 1]!;
  const axis = `<line x1="${left}" y1="${h - bottom}" x2="${w - right}" y2="${h - bottom}" class="seg-axis"/><line x1="${left}" y1="${top}" x2="${left}" y2="${h - bottom}" class="seg-axis"/>`;
  const yLabels = `<text x="${left - 6}" y="${y(hi) + 4}" class="seg-lbl" text-anchor="end">${hi}</text><text x="${left - 6}" y="${y(lo) + 4}" class="seg-lbl" text-anchor="end">${lo}</text>`;
  const xLabels = `<text x="${left}" y="${h - 10}" class="seg-lbl">${escapeHtml(first.day)}</text>${points.length > 1 ? `<text x="${w - right}" y="${h - 10}" class="seg-lbl" text-anchor="end">${escapeHtml(last.day)}</text>` : ""}`;
  return `<svg class="seg-chart" viewBox="0 0 ${w} ${h}" role="img" aria-label="${escapeHtml(label)}" data-testid="sizes-chart">${axis}${yLabels}${xLabels}${line}${dots}</svg>`;
}
