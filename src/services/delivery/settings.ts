import { eq } from "drizzle-orm";
import type { DbOrTx } from "../../db/client";
import { tenants } from "../../db/schema/index";
import type { ServiceDeps } from "../context";

/**
 * The caps delivery plans within, per tenant. Today they come from the environment
 * (DELIVERY_MASS_CAP_PER_DAY, DELIVERY_FATIGUE_CAP, DELIVERY_FATIGUE_DAYS, …) for every tenant;
 * a per-tenant override needs a settings row (not in the schema yet) and would be read here only.
 */
export interface DeliverySettings {
  /** The tenant's time zone: the ledger's local days (WeCom counts natural days in China time). */
  timeZone: string;
  /** WeCom's per-customer (and per-group) mass-message cap per local day. */
  massCapPerDay: number;
  /** At most this many marketing sends per contact in any `fatigueDays` consecutive local days, across calendars. */
  fatigueCap: number;
  fatigueDays: number;
  /** One WeCom app reminder to staff who have not confirmed a mass message after this long. */
  remindAfterMinutes: number;
  /** A mass message not confirmed within this long is cancelled in WeCom; its sends fail. */
  confirmHours: number;
}

export async function deliverySettings(db: DbOrTx, deps: ServiceDeps, tenantId: string): Promise<DeliverySettings> {
  const [t] = await db.select({ timeZone: tenants.timezone }).from(tenants).where(eq(tenants.id, tenantId));
  const c = deps.config;
  return {
    timeZone: t?.timeZone ?? c.TIMEZONE,
    massCapPerDay: c.DELIVERY_MASS_CAP_PER_DAY,
    fatigueCap: c.DELIVERY_FATIGUE_CAP,
    fatigueDays: c.DELIVERY_FATIGUE_DAYS,
    remindAfterMinutes: c.DELIVERY_REMIND_AFTER_MINUTES,
    confirmHours: c.DELIVERY_CONFIRM_HOURS,
  };
}
