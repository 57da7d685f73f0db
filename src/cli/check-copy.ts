import { createReadStream } from "node:fs";
import { readFile } from "node:fs/promises";
import { createInterface } from "node:readline";
import type { Finding } from "../domain/compliance/checker";
import { DEFAULT_COMPLIANCE_DIR, formatListIssue, loadComplianceLists } from "../loaders/compliance-rules";

/** Exit codes: 0 nothing blocks, 1 some text is blocked, 2 bad input (unreadable file, bad lists, a bad JSONL line). */
export async function checkCopyCommand(file: string | undefined, o: { jsonl?: string; rules?: string }, out: NodeJS.WritableStream = process.stdout, err: NodeJS.WritableStream = process.stderr): Promise<number> {
  if (!file === !o.jsonl) {
    err.write("give one text file, or --jsonl FILE with lines {\"id\": ..., \"text\": ...}\n");
    return 2;
  }
  const lists = await loadComplianceLists(o.rules ?? DEFAULT_COMPLIANCE_DIR);
  if (lists.issues.length) {
    for (const i of lists.issues) err.write(formatListIssue(i) + "\n");
    err.write(`${lists.issues.length} problem(s) in the banned-word lists; nothing checked\n`);
    return 2;
  }
  if (file) {
    let text: string;
    try {
      text = await readFile(file, "utf8");
    } catch (e) {
      err.write(`${file}: ${(e as Error).message}\n`);
      return 2;
    }
    const report = lists.checker.check(text);
    out.write(JSON.stringify({ verdict: report.verdict, findings: report.findings, listVersion: lists.version }) + "\n");
    for (const f of report.findings) err.write(`${file}:${where(text, f)}: ${f.severity} ${f.matched} -> ${f.term} (${f.category}, ${f.basis}); suggest: ${f.suggestion}\n`);
    err.write(`${report.verdict} (${report.findings.length} finding(s), lists ${lists.version})\n`);
    return report.verdict === "block" ? 1 : 0;
  }
  let blocked = 0;
  let bad = 0;
  let n = 0;
  let lineNo = 0;
  let lines: AsyncIterable<string>;
  try {
    const stream = createReadStream(o.jsonl!, "utf8");
    await new Promise<void>((resolve, reject) => stream.once("open", () => resolve()).once("error", reject));
    lines = createInterface({ input: stream, crlfDelay: Infinity });
  } catch (e) {
    err.write(`${o.jsonl}: ${(e as Error).message}\n`);
    return 2;
  }
  for await (const line of lines) {
    lineNo++;
    if (!line.trim()) continue;
    let item: { id?: unknown; text?: unknown };
    try {
      item = JSON.parse(line) as typeof item;
    } catch {
      err.write(`${o.jsonl}:${lineNo}: not valid JSON\n`);
      bad++;
      continue;
    }
    if (typeof item?.text !== "string") {
      err.write(`${o.jsonl}:${lineNo}: text must be a string\n`);
      bad++;
      continue;
    }
    const report = lists.checker.check(item.text);
    n++;
    if (report.verdict === "block") blocked++;
    out.write(JSON.stringify({ id: item.id ?? null, verdict: report.verdict, findings: report.findings }) + "\n");
  }
  err.write(`${n} checked, ${blocked} blocked${bad ? `, ${bad} bad line(s)` : ""} (lists ${lists.version})\n`);
  return bad ? 2 : blocked ? 1 : 0;
}

/** line:column (1-based) of a finding in the text. */
function where(text: string, f: Finding): string {
  const before = text.slice(0, f.start).split("\n");
  return `${before.length}:${before[before.length - 1]!.length + 1}`;
}

export async function lintListsCommand(dir: string | undefined, out: NodeJS.WritableStream = process.stdout): Promise<number> {
  const lists = await loadComplianceLists(dir ?? DEFAULT_COMPLIANCE_DIR);
  for (const i of lists.issues) out.write(formatListIssue(i) + "\n");
  if (lists.issues.length) {
    out.write(`${lists.issues.length} problem(s)\n`);
    return 1;
  }
  const byCategory = new Map<string, number>();
  for (const t of lists.terms) byCategory.set(t.category, (byCategory.get(t.category) ?? 0) + 1);
  out.write(`ok: ${lists.terms.length} terms (${[...byCategory].map(([c, k]) => `${c} ${k}`).join(", ")}), ${lists.allow.length} allowed words, version ${lists.version}\n`);
  return 0;
}
