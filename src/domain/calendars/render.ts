import { DEFAULT_SAMPLE_DATA } from "../compliance/posts";
import type { CalendarEntry } from "./schema";
import { analyzeTemplate, renderTemplate, type TemplateFormat } from "./template";

/** A variable the template reads that has no value for this recipient, no fixed value and no fallback. */
export class MissingVariableError extends Error {
  constructor(
    readonly entry: string,
    readonly variable: string,
  ) {
    super(`entry ${entry}: no value for {{${variable}}} and no fallback`);
    this.name = "MissingVariableError";
  }
}

const usedCache = new Map<string, string[]>();
function usedVariables(template: string): string[] {
  let used = usedCache.get(template);
  if (!used) {
    used = analyzeTemplate(template).variables;
    if (usedCache.size >= 1000) usedCache.clear();
    usedCache.set(template, used);
  }
  return used;
}

const present = (v: unknown): v is string | number => (typeof v === "string" && v.trim() !== "") || (typeof v === "number" && Number.isFinite(v));

/**
 * The values the compliance check renders an entry with (and a post's sampleData): per variable its
 * sample, else its fixed value, else the entry's link for {{link}}, else the shipped sample data
 * (王女士, 李顾问 …), else its fallback.
 */
export function sampleValues(entry: Pick<CalendarEntry, "variables" | "link">): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, v] of Object.entries(entry.variables)) {
    const s = v.sample ?? v.value ?? (name === "link" ? entry.link?.url : undefined) ?? (DEFAULT_SAMPLE_DATA[name] as string | undefined) ?? v.fallback ?? "";
    out[name] = String(s);
  }
  return out;
}

/**
 * The text a recipient gets. `vars` holds the per-recipient values (name, nickname, consultant,
 * clinic, and link: the tracked short link; without it {{link}} is the entry's link.url, untracked).
 * A variable's fixed `value` wins over vars; an empty or missing value takes the declared
 * fallback; with neither, MissingVariableError. Values are
 * escaped for the format (text: WeCom text messages, 1:1 and group; markdown: WeCom markdown).
 */
export function renderEntry(entry: Pick<CalendarEntry, "key" | "template" | "variables" | "link">, vars: Readonly<Record<string, unknown>>, opts: { format?: TemplateFormat } = {}): string {
  const values: Record<string, string> = {};
  for (const name of usedVariables(entry.template)) {
    const decl = entry.variables[name];
    const given = vars[name];
    if (decl?.value !== undefined) values[name] = String(decl.value);
    else if (present(given)) values[name] = String(given);
    else if (name === "link" && entry.link) values[name] = entry.link.url;
    else if (decl?.fallback !== undefined) values[name] = decl.fallback;
    else throw new MissingVariableError(entry.key, name);
  }
  return renderTemplate(entry.template, values, opts.format ?? "text");
}

/** WeCom add_msg_template attachments (doc 92135 shapes), with `link` replacing the link's url (tracking). */
export type EntryAttachment =
  | { msgtype: "link"; link: { title: string; url: string; desc?: string; picurl?: string } }
  | { msgtype: "image"; image: { pic_url: string } }
  | { msgtype: "miniprogram"; miniprogram: { title: string; appid: string; page: string; picUrl?: string } };

/**
 * The attachments an entry sends. Article and livestream entries send their link as a card; other
 * kinds offer the link only as {{link}} in the text. A mini-program's cover (picUrl) must be
 * uploaded for a pic_media_id by the sender.
 */
export function entryAttachments(entry: Pick<CalendarEntry, "kind" | "link" | "image" | "miniprogram">, opts: { link?: string } = {}): EntryAttachment[] {
  const out: EntryAttachment[] = [];
  if (entry.link && (entry.kind === "article" || entry.kind === "livestream")) {
    out.push({ msgtype: "link", link: { title: entry.link.title, url: opts.link ?? entry.link.url, ...(entry.link.desc ? { desc: entry.link.desc } : {}), ...(entry.link.picUrl ? { picurl: entry.link.picUrl } : {}) } });
  }
  if (entry.image) out.push({ msgtype: "image", image: { pic_url: entry.image.url } });
  if (entry.miniprogram) out.push({ msgtype: "miniprogram", miniprogram: { title: entry.miniprogram.title, appid: entry.miniprogram.appId, page: entry.miniprogram.page, ...(entry.miniprogram.picUrl ? { picUrl: entry.miniprogram.picUrl } : {}) } });
  return out;
}

/**
 * What reviewers see of an entry besides its text, on one line (the post's title): link, image,
 * mini-program, poll options. Part of the approved content, so a changed link needs a new review.
 */
export function attachmentSummary(entry: Pick<CalendarEntry, "kind" | "link" | "image" | "miniprogram" | "poll">): string | null {
  const parts: string[] = [];
  if (entry.link) parts.push(`${entry.kind === "livestream" ? "直播" : "链接"}：${entry.link.title}${entry.link.desc ? ` — ${entry.link.desc}` : ""} ${entry.link.url}`);
  if (entry.image) parts.push(`图片：${entry.image.url}`);
  if (entry.miniprogram) parts.push(`小程序：${entry.miniprogram.title}（${entry.miniprogram.appId} ${entry.miniprogram.page}）`);
  if (entry.poll) parts.push(`选项：${entry.poll.options.join(" / ")}`);
  return parts.length ? parts.join("；") : null;
}

/**
 * The post an entry becomes (and what the send gate compares): 1:1 entries are mass_message posts,
 * group entries community_post; the body is the template as written, the title the attachment
 * summary, the sample data the declared variables' samples.
 */
export function entryPost(entry: CalendarEntry): { kind: "mass_message" | "community_post"; title: string | null; body: string; sampleData: Record<string, string> } {
  return { kind: entry.channel === "group" ? "community_post" : "mass_message", title: attachmentSummary(entry), body: entry.template, sampleData: sampleValues(entry) };
}
