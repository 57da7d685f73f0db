import type { CapPeriod } from "./clock";

/** Per-recipient cap on mass messages (doc §4.3): `count` per natural `per` in Asia/Shanghai. */
export interface MassMessageCap {
  per: CapPeriod;
  count: number;
}

export interface FakeWecomOptions {
  /** CorpID, also the receiveid inside every ciphertext. Default `ww0123456789abcdef`. */
  corpId?: string;
  /** The self-built app's AgentID. Default 1000002. */
  agentId?: number | string;
  /** Every secret that gettoken accepts (app secret, 客户联系 secret…); each gets its own token. */
  secrets?: string[];
  /** Shorthand for `secrets: [secret]`. */
  secret?: string;
  /** Callback Token (≤ 32 letters/digits). Default `ClinicFakeToken01`. */
  callbackToken?: string;
  /** Callback EncodingAESKey (43 chars of [A-Za-z0-9]). */
  encodingAesKey?: string;
  /** Access-token lifetime. Default 7200. */
  tokenTtlSeconds?: number;
  /** Calls per corp per API path per natural minute before 45009. Default 10,000. */
  rateLimitPerMinute?: number;
  /** Default `{ per: "day", count: 1 }`. */
  massMessageCap?: MassMessageCap;
  /** Where callbacks are POSTed; none = events are recorded but not sent. */
  callbackUrl?: string;
  /** How long to wait for the receiver's answer. Default 5000 (WeCom: 5 s). */
  callbackTimeoutMs?: number;
  /** Re-sends after the first attempt. Default 3 (WeCom: "总共重试三次"). */
  callbackRetries?: number;
  /** Pause between attempts. Default 0 (WeCom publishes no interval). */
  callbackRetryDelayMs?: number;
  /** URL verification must be answered within this. Default 1000 (WeCom: 1 s). */
  verifyTimeoutMs?: number;
  /** Clock for every expiry, counter and timestamp. Default `() => new Date()`. */
  now?: () => Date;
  /** Welcome-code lifetime. Default 20. */
  welcomeCodeTtlSeconds?: number;
  /** A started transfer completes automatically after this. Default 24 h. */
  transferDelaySeconds?: number;
  /** While a mass message is younger than this, the report APIs answer 41063. Default 0 (off). */
  massMessageDispatchMs?: number;
  /** Mount the `/__control/*` routes. Default true. */
  controlRoutes?: boolean;
}

export interface ResolvedOptions {
  corpId: string;
  agentId: number;
  secrets: string[];
  callbackToken: string;
  encodingAesKey: string;
  tokenTtlSeconds: number;
  rateLimitPerMinute: number;
  massMessageCap: MassMessageCap;
  callbackUrl: string | undefined;
  callbackTimeoutMs: number;
  callbackRetries: number;
  callbackRetryDelayMs: number;
  verifyTimeoutMs: number;
  now: () => Date;
  welcomeCodeTtlSeconds: number;
  transferDelaySeconds: number;
  massMessageDispatchMs: number;
  controlRoutes: boolean;
}

/** The project's constructed test vector (protocol doc §5.2), so fixtures line up with the docs. */
export const FAKE_DEFAULTS = {
  corpId: "ww0123456789abcdef",
  agentId: 1000002,
  secrets: ["FakeAppSecret0000000000000000000000000000000", "FakeContactSecret000000000000000000000000000"],
  callbackToken: "ClinicFakeToken01",
  encodingAesKey: "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG",
} as const;

export function resolveOptions(o: FakeWecomOptions = {}): ResolvedOptions {
  const secrets = o.secrets ?? (o.secret !== undefined ? [o.secret] : [...FAKE_DEFAULTS.secrets]);
  const encodingAesKey = o.encodingAesKey ?? FAKE_DEFAULTS.encodingAesKey;
  const callbackToken = o.callbackToken ?? FAKE_DEFAULTS.callbackToken;
  const agentId = Number(o.agentId ?? FAKE_DEFAULTS.agentId);
  if (!/^[A-Za-z0-9]{43}$/.test(encodingAesKey)) throw new Error("encodingAesKey must be 43 characters of [A-Za-z0-9]");
  if (!/^[A-Za-z0-9]{1,32}$/.test(callbackToken)) throw new Error("callbackToken must be 1-32 letters or digits");
  if (!Number.isInteger(agentId)) throw new Error("agentId must be an integer");
  if (secrets.length === 0) throw new Error("at least one secret is needed");
  return {
    corpId: o.corpId ?? FAKE_DEFAULTS.corpId,
    agentId,
    secrets,
    callbackToken,
    encodingAesKey,
    tokenTtlSeconds: o.tokenTtlSeconds ?? 7200,
    rateLimitPerMinute: o.rateLimitPerMinute ?? 10_000,
    massMessageCap: o.massMessageCap ?? { per: "day", count: 1 },
    callbackUrl: o.callbackUrl,
    callbackTimeoutMs: o.callbackTimeoutMs ?? 5000,
    callbackRetries: o.callbackRetries ?? 3,
    callbackRetryDelayMs: o.callbackRetryDelayMs ?? 0,
    verifyTimeoutMs: o.verifyTimeoutMs ?? 1000,
    now: o.now ?? (() => new Date()),
    welcomeCodeTtlSeconds: o.welcomeCodeTtlSeconds ?? 20,
    transferDelaySeconds: o.transferDelaySeconds ?? 24 * 3600,
    massMessageDispatchMs: o.massMessageDispatchMs ?? 0,
    controlRoutes: o.controlRoutes ?? true,
  };
}
