import { fail } from "../errors";
import { ids } from "../ids";
import type { FakeAccessToken, FakeWecomState } from "../state";

/**
 * gettoken: one token per secret, reused while valid (the earlier doc text: repeated calls within
 * the validity return the same token), `expires_in` = seconds left.
 */
export function issueToken(state: FakeWecomState, corpid: string | undefined, secret: string | undefined): { accessToken: string; expiresIn: number } {
  if (corpid === undefined || corpid === "") return fail(41002);
  if (corpid !== state.corpId) return fail(40013);
  if (secret === undefined || secret === "") return fail(41004);
  if (!state.secrets.includes(secret)) return fail(40001);
  const now = state.nowMs();
  const current = state.tokens.get(state.currentTokens.get(secret) ?? "");
  if (current && !current.revoked && current.expiresAtMs > now) {
    return { accessToken: current.token, expiresIn: Math.ceil((current.expiresAtMs - now) / 1000) };
  }
  const ttl = state.settings.tokenTtlSeconds;
  const record: FakeAccessToken = { token: ids.accessToken(), secret, issuedAtMs: now, expiresAtMs: now + ttl * 1000, revoked: false };
  state.tokens.set(record.token, record);
  state.currentTokens.set(secret, record.token);
  return { accessToken: record.token, expiresIn: ttl };
}

/** 41001 missing, 40014 unknown or revoked, 42001 expired. */
export function checkToken(state: FakeWecomState, token: string | undefined): FakeAccessToken {
  if (token === undefined || token === "") return fail(41001);
  const record = state.tokens.get(token);
  if (!record || record.revoked) return fail(40014);
  if (record.expiresAtMs <= state.nowMs()) return fail(42001);
  return record;
}

/** WeCom may invalidate tokens early: every outstanding token now answers 40014. */
export function revokeTokens(state: FakeWecomState): number {
  let n = 0;
  for (const t of state.tokens.values()) {
    if (!t.revoked && t.expiresAtMs > state.nowMs()) n++;
    t.revoked = true;
  }
  state.currentTokens.clear();
  return n;
}
