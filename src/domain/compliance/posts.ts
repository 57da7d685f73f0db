import { createHash } from "node:crypto";
import Handlebars from "handlebars";
import type { CheckReport, Checker, Finding, Severity } from "./checker";

/**
 * Kinds of outgoing copy; compliance-rules/policy.yaml gives each its review levels. one_to_one:
 * scripts (话术) consultants insert into a single or group chat from the chat sidebar, once approved.
 */
export const POST_KINDS = ["community_post", "mass_message", "welcome_message", "article", "moments", "one_to_one"] as const;

/** What a post's approvals bind to: kind, title and body (a template, as written). */
export function contentHash(p: { kind: string; title: string | null; body: string }): string {
  return createHash("sha256").update(JSON.stringify([p.kind, p.title ?? "", p.body])).digest("hex");
}

/** Sample values for the rendered check when a post gives none (the variables calendars and SOPs fill). */
export const DEFAULT_SAMPLE_DATA: Readonly<Record<string, unknown>> = {
  name: "王女士",
  nickname: "小王",
  clinic: "示例门诊部",
  consultant: "李顾问",
  doctor: "张医生",
  date: "12月1日",
  time: "14:00",
  item: "光子嫩肤",
  price: "980元",
  link: "https://example.cn/a/1",
};

export interface PostFinding extends Finding {
  /** Where: the title, the body as written, or the body rendered with sample data. */
  in: "title" | "body" | "rendered";
}

export class TemplateError extends Error {}

/**
 * Check a post as written (title and body, template syntax included) and as rendered with sample
 * data: a banned word can hide in a variable's value as well as in the copy. Rendered findings
 * already found as written are not repeated. Throws TemplateError when the body is no valid template.
 */
export function checkPost(checker: Checker, p: { title: string | null; body: string; sampleData: Record<string, unknown> }): { findings: PostFinding[]; rendered: string } {
  let rendered: string;
  try {
    rendered = Handlebars.compile(p.body, { noEscape: true, strict: false })({ ...DEFAULT_SAMPLE_DATA, ...p.sampleData });
  } catch (err) {
    throw new TemplateError((err as Error).message.split("\n")[0]!);
  }
  const tag = (r: CheckReport, where: PostFinding["in"]) => r.findings.map((f) => ({ ...f, in: where }));
  const title = p.title ? tag(checker.check(p.title), "title") : [];
  const body = tag(checker.check(p.body), "body");
  const seen = new Set(body.map((f) => f.term));
  const inRendered = rendered === p.body ? [] : tag(checker.check(rendered), "rendered").filter((f) => !seen.has(f.term));
  return { findings: [...title, ...body, ...inRendered], rendered };
}

export function blocking(findings: readonly { severity: Severity }[], blockSeverities: readonly Severity[]): boolean {
  return findings.some((f) => blockSeverities.includes(f.severity));
}

/** The copy a recipient gets: the approved template filled with their values (no HTML escaping: WeCom text). */
export function renderPost(body: string, data: Record<string, unknown>): string {
  return Handlebars.compile(body, { noEscape: true, strict: false })(data);
}
