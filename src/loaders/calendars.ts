import { readdir, readFile, stat } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { isMap, isSeq, LineCounter, parseDocument, type Document } from "yaml";
import { calendarComplianceIssues } from "../domain/calendars/compliance";
import { KEY_RE, type CalendarDefinition, type CalendarKind } from "../domain/calendars/schema";
import { issuePathParts, parseCalendar, type CalendarIssue } from "../domain/calendars/validate";
import type { ComplianceLists } from "./compliance-rules";

export const DEFAULT_CALENDARS_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../content-calendars");

export interface LoadedCalendar {
  file: string;
  /** The file name without .yaml: the calendar's key. */
  key: string;
  kind: CalendarKind;
  definition: CalendarDefinition;
}

export interface LoadOptions {
  /** Dated entries before now get a warning. */
  now?: Date;
  /** Also check every entry against the banned-word lists (lint). */
  lists?: ComplianceLists;
  /** Called after each file (a progress bar for big folders). */
  onProgress?: (done: number, total: number) => void;
}

const isYaml = (n: string) => n.endsWith(".yaml") || n.endsWith(".yml");

/**
 * Read calendars: a folder (every *.yaml / *.yml in it, not its subfolders) or one file. Returns
 * the valid definitions and every problem, each naming file, line, entry and field. A template
 * may live in a file of its own: `templateFile: templates/day1.md` instead of `template`, a path
 * relative to the calendar file that stays inside the calendar file's folder.
 */
export async function loadCalendars(target: string = DEFAULT_CALENDARS_DIR, opts: LoadOptions = {}): Promise<{ calendars: LoadedCalendar[]; issues: CalendarIssue[]; files: string[] }> {
  let files: string[];
  try {
    const s = await stat(target);
    files = s.isDirectory() ? (await readdir(target)).filter(isYaml).sort().map((n) => path.join(target, n)) : [target];
  } catch (err) {
    return { calendars: [], issues: [{ file: target, entry: null, path: "(file)", message: `cannot be read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, level: "error" }], files: [] };
  }
  const calendars: LoadedCalendar[] = [];
  const issues: CalendarIssue[] = [];
  const keys = new Map<string, string>();
  for (const [n, file] of files.entries()) {
    const r = await loadCalendarFile(file, opts);
    issues.push(...r.issues);
    if (r.calendar) {
      const other = keys.get(r.calendar.key);
      if (other) issues.push({ file, entry: null, path: "(file)", message: `has the same key (file name) as ${other}`, level: "error" });
      else {
        keys.set(r.calendar.key, file);
        calendars.push(r.calendar);
      }
    }
    opts.onProgress?.(n + 1, files.length);
  }
  if (files.length === 0) issues.push({ file: target, entry: null, path: "(file)", message: "has no calendar files (*.yaml)", level: "error" });
  return { calendars, issues, files };
}

/** Read and validate one calendar file (see loadCalendars). */
export async function loadCalendarFile(file: string, opts: LoadOptions = {}): Promise<{ calendar: LoadedCalendar | null; issues: CalendarIssue[] }> {
  const issues: CalendarIssue[] = [];
  const fileIssue = (message: string, line?: number) => issues.push({ file, entry: null, path: "(file)", message, level: "error", ...(line ? { line } : {}) });
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (err) {
    fileIssue(`cannot be read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    return { calendar: null, issues };
  }
  const key = path.basename(file).replace(/\.ya?ml$/, "");
  if (!KEY_RE.test(key)) fileIssue(`the file name is the calendar's key: "${key}" must be ${"lowercase letters, digits, - and _"}, e.g. acne-community-7d.yaml`);
  const lines = new LineCounter();
  const doc = parseDocument(text.replace(/^\uFEFF/, ""), { prettyErrors: true, uniqueKeys: true, lineCounter: lines });
  if (doc.errors.length) {
    for (const e of doc.errors) fileIssue(`is not valid YAML: ${e.message.split("\n")[0]}`, e.linePos?.[0]?.line);
    return { calendar: null, issues };
  }
  const raw = doc.toJS() as unknown;
  // Templates in their own files, read into the entry before validation.
  const entries = (raw as { entries?: unknown })?.entries;
  if (Array.isArray(entries)) {
    const dir = path.dirname(path.resolve(file));
    for (const [i, e] of entries.entries()) {
      if (!e || typeof e !== "object" || !("templateFile" in e)) continue;
      const entry = e as { key?: unknown; template?: unknown; templateFile?: unknown };
      const where = { file, entry: typeof entry.key === "string" ? entry.key : `#${i + 1}`, path: `entries[${i}].templateFile`, level: "error" as const, line: lineOf(doc, lines, ["entries", i, "templateFile"]) };
      if (entry.template !== undefined) issues.push({ ...where, message: "give template or templateFile, not both" });
      else if (typeof entry.templateFile !== "string" || !entry.templateFile.trim()) issues.push({ ...where, message: "is a path to the template's file, relative to this calendar" });
      else {
        const full = path.resolve(dir, entry.templateFile);
        if (path.relative(dir, full).startsWith("..") || path.isAbsolute(path.relative(dir, full))) issues.push({ ...where, message: "must stay inside the calendar's folder" });
        else {
          try {
            entry.template = (await readFile(full, "utf8")).replace(/^\uFEFF/, "").replace(/\r\n/g, "\n").replace(/\n+$/, "");
            delete entry.templateFile;
          } catch (err) {
            issues.push({ ...where, message: `cannot be read (${full}): ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}` });
          }
        }
      }
    }
  }
  if (issues.length) return { calendar: null, issues };
  const parsed = parseCalendar(raw, file, opts.now ? { now: opts.now } : {});
  const found = [...parsed.issues];
  if (parsed.calendar && opts.lists) found.push(...calendarComplianceIssues(parsed.calendar, opts.lists.checker, opts.lists.blockSeverities, file));
  for (const i of found) {
    const line = lineOf(doc, lines, issuePathParts(i.path));
    issues.push(line ? { ...i, line } : i);
  }
  const ok = parsed.calendar && !issues.some((i) => i.level === "error");
  return { calendar: ok ? { file, key, kind: parsed.kind!, definition: parsed.calendar! } : null, issues };
}

/** The line of the deepest node of the path that the document has (a missing field: its parent's line). */
function lineOf(doc: Document, lines: LineCounter, parts: (string | number)[]): number | undefined {
  for (let n = parts.length; n >= 0; n--) {
    const p = parts.slice(0, n);
    const node = p.length ? doc.getIn(p, true) : doc.contents;
    const range = (node as { range?: [number, number, number] } | null | undefined)?.range;
    if (range) {
      // A mapping or sequence starts at its first item; its key's line reads better for a field.
      const isCollection = isMap(node) || isSeq(node);
      if (isCollection && n > 0) {
        const parentNode = n > 1 ? doc.getIn(p.slice(0, -1), true) : doc.contents;
        if (isMap(parentNode)) {
          const pair = parentNode.items.find((it) => (it.key as { value?: unknown } | null)?.value === p[p.length - 1]);
          const keyRange = (pair?.key as { range?: [number, number, number] } | null)?.range;
          if (keyRange) return lines.linePos(keyRange[0]).line;
        }
      }
      return lines.linePos(range[0]).line;
    }
  }
  return undefined;
}
