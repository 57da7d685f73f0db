import { fail } from "../errors";
import { ids } from "../ids";
import type { FakeWecomState } from "../state";
import type { Content } from "./content";

// Welcome codes (doc §2.1, §3.8): delivered in add_external_contact, valid 20 s, usable once.

export function issueWelcomeCode(state: FakeWecomState, userid: string, externalUserId: string): string {
  const code = ids.welcomeCode();
  state.welcomeCodes.set(code, { code, userid, externalUserId, issuedAtMs: state.nowMs() });
  return code;
}

/** 41049 missing, 41050 unknown or expired, 41051 already used (the first caller won). */
export function checkWelcomeCode(state: FakeWecomState, code: string | undefined) {
  if (code === undefined || code === "") return fail(41049);
  const record = state.welcomeCodes.get(code) ?? fail(41050);
  if (record.usedAtMs !== undefined) return fail(41051);
  if (state.nowMs() - record.issuedAtMs > state.settings.welcomeCodeTtlSeconds * 1000) return fail(41050);
  return record;
}

export function sendWelcomeMsg(state: FakeWecomState, code: string, content: Content): void {
  const record = checkWelcomeCode(state, code);
  record.usedAtMs = state.nowMs();
  const sent = { welcomeCode: code, userid: record.userid, externalUserId: record.externalUserId, attachments: content.attachments, sentAt: state.nowSec() };
  state.welcomeMessages.push(content.text ? { ...sent, text: content.text } : sent);
}
