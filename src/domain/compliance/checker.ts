import { buildAutomaton, scan } from "./automaton";
import { normalizeInto, type Normalized } from "./normalize";
import { initialsOf, pinyinLookups, syllableVariants } from "./pinyin-variants";

/**
 * The banned-word checker for marketing copy (广告法 / 医疗广告): a term list and an allow-list in, a
 * pure `check(text)` out. Terms, allow entries and text go through one normalisation (normalize.ts);
 * one Aho-Corasick pass over the normalised text finds every term, pinyin variant and allow entry.
 * Then, in order:
 * - a term whose first (last) character is an ASCII letter or digit needs a word boundary there: the
 *   neighbour must not be of the same kind, written alphanumerics on one side, Chinese numerals on the
 *   other (0元 is not in 2680元, top1 is not in top10, 第一 is not in 第十 or 第一百, but 仅需零元 is 0元);
 * - a finding lying inside an allow-list match is dropped (第一次, 最好提前预约);
 * - of nested findings only the outermost stays (全国第一 over 第一): the more informative term.
 * Negated mentions are still reported: the policy is lexical, the UI explains.
 */

export type Severity = "block" | "warn";

export interface BannedTerm {
  term: string;
  category: string;
  severity: Severity;
  /** The legal provision, e.g. 《广告法》第九条. */
  basis: string;
  /** What to write instead. */
  suggestion: string;
}

export interface Finding {
  /** The list entry. */
  term: string;
  /** `text.slice(start, end)` of the checked text. */
  matched: string;
  /** UTF-16 offsets into the original text, end exclusive. */
  start: number;
  end: number;
  category: string;
  severity: Severity;
  basis: string;
  suggestion: string;
}

export interface CheckReport {
  verdict: "pass" | "warn" | "block";
  /** Ordered by start, then end. */
  findings: Finding[];
}

export interface Checker {
  check(text: string): CheckReport;
  /** Number of terms. */
  readonly size: number;
  /** Number of distinct normalised patterns in the automaton: terms, pinyin variants, allow entries. */
  readonly patterns: number;
}

export interface CheckerOptions {
  /** Severities that make the verdict "block"; default ["block"]. */
  blockSeverities?: Severity[];
  /** Generate pinyin syllable variants (zui好) and initials (qgdy); default true. */
  pinyin?: boolean;
  /** With pinyin on, also match the initials of terms of four or more Han characters; default true. */
  initials?: boolean;
}

interface Pattern {
  units: number[];
  /** Index into the term list, or -1 for an allow-only pattern. */
  term: number;
  allow: boolean;
  /** Starts / ends with an ASCII letter or digit, so the boundary rule applies there. */
  left: boolean;
  right: boolean;
}

export { normalizeForMatch } from "./normalize";

const isAlnum = (c: number) => (c >= 0x30 && c <= 0x39) || (c >= 0x61 && c <= 0x7a);

function unitsOf(s: string): number[] {
  const n = normalizeInto(s);
  return Array.from(n.codes.subarray(0, n.length));
}

