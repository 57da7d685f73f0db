import { createHash } from "node:crypto";
import { readdir, readFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseDocument } from "yaml";
import { z } from "zod";
import { buildChecker, normalizeForMatch, type BannedTerm, type Checker, type Severity } from "../domain/compliance/checker";
import { POST_KINDS } from "../domain/compliance/posts";

export const DEFAULT_COMPLIANCE_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../compliance-rules");

/** The header every banned-word list starts with (shared/DESIGN.md section 10). */
export const TERMS_HEADER = ["term", "category", "severity", "legal_basis", "suggested_replacement"] as const;
export const ALLOW_HEADER = ["term", "note"] as const;
export const CATEGORIES = ["absolute", "efficacy", "guarantee", "testimonial", "endorsement", "price", "superstition", "other"] as const;

/** Kinds a policy file must give levels for. */
const POLICY_KINDS = POST_KINDS.filter((k): k is Exclude<(typeof POST_KINDS)[number], "one_to_one"> => k !== "one_to_one");

export const Policy = z.object({
  version: z.number().int().optional(),
  block_severities: z.array(z.enum(["block", "warn"])).min(1),
  warn_severities: z.array(z.enum(["block", "warn"])).optional(),
  /** Levels for kinds not listed. */
  default: z.object({ levels: z.number().int().min(1).max(5) }).optional(),
  // one_to_one (the sidebar's scripts) came later: a policy without it falls back to `default`.
  kinds: z.object(Object.fromEntries(POLICY_KINDS.map((k) => [k, z.object({ levels: z.number().int().min(1).max(5) })])) as Record<(typeof POLICY_KINDS)[number], z.ZodObject<{ levels: z.ZodNumber }>>).catchall(z.object({ levels: z.number().int().min(1).max(5) })),
});
export type Policy = z.infer<typeof Policy>;

export interface ListIssue {
  file: string;
  /** 1-based line, or null for the whole file. */
  line: number | null;
  message: string;
}

export function formatListIssue(i: ListIssue): string {
  return `${i.file}${i.line ? `:${i.line}` : ""}: ${i.message}`;
}

export interface ComplianceLists {
  terms: BannedTerm[];
  allow: string[];
  policy: Policy | null;
  /** Severities that block (policy.yaml; block when there is no policy). */
  blockSeverities: Severity[];
  /** A short hash of every file's name and content: which lists a report was checked against. */
  version: string;
  checker: Checker;
  issues: ListIssue[];
}

/** Rows of a TSV file with their line numbers; blank lines and `#` comments are skipped. */
function tsvRows(text: string): { line: number; cells: string[] }[] {
  const out: { line: number; cells: string[] }[] = [];
  text
    .replace(/^\uFEFF/, "")
    .split(/\r?\n/)
    .forEach((raw, i) => {
      if (!raw.trim() || raw.startsWith("#")) return;
      out.push({ line: i + 1, cells: raw.split("\t").map((c) => c.trim()) });
    });
  return out;
}

/**
 * Load and check a folder laid out like compliance-rules/: one banned-word TSV per category,
 * allow.tsv, policy.yaml. Every problem names the file and line: a bad header or row, an unknown
 * category or severity, a category that does not match its file, a term listed twice (also after
 * normalisation, e.g. 最佳 and 最 佳), an allow entry that is itself banned, and a term that can
 * never be reported (shadowed by the allow-list, or normalising to nothing).
 */
