/**
 * Slows password guessing: after 10 failed sign-ins for one (tenant, email) or 30 from one address
 * within 15 minutes, further attempts are refused with 429 until the window passes. Kept in memory
 * per API process (each instance counts its own), which bounds guessing to a few attempts a minute.
 */
export class LoginThrottle {
  private readonly failures = new Map<string, number[]>();
  constructor(
    private readonly now: () => number = Date.now,
    private readonly windowMs = 15 * 60_000,
    private readonly perAccount = 10,
    private readonly perAddress = 30,
  ) {}

  private recent(key: string): number[] {
    const cutoff = this.now() - this.windowMs;
    const list = (this.failures.get(key) ?? []).filter((t) => t > cutoff);
    if (list.length) this.failures.set(key, list);
    else this.failures.delete(key);
    return list;
  }

  /** Seconds to wait, or 0 when an attempt may proceed. */
  retryAfter(account: string, address: string): number {
    const a = this.recent(`a:${account}`);
    const b = this.recent(`ip:${address}`);
    const blocked = (a.length >= this.perAccount ? a : null) ?? (b.length >= this.perAddress ? b : null);
    if (!blocked) return 0;
    return Math.max(1, Math.ceil((blocked[0]! + this.windowMs - this.now()) / 1000));
  }

  fail(account: string, address: string): void {
    for (const key of [`a:${account}`, `ip:${address}`]) this.failures.set(key, [...this.recent(key), this.now()]);
    if (this.failures.size > 100_000) this.failures.clear(); // memory bound under a spray attack
  }

  succeed(account: string): void {
    this.failures.delete(`a:${account}`);
  }
}
