import { and, eq, TransactionRollbackError } from "drizzle-orm";
import { z } from "zod";
import { posts } from "../../db/schema/index";
import { occurrence } from "../../domain/delivery/schedule";
import { NotFoundError, ValidationError, zodIssues } from "../../errors";
import { requirePermission, type Ctx } from "../context";
import { lockPlanning, planInto, samplePlan, type PlanStats } from "./plan";
import { deliverySettings } from "./settings";
import { loadCalendar, specsOf, type PlanSpec } from "./spec";

export const PreviewInput = z.object({
  /** Only this entry (by key). */
  entry: z.string().max(64).optional(),
  /** Recipients shown per entry (planned first, then skipped). */
  sample: z.coerce.number().int().min(0).max(200).default(20),
});

export type ConflictKind = "quota" | "fatigue" | "opted_out" | "no_sender" | "condition" | "not_wecom" | "removed_contact" | "passed" | "quiet_hours" | "late" | "audience" | "other";

export interface EntryPreview {
  key: string;
  entryId: string | null;
  postId: string | null;
  /** The post's review state (draft calendars have none yet): sends go out only once it is approved. */
  postStatus: string | null;
  channel: "single" | "group";
  service: boolean;
  when: unknown;
  stats: PlanStats;
  sample: Awaited<ReturnType<typeof samplePlan>>;
}

export interface CalendarPreview {
  calendarId: string;
  status: string;
  timeZone: string;
  quietHours: { start: string; end: string };
  entries: EntryPreview[];
  totals: { planned: number; skipped: number; already: number };
  /** What will not go as written, per entry: caps, opt-outs, missing senders, quiet-hour moves. */
  conflicts: { entry: string; kind: ConflictKind; n: number; detail: string }[];
}

function kindOf(reason: string): ConflictKind {
  if (reason.startsWith("over WeCom")) return "quota";
  if (reason.startsWith("over the fatigue cap")) return "fatigue";
  if (reason.includes("opted out")) return "opted_out";
  if (reason.startsWith("no sender")) return "no_sender";
  if (reason.startsWith("skipped by the entry's condition")) return "condition";
  if (reason.startsWith("not a WeCom contact")) return "not_wecom";
  if (reason.startsWith("the contact removed")) return "removed_contact";
  if (reason.startsWith("its time")) return "passed";
  if (reason.includes("audience") || reason.includes("group chat") || reason.includes("occurrence")) return "audience";
  return "other";
}

class Preview extends Error {
  constructor(readonly result: CalendarPreview) {
    super("preview");
  }
}

/**
 * Who gets what when, before anything is sent (or published): the planner runs for real in a
 * transaction under the tenant's planning lock, entries in order of time (earlier ones take the
 * caps first, across this calendar and the sends already planned by others), and the transaction
 * is rolled back. Per entry: counts, skip reasons, quiet-hour moves and a sample of recipients
 * with their time and sender or the reason they are skipped. A draft calendar (no entries or posts
 * yet) previews from its definition.
 */
export async function previewCalendar({ ctx, id, input }: { ctx: Ctx; id: string; input?: unknown }): Promise<CalendarPreview> {
  requirePermission(ctx, "calendars:read");
  const p = PreviewInput.safeParse(input ?? {});
  if (!p.success) throw new ValidationError(zodIssues(p.error.issues));
  if (!z.uuid().safeParse(id).success) throw new NotFoundError("calendar");
  const loaded = await loadCalendar(ctx.deps.db, ctx.tenantId, id);
  if (!loaded) throw new NotFoundError("calendar");
  let specs = specsOf(loaded.cal, loaded.rows).filter((s) => !s.removed);
  if (p.data.entry) {
    specs = specs.filter((s) => s.entryKey === p.data.entry);
    if (!specs.length) throw new ValidationError([{ field: "entry", message: "is not an entry of this calendar" }]);
  }
  const settings = await deliverySettings(ctx.deps.db, ctx.deps, ctx.tenantId);
  const now = ctx.deps.now();
  const first = specs[0];
  const result: CalendarPreview = {
    calendarId: id,
    status: loaded.cal.status,
    timeZone: first?.timeZone ?? settings.timeZone,
    quietHours: first?.quietHours ?? { start: "21:00", end: "08:30" },
    entries: [],
    totals: { planned: 0, skipped: 0, already: 0 },
    conflicts: [],
  };
  try {
    await ctx.deps.db.transaction(async (tx) => {
      const tctx = { ...ctx, tx };
      await lockPlanning(tx, ctx.tenantId);
      for (const s of byTime(specs, now)) {
        const stats = await planInto(tx, tctx, s, settings, { write: false, now });
        const sample = p.data.sample ? await samplePlan(tx, tctx, p.data.sample) : [];
        let postStatus: string | null = null;
        if (s.postId) postStatus = (await tx.select({ status: posts.status }).from(posts).where(and(eq(posts.tenantId, ctx.tenantId), eq(posts.id, s.postId))))[0]?.status ?? null;
        result.entries.push({ key: s.entryKey, entryId: s.entryId, postId: s.postId, postStatus, channel: s.channel, service: s.service, when: s.when, stats, sample });
        result.totals.planned += stats.planned;
        result.totals.skipped += stats.skipped;
        result.totals.already += stats.already;
        for (const r of stats.reasons) result.conflicts.push({ entry: s.entryKey, kind: kindOf(r.reason), n: r.n, detail: r.reason });
        if (stats.movedQuiet) result.conflicts.push({ entry: s.entryKey, kind: "quiet_hours", n: stats.movedQuiet, detail: `moved out of the quiet hours ${s.quietHours.start}-${s.quietHours.end} to ${stats.firstAt}` });
        if (stats.late) result.conflicts.push({ entry: s.entryKey, kind: "late", n: stats.late, detail: "its time has passed: sent at once (the next minute outside quiet hours)" });
      }
      throw new Preview(result);
    });
  } catch (err) {
    if (err instanceof Preview) return err.result;
    if (err instanceof TransactionRollbackError) return result;
    throw err;
  }
  return result;
}

/** Entries in order of their first time (relative ones by day), so the earlier ones take the caps first, as delivery would. */
function byTime(specs: PlanSpec[], now: Date): PlanSpec[] {
  const key = (s: PlanSpec): string => {
    const w = s.when;
    if (w.kind === "relative") return `r${String(w.day + 100).padStart(4, "0")}${w.time}`;
    if (w.kind === "before") return `r${String(100).padStart(4, "0")}${String(99_999 - w.minutes).padStart(5, "0")}`;
    if (w.kind === "birthday") return `b${String(999 - w.daysBefore).padStart(3, "0")}${w.time}`;
    try {
      return occurrence(w, now, s.timeZone)?.toISOString() ?? "~";
    } catch {
      return "~";
    }
  };
  return [...specs].sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));
}
