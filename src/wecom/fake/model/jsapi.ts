import { createHash } from "node:crypto";
import { controlFail, fail } from "../errors";
import { randomString } from "../ids";
import type { FakeWecomState } from "../state";

// The chat sidebar's side of WeCom (shared/wecom-jssdk-kf.md Part 1): JS-SDK tickets and their
// signatures, OAuth codes of web sign-in, and the WeCom client the sidebar runs in (who is signed
// in, which chat is open, what the page sent into it). Kept beside FakeWecomState (one per state)
// so the core state stays as it is.

export type TicketKind = "corp" | "agent";

export interface FakeJsapiTicket {
  ticket: string;
  kind: TicketKind;
  issuedAtMs: number;
  expiresAtMs: number;
  revoked: boolean;
}

/** Where the page was opened (getContext's `entry`, doc 1.5). */
export const CHAT_ENTRIES = [
  "contact_profile",
  "single_chat_tools",
  "group_chat_tools",
  "chat_attachment",
  "single_kf_tools",
  "chain_single_chat_tools",
  "chain_group_chat_tools",
  "internal_group_chat_board",
  "normal",
] as const;
export type ChatEntry = (typeof CHAT_ENTRIES)[number];

/** The WeCom client the sidebar runs in: the member signed in and the chat open beside the page. */
export interface FakeChatContext {
  /** The member signed in to the client (OAuth signs them in; JS-SDK calls act as them). */
  userid?: string;
  entry: ChatEntry;
  /** The customer of a single chat (or a profile page). */
  externalUserId?: string;
  /** The customer group of a group chat. */
  chatId?: string;
  /** The client's version (`wxwork/x.y.z`): below 3.0.24 wx.agentConfig needs a successful wx.config first. */
  version: string;
  shareTicket?: string;
}

/** One sendChatMessage the page made, as the client would put it into the chat. */
export interface FakeChatMessage {
  userid: string;
  entry: ChatEntry;
  externalUserId?: string;
  chatId?: string;
  msgtype: string;
  /** The message as the page passed it (msgtype, text/image/news/… and enterChat). */
  message: Record<string, unknown>;
  /** The page it came from (without `#…`). */
  url: string;
  at: number;
}

export interface FakeOauthCode {
  code: string;
  userid: string;
  redirectUri: string;
  issuedAtMs: number;
  usedAtMs?: number;
}

export class FakeJsapiState {
  readonly tickets = new Map<string, FakeJsapiTicket>();
  readonly current: Partial<Record<TicketKind, string>> = {};
  /** Ticket fetches per natural hour: corp ≤ 400, agent ≤ 100 (doc 90506 as quoted by SDKs); beyond: 45009. */
  readonly hourly = new Map<TicketKind, { hour: number; count: number }>();
  limits: Record<TicketKind, number> = { corp: 400, agent: 100 };
  ticketTtlSeconds = 7200;
  readonly codes = new Map<string, FakeOauthCode>();
  /** Code lifetime: 5 minutes (doc 98177). */
  codeTtlSeconds = 300;
  context: FakeChatContext = { entry: "normal", version: "4.1.30" };
  readonly sent: FakeChatMessage[] = [];
  /** The app's trusted domains (网页授权及JS-SDK); null: every host is trusted. */
  trustedHosts: string[] | null = null;
}

const byState = new WeakMap<FakeWecomState, FakeJsapiState>();

export function jsapiOf(state: FakeWecomState): FakeJsapiState {
  let s = byState.get(state);
  if (!s) byState.set(state, (s = new FakeJsapiState()));
  return s;
}

// ---- tickets ----

