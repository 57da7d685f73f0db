import type { Checker, Finding, Severity } from "../compliance/checker";
import { checkPost } from "../compliance/posts";
import { entryPost } from "./render";
import type { CalendarDefinition } from "./schema";
import type { CalendarIssue } from "./validate";

const ATTACHMENT_FIELDS = ["link", "image", "miniprogram", "poll"] as const;

function say(f: Finding, where: string): string {
  const matched = f.matched === f.term ? `"${f.matched}"` : `"${f.matched}" (${f.term})`;
  return `${matched}${where} at ${f.start}-${f.end}: ${f.category}, ${f.basis}; suggest: ${f.suggestion}`;
}

/**
 * The banned-word check of every entry, the way posts are checked (checkPost: the template as
 * written, the attachment summary, and the template rendered with the samples), plus the
 * variables' fallbacks, which reach patients too. Findings of a blocking severity are errors,
 * others warnings; each names the entry and the field.
 */
export function calendarComplianceIssues(calendar: CalendarDefinition, checker: Checker, blockSeverities: readonly Severity[], file: string | null = null): CalendarIssue[] {
  const issues: CalendarIssue[] = [];
  const level = (f: Finding): CalendarIssue["level"] => (blockSeverities.includes(f.severity) ? "error" : "warning");
  const fallbacks = (vars: CalendarDefinition["variables"], prefix: string, entry: string | null) => {
    for (const [name, v] of Object.entries(vars)) {
      if (!v.fallback) continue;
      for (const f of checker.check(v.fallback).findings) issues.push({ file, entry, path: `${prefix}variables.${name}.fallback`, message: say(f, ""), level: level(f) });
    }
  };
  fallbacks(calendar.variables, "", null);
  calendar.entries.forEach((e, i) => {
    const post = entryPost(e);
    const attachment = ATTACHMENT_FIELDS.find((k) => e[k] !== undefined) ?? "link";
    for (const f of checkPost(checker, post).findings) {
      const path = f.in === "title" ? `entries[${i}].${attachment}` : `entries[${i}].template`;
      issues.push({ file, entry: e.key, path, message: say(f, f.in === "rendered" ? " (rendered with the samples)" : f.in === "title" ? ` in "${post.title}"` : ""), level: level(f) });
    }
    const own = Object.fromEntries(Object.entries(e.variables).filter(([name, v]) => JSON.stringify(calendar.variables[name]) !== JSON.stringify(v)));
    fallbacks(own, `entries[${i}].`, e.key);
  });
  return issues;
}
