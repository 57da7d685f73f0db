import path from "node:path";
import { Presets, SingleBar } from "cli-progress";
import { loadConfig } from "../config/env";
import { formatCalendarIssue } from "../domain/calendars/validate";
import { DEFAULT_CALENDARS_DIR, loadCalendarFile, loadCalendars } from "../loaders/calendars";
import { DEFAULT_COMPLIANCE_DIR, formatListIssue, loadComplianceLists } from "../loaders/compliance-rules";

type Out = NodeJS.WritableStream & { isTTY?: boolean };

/** A path as the user would type it: relative to the working folder when inside it. */
function shown(p: string): string {
  const rel = path.relative(process.cwd(), p);
  return rel && !rel.startsWith("..") && !path.isAbsolute(rel) ? rel : p;
}

/**
 * `siyu calendar lint [FILE|DIR]`: the schema, template variables and the banned-word check of
 * every entry (as written and rendered with the samples). Prints `file:line: entry: field: level:
 * message`; exit 1 on any error (warnings print, nothing more), 0 otherwise. Works offline.
 */
export async function lintCalendarsCommand(target: string | undefined, o: { rules?: string }, out: Out = process.stdout, err: Out = process.stderr): Promise<number> {
  const lists = await loadComplianceLists(o.rules ?? DEFAULT_COMPLIANCE_DIR);
  if (lists.issues.length) {
    for (const i of lists.issues) err.write(formatListIssue(i) + "\n");
    err.write(`${lists.issues.length} problem(s) in the banned-word lists; nothing checked\n`);
    return 1;
  }
  const dir = target ?? shown(DEFAULT_CALENDARS_DIR);
  // Calendars are small: a bar only when a folder is big enough to take a moment.
  let bar: SingleBar | null = null;
  const started = Date.now();
  const { calendars, issues, files } = await loadCalendars(dir, {
    now: new Date(),
    lists,
    onProgress: (done, total) => {
      if (!bar && err.isTTY && total > 20 && done < total && Date.now() - started > 300) {
        bar = new SingleBar({ format: "linting {bar} {value}/{total} files", stream: err }, Presets.shades_classic);
        bar.start(total, done);
      }
      (bar as SingleBar | null)?.update(done);
    },
  });
  (bar as SingleBar | null)?.stop();
  for (const i of issues) out.write(formatCalendarIssue(i) + "\n");
  const errors = issues.filter((i) => i.level === "error").length;
  const warnings = issues.length - errors;
  const entries = calendars.reduce((n, c) => n + c.definition.entries.length, 0);
  if (errors) out.write(`${errors} error(s), ${warnings} warning(s) in ${files.length} file(s)\n`);
  else out.write(`ok: ${calendars.length} calendar(s), ${entries} entries${warnings ? `, ${warnings} warning(s)` : ""} (banned-word lists ${lists.version})\n`);
  return errors ? 1 : 0;
}

interface PublishedEntry {
  key: string;
  change: "new" | "changed" | "kept" | "removed";
  postId: string | null;
  postStatus: string | null;
  findings: number;
  blocking: boolean;
}

/**
 * `siyu calendar publish FILE [--url] [--token]`: read the file here (templates in their own files
 * included), then through the API create or update the calendar keyed by the file name and publish
 * it: entries become posts submitted for review. Exit 1 when the file or the API refuses.
 */
export async function publishCalendarCommand(file: string, o: { url?: string; token?: string }, out: Out = process.stdout, err: Out = process.stderr): Promise<number> {
  const config = loadConfig();
  const url = (o.url ?? config.publicUrl).replace(/\/$/, "");
  const token = o.token ?? config.SIYU_TOKEN ?? config.ADMIN_TOKEN;
  if (!token) {
    err.write("No API token: pass --token, or set SIYU_TOKEN (or ADMIN_TOKEN).\n");
    return 2;
  }
  const { calendar, issues } = await loadCalendarFile(file, { now: new Date() });
  for (const i of issues) err.write(formatCalendarIssue(i) + "\n");
  if (!calendar) {
    err.write(`${file} was not published: fix the problems above (siyu calendar lint ${file})\n`);
    return 1;
  }
  const api = async (method: string, p: string, body?: unknown) => {
    const res = await fetch(`${url}${p}`, { method, headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { "content-type": "application/json" }) }, body: body === undefined ? undefined : JSON.stringify(body) }).catch((e: Error) => e);
    if (res instanceof Error) throw new Error(`${res.message} (is Siyu running at ${url}?)`);
    const text = await res.text();
    let json: unknown = null;
    try {
      json = text ? JSON.parse(text) : null;
    } catch {
      json = text;
    }
    return { status: res.status, body: json as Record<string, unknown> };
  };
  const refused = (what: string, r: { status: number; body: Record<string, unknown> }) => {
    const errors = (r.body?.errors as { field: string; message: string }[] | undefined) ?? [];
    if (errors.length) for (const e of errors) err.write(`${file}: ${e.field}: ${e.message}\n`);
    else err.write(`${file}: ${what} refused: ${r.status} ${typeof r.body === "string" ? r.body : ((r.body?.detail as string | undefined) ?? JSON.stringify(r.body))}\n`);
    return 1;
  };
  try {
    const found = await api("GET", `/v1/calendars?key=${encodeURIComponent(calendar.key)}&limit=1`);
    if (found.status !== 200) return refused("looking the calendar up", found);
    const existing = (found.body.items as { id: string }[] | undefined)?.[0];
    const saved = existing ? await api("PUT", `/v1/calendars/${existing.id}`, { source: "file", ...calendar.definition }) : await api("POST", "/v1/calendars", { key: calendar.key, source: "file", ...calendar.definition });
    if (saved.status !== 200 && saved.status !== 201) return refused("saving", saved);
    // Saving a calendar that is already published publishes the change (the answer says so).
    let r = saved.body.published as { version: number; unchanged: boolean; entries: PublishedEntry[] } | undefined;
    if (!r) {
      const published = await api("POST", `/v1/calendars/${saved.body.id as string}/publish`);
      if (published.status !== 200) return refused("publishing", published);
      r = published.body as unknown as { version: number; unchanged: boolean; entries: PublishedEntry[] };
    }
    for (const e of r.entries) out.write(`  ${e.key}: ${e.change}${e.postId ? `, post ${e.postId} ${e.postStatus}` : ""}${e.findings ? `, ${e.findings} finding(s)${e.blocking ? " (blocking: revise, or an admin overrides)" : ""}` : ""}\n`);
    const count = (c: PublishedEntry["change"]) => r.entries.filter((e) => e.change === c).length;
    out.write(
      r.unchanged
        ? `${calendar.key}: unchanged since version ${r.version}; nothing to review\n`
        : `${calendar.key}: published version ${r.version} (${count("new")} new, ${count("changed")} changed, ${count("kept")} kept, ${count("removed")} removed); new posts wait for review\n`,
    );
    return 0;
  } catch (e) {
    err.write(`${file}: ${(e as Error).message}\n`);
    return 1;
  }
}
