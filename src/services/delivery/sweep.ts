import type { ServiceDeps } from "../context";
import { planPending } from "./plan-entry";
import { healLedger, reconcileInterrupted, type ReconcileResult } from "./reconcile";
import { rearmPolls } from "./results";
import { ARM_HORIZON_MS, armBatches, pendingBatches } from "./timers";

/**
 * The delivery sweep: PostgreSQL is the truth, Redis only the alarm clock. At scheduler start
 * (`startup`) it re-arms every batch due within ARM_HORIZON_MS and every pending result poll; each
 * minute (`schedule`) it
 * - plans entries whose posts were approved (or that have new enrollments) and are not planned yet;
 * - arms the batches due within the hour (jobs keep their ids: nothing doubles);
 * - re-arms batches overdue by more than OVERDUE_MS under a fresh id per five minutes (their job
 *   was lost, or ran before the sends existed; a run finds nothing to claim when there is nothing);
 * - every ten minutes: reconciles sends interrupted between `sending` and WeCom's answer, re-arms
 *   result polls, and gives back ledger reservations of sends ended elsewhere.
 */
export const OVERDUE_MS = 2 * 60_000;

export interface DeliverySweepResult {
  plannedEntries: number;
  armed: number;
  overdue: number;
  reconciled: ReconcileResult | null;
  polls: number;
  healed: number;
}

export async function sweepDelivery(deps: ServiceDeps, opts: { reason: "startup" | "schedule" | "manual" }): Promise<DeliverySweepResult> {
  const now = deps.now();
  const full = opts.reason !== "schedule" || now.getUTCMinutes() % 10 === 0;
  const result: DeliverySweepResult = { plannedEntries: 0, armed: 0, overdue: 0, reconciled: null, polls: 0, healed: 0 };
  result.plannedEntries = await planPending(deps, { birthdays: opts.reason !== "schedule" || now.getUTCMinutes() === 0 });
  const horizon = opts.reason === "startup" ? ARM_HORIZON_MS : 3_600_000;
  const upcoming = await pendingBatches(deps.db, { notBefore: new Date(now.getTime() - OVERDUE_MS), before: new Date(now.getTime() + horizon) });
  await armBatches(deps, upcoming);
  result.armed = upcoming.length;
  const overdue = await pendingBatches(deps.db, { before: new Date(now.getTime() - OVERDUE_MS), limit: 2000 });
  await armBatches(deps, overdue, `s${Math.floor(now.getTime() / (5 * 60_000))}`);
  result.overdue = overdue.length;
  if (full) {
    result.reconciled = await reconcileInterrupted(deps);
    result.polls = await rearmPolls(deps);
    result.healed = await healLedger(deps, { since: opts.reason === "startup" ? new Date(0) : new Date(now.getTime() - 2 * 86_400_000) });
  }
  if (result.plannedEntries || result.overdue || result.reconciled?.adopted || result.reconciled?.replanned || result.healed || opts.reason !== "schedule") deps.logger.info(result, "delivery sweep");
  return result;
}
