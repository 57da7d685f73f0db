import type { TimelineEntry } from "../../services/contacts/timeline";
import type { LeadTimelineEntry } from "../../services/leads/workspace";
import { hasMessage, type MessageKey, type Translate } from "./i18n";
import type { Formats } from "./kit";

/** Turn service results into what templates print: labels from the catalogue, times in the tenant's zone. */

export interface TimelineItem {
  anchor?: string;
  kind: string;
  at: string;
  atText: string;
  title: string;
  detail: string;
}

// Event fields worth a line in the timeline, in this order; ids of other records are left out.
const DETAIL_FIELDS = ["text", "topic", "articleId", "liveId", "minutes", "item", "items", "amount", "outcome", "lostReason", "reason", "at", "state", "chatId", "score", "comment", "mode", "note"] as const;

const label = (t: Translate, key: string, fallback: string) => (hasMessage(key) ? t(key) : fallback);

/** Short text for a table cell or a line. */
export function clip(s: string, n = 80): string {
  return s.length > n ? `${s.slice(0, n)}…` : s;
}

export function eventDetail(t: Translate, fmt: Formats, data: Record<string, unknown>): string {
  const parts: string[] = [];
  for (const f of DETAIL_FIELDS) {
    const v = data[f];
    if (v === undefined || v === null || v === "") continue;
    let text: string;
    if (Array.isArray(v)) text = v.map(String).join("、");
    else if (f === "at" && typeof v === "string") text = fmt.dateTime(v);
    else if (f === "outcome" && (v === "converted" || v === "lost")) text = t(`outcome.${v}`);
    else if (f === "mode" && (v === "online" || v === "in_person")) text = t(`outcome.mode.${v}`);
    else if (typeof v === "object") continue;
    else text = String(v);
    parts.push(`${t(`field.${f}` as MessageKey)}：${clip(text)}`);
  }
  return parts.join("；");
}

/** Who did it, as the signed-in person reads it: 我, the lead's owner by name, else 同事. */
export type StaffName = (staffId: string | null) => string;

export function timelineItems(t: Translate, fmt: Formats, entries: (TimelineEntry | LeadTimelineEntry)[], who: StaffName): TimelineItem[] {
  return entries.map((e) => {
    const base = { kind: e.kind, at: e.at, atText: fmt.dateTime(e.at) };
    switch (e.kind) {
      case "event":
        return { ...base, anchor: `ev-${e.id}`, title: label(t, `event.${e.type}`, e.type), detail: eventDetail(t, fmt, e.data) };
      case "tag": {
        const tag = `${e.group}:${e.tag}`;
        const why = e.ruleId ? t("tl.byRule", { rule: e.ruleId, version: e.ruleVersion ?? "?" }) : t("tl.source", { source: label(t, `contact.reason.${e.source}`, e.source) });
        return { ...base, title: t(e.action === "add" ? "tl.tag.add" : "tl.tag.remove", { tag }), detail: why };
      }
      case "assignment":
        return {
          ...base,
          title: t("tl.assignment", { kind: label(t, `assign.${e.assignment}`, e.assignment) }),
          detail: [e.toStaffId ? t("tl.assignment.to", { name: who(e.toStaffId) }) : t("tl.assignment.pool"), e.strategy ? label(t, `strategy.${e.strategy}`, e.strategy) : "", e.reason].filter(Boolean).join("；"),
        };
      case "grade":
        return { ...base, title: t("tl.grade", { from: e.fromGrade ?? "—", to: e.toGrade, score: e.score }), detail: "" };
      case "attempt":
        return {
          ...base,
          anchor: `at-${e.id}`,
          title: t("tl.attempt", { channel: label(t, `attempt.channel.${e.channel}`, e.channel), outcome: label(t, `attempt.outcome.${e.outcome}`, e.outcome) }),
          detail: [who(e.staffId), e.note ? clip(e.note) : ""].filter(Boolean).join("；"),
        };
      case "task":
        return { ...base, title: t("tl.task", { title: e.title, status: label(t, `task.${e.status}`, e.status) }), detail: e.skipReason ?? "" };
      case "sla_breach":
        return { ...base, title: t("tl.breach", { due: fmt.dateTime(e.dueAt) }), detail: who(e.staffId) };
    }
  });
}

/** Options of a select: value, label, selected. */
export function options<T extends string>(values: readonly T[], labelOf: (v: T) => string, selected: string | undefined) {
  return values.map((value) => ({ value, label: labelOf(value), selected: value === selected }));
}

/** Money in yuan without decimals: ¥12,800. */
export const yuan = (n: number): string => `¥${Math.round(n).toLocaleString("zh-CN")}`;