/** The kind's ticket, the same one while it is valid (`expires_in` = seconds left); 45009 past the hourly limit. */
export function issueJsapiTicket(state: FakeWecomState, kind: TicketKind): { ticket: string; expiresIn: number } {
  const j = jsapiOf(state);
  const now = state.nowMs();
  const hour = Math.floor(now / 3_600_000);
  const counter = j.hourly.get(kind);
  const count = counter && counter.hour === hour ? counter.count + 1 : 1;
  j.hourly.set(kind, { hour, count });
  if (count > j.limits[kind]) return fail(45009, `${kind === "corp" ? "get_jsapi_ticket" : "ticket/get"} at most ${j.limits[kind]} times an hour: cache the ticket`);
  const current = j.tickets.get(j.current[kind] ?? "");
  if (current && !current.revoked && current.expiresAtMs > now) return { ticket: current.ticket, expiresIn: Math.ceil((current.expiresAtMs - now) / 1000) };
  // Real tickets are ~86 URL-safe characters.
  const t: FakeJsapiTicket = { ticket: randomString(86, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"), kind, issuedAtMs: now, expiresAtMs: now + j.ticketTtlSeconds * 1000, revoked: false };
  j.tickets.set(t.ticket, t);
  j.current[kind] = t.ticket;
  return { ticket: t.ticket, expiresIn: j.ticketTtlSeconds };
}

/** WeCom may replace tickets early: every outstanding one stops verifying, the next fetch gets a new one. */
export function revokeJsapiTickets(state: FakeWecomState): number {
  const j = jsapiOf(state);
  let n = 0;
  for (const t of j.tickets.values()) {
    if (!t.revoked && t.expiresAtMs > state.nowMs()) n++;
    t.revoked = true;
  }
  delete j.current.corp;
  delete j.current.agent;
  return n;
}

/** sha1("jsapi_ticket=T&noncestr=N&timestamp=TS&url=URL"), written here independently of @wecom/crypto. */
export function jsapiSignature(ticket: string, nonceStr: string, timestamp: string | number, url: string): string {
  return createHash("sha1").update(`jsapi_ticket=${ticket}&noncestr=${nonceStr}&timestamp=${timestamp}&url=${url}`).digest("hex");
}

export interface SignedPage {
  url: string;
  nonceStr: string;
  timestamp: string | number;
  signature: string;
}

/**
 * 0 when `signed` is a signature of the page with a valid ticket of `kind`; 42012 when it was made
 * with a valid ticket of the other kind (the corp ticket for agentConfig, or the reverse); 80001
 * when the page's host is not a trusted domain; else 40093 (wrong or stale ticket, encoded URL,
 * `#…` signed, nonce or timestamp not the ones signed).
 */
export function verifyJsapiSignature(state: FakeWecomState, kind: TicketKind, signed: SignedPage): number {
  const j = jsapiOf(state);
  let host = "";
  try {
    host = new URL(signed.url).hostname;
  } catch {
    return 40093;
  }
  if (j.trustedHosts && !j.trustedHosts.includes(host)) return 80001;
  const now = state.nowMs();
  let other = false;
  for (const t of j.tickets.values()) {
    if (t.revoked || t.expiresAtMs <= now) continue;
    if (jsapiSignature(t.ticket, signed.nonceStr, signed.timestamp, signed.url) !== signed.signature) continue;
    if (t.kind === kind) return 0;
    other = true;
  }
  return other ? 42012 : 40093;
}

// ---- OAuth (web sign-in, doc 98177) ----

export function issueOauthCode(state: FakeWecomState, userid: string, redirectUri: string): string {
  const j = jsapiOf(state);
  const code = randomString(43, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_");
  j.codes.set(code, { code, userid, redirectUri, issuedAtMs: state.nowMs() });
  return code;
}

/** auth/getuserinfo: the member behind a code; 41008 missing, 40029 unknown, used or older than 5 minutes. */
export function exchangeOauthCode(state: FakeWecomState, code: string | undefined): string {
  if (code === undefined || code === "") return fail(41008);
  const j = jsapiOf(state);
  const c = j.codes.get(code);
  const now = state.nowMs();
  if (!c || c.usedAtMs !== undefined || now - c.issuedAtMs > j.codeTtlSeconds * 1000) return fail(40029);
  c.usedAtMs = now;
  return c.userid;
}

// ---- the client's chat ----

export interface ChatContextInput {
  userid?: string;
  userId?: string;
  entry?: ChatEntry;
  externalUserId?: string;
  chatId?: string;
  version?: string;
  shareTicket?: string;
}

/** Open a chat in the client: a single chat with a customer, a group chat, or nothing in particular. */
export function setChatContext(state: FakeWecomState, input: ChatContextInput): FakeChatContext {
  const userid = input.userid ?? input.userId;
  if (userid !== undefined && !state.findStaff(userid)) controlFail(`unknown staff ${userid}`);
  if (input.entry !== undefined && !(CHAT_ENTRIES as readonly string[]).includes(input.entry)) controlFail(`unknown entry ${input.entry}; one of ${CHAT_ENTRIES.join(", ")}`);
  if (input.version !== undefined && !/^\d+\.\d+\.\d+$/.test(input.version)) controlFail("version looks like 4.1.30");
  const entry: ChatEntry = input.entry ?? (input.chatId ? "group_chat_tools" : input.externalUserId ? "single_chat_tools" : "normal");
  const ctx: FakeChatContext = { entry, version: input.version ?? "4.1.30" };
  if (userid !== undefined) ctx.userid = state.findStaff(userid)!.userid;
  if (input.externalUserId !== undefined) ctx.externalUserId = input.externalUserId;
  if (input.chatId !== undefined) ctx.chatId = input.chatId;
  if (input.shareTicket !== undefined) ctx.shareTicket = input.shareTicket;
  jsapiOf(state).context = ctx;
  return ctx;
}

/** `a` < `b` for dotted versions. */
export function versionBelow(a: string, b: string): boolean {
  const pa = a.split(".").map(Number);
  const pb = b.split(".").map(Number);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const x = pa[i] ?? 0;
    const y = pb[i] ?? 0;
    if (x !== y) return x < y;
  }
  return false;
}
