/**
 * A contact's personal channel code (转介绍): the WeCom contact-way `state` that links people who add
 * a consultant through it to the referrer. `ref_` + the referrer's id as 22 base64url characters
 * fits WeCom's 30-character limit on state.
 */
const PREFIX = "ref_";

export function referralState(contactId: string): string {
  const hex = contactId.replace(/-/g, "");
  if (!/^[0-9a-f]{32}$/i.test(hex)) throw new Error("not a uuid");
  return PREFIX + Buffer.from(hex, "hex").toString("base64url");
}

/** The referrer's contact id, or null when the state is not a referral code. */
export function referrerFromState(state: string | undefined | null): string | null {
  if (!state || !state.startsWith(PREFIX)) return null;
  const raw = state.slice(PREFIX.length);
  if (!/^[A-Za-z0-9_-]{22}$/.test(raw)) return null;
  const hex = Buffer.from(raw, "base64url").toString("hex");
  if (hex.length !== 32) return null;
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
