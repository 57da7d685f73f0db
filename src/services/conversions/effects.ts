import type { Tx } from "../../db/client";
import type { Ctx } from "../context";
import { planFollowUps } from "./follow-ups";
import { applyReferralConversions } from "./referrals";

interface BatchEvent {
  id: string;
  contactId: string;
  type: string;
  occurredAt: Date;
  payload: Record<string, unknown>;
}

/**
 * What recorded conversions set off beyond tags, in the events worker's transaction: a visit plans
 * its follow-up (回访) and satisfaction survey; a referred contact's first conversion credits the
 * referrer (referral_converted). Both idempotent: a batch applied twice adds nothing.
 */
export async function applyConversionEffects(tx: Tx, ctx: Ctx, batch: readonly BatchEvent[]): Promise<void> {
  await planFollowUps(tx, ctx, batch);
  await applyReferralConversions(tx, ctx, batch);
}
