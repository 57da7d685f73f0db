import { jobId } from "../../queue/catalog";
import type { ServiceDeps } from "../context";

/** One lead's first-contact timer: the deadline, and when to remind the owner (null: no reminder). */
export interface SlaTimer {
  tenantId: string;
  leadId: string;
  dueAt: Date;
  remindAt: Date | null;
}

/** Job ids of a deadline's two jobs: the same lead and due time always give the same ids. */
export function slaJobIds(leadId: string, dueAt: Date): { remind: string; breach: string } {
  const due = String(dueAt.getTime());
  return { remind: jobId("sla-remind", leadId, due), breach: jobId("sla-breach", leadId, due) };
}

/**
 * Arm a lead's first-contact timers as BullMQ delayed jobs: a reminder at `remindAt` and the breach
 * at `dueAt`. The deadline itself lives in leads.first_contact_due_at; these jobs are only its alarm
 * clock. Arming twice is harmless (deterministic ids: BullMQ keeps the first), and a job that
 * fires for a deadline that no longer holds does nothing. Lost jobs are re-armed by the lead-sla
 * sweep (at scheduler start, and every minute for deadlines within the hour).
 */
export async function armSlaTimers(deps: ServiceDeps, tenantId: string, leadId: string, dueAt: Date, remindAt: Date | null): Promise<void> {
  await armSlaTimersMany(deps, [{ tenantId, leadId, dueAt, remindAt }]);
}

/** armSlaTimers for many leads at once (two bulk adds). */
export async function armSlaTimersMany(deps: ServiceDeps, timers: readonly SlaTimer[]): Promise<void> {
  if (!timers.length) return;
  const now = deps.now().getTime();
  const payload = (t: SlaTimer) => ({ tenantId: t.tenantId, leadId: t.leadId, dueAt: t.dueAt.toISOString() });
  // A reminder for a deadline already passed would only say "0 minutes left": the breach covers it.
  const reminders = timers.filter((t) => t.remindAt && t.dueAt.getTime() > now);
  await Promise.all([
    deps.producer.enqueueMany(
      "lead-sla-remind",
      reminders.map((t) => ({ payload: payload(t), jobId: slaJobIds(t.leadId, t.dueAt).remind, delayMs: Math.max(0, t.remindAt!.getTime() - now) })),
    ),
    deps.producer.enqueueMany(
      "lead-sla-breach",
      timers.map((t) => ({ payload: payload(t), jobId: slaJobIds(t.leadId, t.dueAt).breach, delayMs: Math.max(0, t.dueAt.getTime() - now) })),
    ),
  ]);
}