export function buildChecker(terms: BannedTerm[], allow: string[], opts: CheckerOptions = {}): Checker {
  const blockSeverities = new Set<Severity>(opts.blockSeverities ?? ["block"]);
  const patterns: Pattern[] = [];
  const byKey = new Map<string, Pattern>();
  const add = (units: number[], term: number, isAllow: boolean, replace: (old: Pattern) => boolean): void => {
    if (units.length === 0) return;
    const key = String.fromCharCode(...units);
    const old = byKey.get(key);
    if (old) {
      if (isAllow) old.allow = true;
      else if (old.term < 0 || replace(old)) old.term = term;
      return;
    }
    const p: Pattern = { units, term, allow: isAllow, left: isAlnum(units[0]!), right: isAlnum(units[units.length - 1]!) };
    byKey.set(key, p);
    patterns.push(p);
  };
  // Literal terms first; of two entries that normalise alike, a block outranks a warn, else the first wins.
  terms.forEach((t, i) => add(unitsOf(t.term), i, false, (old) => terms[old.term]!.severity === "warn" && t.severity === "block"));
  for (const a of allow) add(unitsOf(a), -1, true, () => false);
  if (opts.pinyin ?? true) {
    const { syllable, initial } = pinyinLookups();
    // Variants come after every literal term and allow entry, so they never displace one.
    terms.forEach((t, i) => {
      for (const v of syllableVariants(t.term, syllable)) add(unitsOf(v), i, false, () => false);
    });
    if (opts.initials ?? true) addInitials(initial);
  }
  function addInitials(initial: (han: string) => string | undefined): void {
    // Initials only where unambiguous: no other term shares them and they spell no term or allow entry.
    const initials = new Map<string, number[]>();
    terms.forEach((t, i) => {
      const s = initialsOf(t.term, initial);
      if (s !== undefined) initials.set(s, [...(initials.get(s) ?? []), i]);
    });
    for (const [s, owners] of initials) {
      const units = unitsOf(s);
      if (owners.length === 1 && !byKey.has(String.fromCharCode(...units))) add(units, owners[0]!, false, () => false);
    }
  }

  const ac = buildAutomaton(patterns.map((p) => p.units));

  // Hit buffers reused across calls (check is synchronous and never re-entered).
  const termHits: number[] = []; // triples: pattern, start, end (normalised units)
  const allowHits: number[] = []; // pairs: start, end
  let norm: Normalized;
  const kind = (k: number) => (norm.soft[k] ? 2 : isAlnum(norm.codes[k]!) ? 1 : 0);
  const onHit = (pi: number, end: number) => {
    const p = patterns[pi]!;
    const start = end - p.units.length;
    if (p.left && start > 0) {
      const before = kind(start - 1);
      if (before !== 0 && before === kind(start)) return;
    }
    if (p.right && end < norm.length) {
      const after = kind(end);
      if (after !== 0 && after === kind(end - 1)) return;
    }
    if (p.allow) allowHits.push(start, end);
    if (p.term >= 0) termHits.push(pi, start, end);
  };

  function check(text: string): CheckReport {
    termHits.length = 0;
    allowHits.length = 0;
    norm = normalizeInto(text);
    scan(ac, norm.codes, norm.length, onHit);
    if (termHits.length === 0) return { verdict: "pass", findings: [] };

    const hits: { pattern: number; start: number; end: number }[] = [];
    for (let k = 0; k < termHits.length; k += 3) hits.push({ pattern: termHits[k]!, start: termHits[k + 1]!, end: termHits[k + 2]! });
    hits.sort((a, b) => a.start - b.start || b.end - a.end);
    const allows: [number, number][] = [];
    for (let k = 0; k < allowHits.length; k += 2) allows.push([allowHits[k]!, allowHits[k + 1]!]);
    allows.sort((a, b) => a[0] - b[0]);

    const findings: Finding[] = [];
    let verdict: CheckReport["verdict"] = "pass";
    let nextAllow = 0;
    let allowEnd = -1; // furthest end of the allow matches starting at or before the current hit
    let outerEnd = -1; // furthest end of the findings kept so far
    for (const h of hits) {
      while (nextAllow < allows.length && allows[nextAllow]![0] <= h.start) allowEnd = Math.max(allowEnd, allows[nextAllow++]![1]);
      if (allowEnd >= h.end) continue;
      if (outerEnd >= h.end) continue;
      outerEnd = h.end;
      const t = terms[patterns[h.pattern]!.term]!;
      const start = norm.starts[h.start]!;
      const end = norm.ends[h.end - 1]!;
      findings.push({ term: t.term, matched: text.slice(start, end), start, end, category: t.category, severity: t.severity, basis: t.basis, suggestion: t.suggestion });
      if (blockSeverities.has(t.severity)) verdict = "block";
      else if (verdict === "pass") verdict = "warn";
    }
    return { verdict, findings };
  }

  return { check, size: terms.length, patterns: patterns.length };
}
