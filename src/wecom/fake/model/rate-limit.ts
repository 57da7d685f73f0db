import type { FakeWecomState } from "../state";

/**
 * Per corp per API path per natural minute (doc §4.1: 10,000/min). Going over answers 45009 and
 * blocks the path for the rest of that minute; the next minute starts afresh.
 * Returns true when the call may proceed.
 */
export function takeRateToken(state: FakeWecomState, path: string): boolean {
  const now = state.nowMs();
  const minute = Math.floor(now / 60_000);
  let bucket = state.rateBuckets.get(path);
  if (!bucket || bucket.minute !== minute) {
    bucket = { minute, count: 0, blockedUntilMs: bucket?.blockedUntilMs ?? 0 };
    state.rateBuckets.set(path, bucket);
  }
  if (bucket.blockedUntilMs > now) return false;
  bucket.count++;
  if (bucket.count > state.settings.rateLimitPerMinute) {
    bucket.blockedUntilMs = (minute + 1) * 60_000;
    return false;
  }
  return true;
}
