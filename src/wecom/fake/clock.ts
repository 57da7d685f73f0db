/** The fake's only time source: every expiry, counter and CreateTime reads it, so tests can inject `now`. */
export class Clock {
  constructor(private readonly source: () => Date = () => new Date()) {}

  nowMs(): number {
    return this.source().getTime();
  }

  /** Unix seconds, as in CreateTime, createtime, send_time. */
  nowSec(): number {
    return Math.floor(this.nowMs() / 1000);
  }
}

export type CapPeriod = "day" | "week" | "month";

// China has had no DST since 1991: Asia/Shanghai is a fixed UTC+8, so natural days/weeks/months are
// computed by shifting instead of through Intl.
const SHANGHAI_OFFSET_MS = 8 * 3600_000;

/** The natural day/week (Monday start)/month in Asia/Shanghai containing `ms`, as a comparable key. */
export function periodKey(per: CapPeriod, ms: number): string {
  const local = new Date(ms + SHANGHAI_OFFSET_MS);
  const ymd = local.toISOString().slice(0, 10);
  if (per === "day") return ymd;
  if (per === "month") return ymd.slice(0, 7);
  const daysSinceMonday = (local.getUTCDay() + 6) % 7;
  return `w${new Date(local.getTime() - daysSinceMonday * 86400_000).toISOString().slice(0, 10)}`;
}