export async function loadComplianceLists(dir: string = DEFAULT_COMPLIANCE_DIR): Promise<ComplianceLists> {
  const issues: ListIssue[] = [];
  const hash = createHash("sha256");
  let names: string[];
  try {
    names = (await readdir(dir)).sort();
  } catch (err) {
    issues.push({ file: dir, line: null, message: `cannot be read: ${(err as Error).message}` });
    names = [];
  }
  const terms: (BannedTerm & { file: string; line: number })[] = [];
  const allow: { term: string; file: string; line: number }[] = [];
  let policy: Policy | null = null;
  for (const name of names) {
    const file = path.join(dir, name);
    if (!name.endsWith(".tsv") && name !== "policy.yaml") continue;
    const text = await readFile(file, "utf8");
    hash.update(name).update("\0").update(text).update("\0");
    if (name === "policy.yaml") {
      const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
      if (doc.errors.length) {
        for (const e of doc.errors) issues.push({ file, line: e.linePos?.[0]?.line ?? null, message: e.message.split("\n")[0]! });
        continue;
      }
      const parsed = Policy.safeParse(doc.toJS());
      if (!parsed.success) for (const i of parsed.error.issues) issues.push({ file, line: null, message: `${i.path.join(".") || "(file)"}: ${i.message}` });
      else policy = parsed.data;
      continue;
    }
    const rows = tsvRows(text);
    const isAllow = name === "allow.tsv";
    const header = isAllow ? ALLOW_HEADER : TERMS_HEADER;
    const [head, ...body] = rows;
    if (!head || head.cells.join("\t") !== header.join("\t")) {
      issues.push({ file, line: head?.line ?? 1, message: `the first line must be the header: ${header.join("<TAB>")}` });
      continue;
    }
    const fileCategory = name.replace(/\.tsv$/, "");
    for (const { line, cells } of body) {
      if (cells.length !== header.length) {
        issues.push({ file, line, message: `has ${cells.length} column(s), expected ${header.length} separated by tabs` });
        continue;
      }
      if (isAllow) {
        if (!cells[0]) issues.push({ file, line, message: "term is empty" });
        else allow.push({ term: cells[0], file, line });
        continue;
      }
      const [term, category, severity, basis, suggestion] = cells as [string, string, string, string, string];
      const bad: string[] = [];
      if (!term) bad.push("term is empty");
      if (!(CATEGORIES as readonly string[]).includes(category)) bad.push(`category "${category}" is not one of ${CATEGORIES.join(", ")}`);
      else if ((CATEGORIES as readonly string[]).includes(fileCategory) && category !== fileCategory) bad.push(`category "${category}" in the ${fileCategory} list`);
      if (severity !== "block" && severity !== "warn") bad.push(`severity "${severity}" is not block or warn`);
      if (!basis) bad.push("legal_basis is empty");
      if (!suggestion) bad.push("suggested_replacement is empty");
      if (bad.length) {
        for (const message of bad) issues.push({ file, line, message });
        continue;
      }
      terms.push({ term, category, severity: severity as Severity, basis, suggestion, file, line });
    }
  }
  if (!names.includes("allow.tsv")) issues.push({ file: path.join(dir, "allow.tsv"), line: null, message: "is missing: the allow-list of innocent words containing a banned string" });
  if (!names.includes("policy.yaml")) issues.push({ file: path.join(dir, "policy.yaml"), line: null, message: "is missing: review levels per content kind and which severities block" });
  if (!terms.length && !issues.length) issues.push({ file: dir, line: null, message: "has no banned-word list (*.tsv with the term header)" });

  // Duplicates, exact and after normalisation, across every list.
  const seen = new Map<string, { file: string; line: number; term: string }>();
  const unique: typeof terms = [];
  for (const t of terms) {
    const key = normKey(t.term);
    const first = seen.get(key);
    if (first) {
      issues.push({ file: t.file, line: t.line, message: first.term === t.term ? `"${t.term}" is already listed at ${path.basename(first.file)}:${first.line}` : `"${t.term}" is the same as "${first.term}" (${path.basename(first.file)}:${first.line}) once normalised` });
      continue;
    }
    seen.set(key, t);
    unique.push(t);
  }
  const banned = new Map(unique.map((t) => [normKey(t.term), t]));
  for (const a of allow) {
    const t = banned.get(normKey(a.term));
    if (t) issues.push({ file: a.file, line: a.line, message: `"${a.term}" is banned (${path.basename(t.file)}:${t.line}); an allow entry must be an innocent longer word` });
  }
  const allowTerms = allow.filter((a) => !banned.has(normKey(a.term))).map((a) => a.term);
  const blockSeverities: Severity[] = policy?.block_severities ?? ["block"];
  const checker = buildChecker(
    unique.map(({ file: _f, line: _l, ...t }) => t),
    allowTerms,
    { blockSeverities },
  );
  // A term that does not find itself can never be reported.
  for (const t of unique) {
    if (!checker.check(t.term).findings.some((f) => f.term === t.term)) issues.push({ file: t.file, line: t.line, message: `"${t.term}" can never be reported: the allow-list covers it or it normalises to nothing` });
  }
  return { terms: unique.map(({ file: _f, line: _l, ...t }) => t), allow: allowTerms, policy, blockSeverities, version: hash.digest("hex").slice(0, 12), checker, issues };
}

/** The key two terms collide on: what the checker matches (normalised). */
function normKey(term: string): string {
  return normalizeForMatch(term).text;
}
