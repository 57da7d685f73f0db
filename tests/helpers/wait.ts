/** Poll until fn returns a truthy value or the timeout passes (then throw with the last value). */
export async function waitFor<T>(fn: () => Promise<T>, { timeoutMs = 15_000, intervalMs = 50, what = "condition" } = {}): Promise<NonNullable<T>> {
  const until = Date.now() + timeoutMs;
  let last: T | undefined;
  while (Date.now() < until) {
    last = await fn();
    if (last) return last as NonNullable<T>;
    await new Promise((r) => setTimeout(r, intervalMs));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; last value: ${JSON.stringify(last)}`);
}
