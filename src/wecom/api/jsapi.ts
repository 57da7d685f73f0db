import { randomBytes } from "node:crypto";
import { getJsApiSignature } from "@wecom/crypto";
import type { Redis } from "ioredis";
import type { WecomClient } from "./client";
import { WecomNetworkError } from "./errors";

/**
 * JS-SDK tickets and signatures (shared/wecom-jssdk-kf.md §1.3–1.4). Two tickets: the corp ticket
 * (get_jsapi_ticket) signs wx.config, the app ticket (ticket/get?type=agent_config) signs
 * wx.agentConfig. Both are cached like the access token: in the shared Redis, expiring 300 s
 * before WeCom drops them, fetched by one caller across processes (a Redis lock plus an
 * in-process promise), and refreshed when the JS-SDK reports a signature made with a ticket WeCom
 * no longer accepts (errcode 40093 or 42012).
 */
export type TicketKind = "corp" | "agent";

/** JS-SDK errcodes that mean the ticket behind a signature is no longer valid: drop it and sign again. */
export const INVALID_TICKET_ERRCODES: ReadonlySet<number> = new Set([40093, 42012]);

/** What the client shares with the ticket cache: the token cache's Redis, key prefix and clock. */
export interface TicketCacheDeps {
  redis: Redis;
  prefix: string;
  now: () => number;
  sleep: (ms: number) => Promise<void>;
}

export interface JsApiSignature {
  /** Unix seconds, as WeCom wants it in (agent)config. */
  timestamp: number;
  nonceStr: string;
  signature: string;
}

const NONCE_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/** 16 crypto-random letters and digits (@wecom/crypto's default nonce is Math.random). */
export function jsapiNonce(): string {
  const bytes = randomBytes(16);
  let out = "";
  for (const b of bytes) out += NONCE_ALPHABET[b % NONCE_ALPHABET.length];
  return out;
}

/** The URL as signed: the full URL with its query, without the fragment (`#…`), never re-encoded. */
export function signableUrl(url: string): string {
  const i = url.indexOf("#");
  return i < 0 ? url : url.slice(0, i);
}

/** The JS-SDK signature of `url` with `ticket` (@wecom/crypto's getJsApiSignature, after dropping `#…`). */
export function signJsApi(input: { url: string; ticket: string; nonceStr?: string; timestamp?: number }): JsApiSignature {
  const timestamp = input.timestamp ?? Math.floor(Date.now() / 1000);
  const s = getJsApiSignature({ url: signableUrl(input.url), ticket: input.ticket, nonceStr: input.nonceStr ?? jsapiNonce(), timestamp });
  return { timestamp: Number(s.timestamp), nonceStr: s.nonceStr, signature: s.signature };
}

const RELEASE_LOCK = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end";

/** The tickets of one app (one client): see the module comment. */
export class JsApiTickets {
  private readonly inflight = new Map<TicketKind, Promise<string>>();

  constructor(
    private readonly client: WecomClient,
    private readonly cache: TicketCacheDeps,
  ) {}

  /** Redis key of a ticket: the corp ticket per corp, the app ticket per (corp, agent). */
  key(kind: TicketKind): string {
    return kind === "corp" ? `${this.cache.prefix}:jsapi:corp:${this.client.corpId}` : `${this.cache.prefix}:jsapi:agent:${this.client.corpId}:${this.client.agentId ?? "none"}`;
  }

  /** The cached ticket, or a fresh one fetched by exactly one caller across processes. */
  async ticket(kind: TicketKind): Promise<string> {
    const cached = await this.cache.redis.get(this.key(kind));
    if (cached) return cached;
    let p = this.inflight.get(kind);
    if (!p) {
      p = this.refresh(kind).finally(() => this.inflight.delete(kind));
      this.inflight.set(kind, p);
    }
    return p;
  }

  /** Sign `url` for wx.config (corp) or wx.agentConfig (agent) with the current ticket. */
  async sign(kind: TicketKind, url: string, opts: { nonceStr?: string; timestamp?: number } = {}): Promise<JsApiSignature> {
    const ticket = await this.ticket(kind);
    return signJsApi({ url, ticket, nonceStr: opts.nonceStr, timestamp: opts.timestamp ?? Math.floor(this.cache.now() / 1000) });
  }

  /**
   * The JS-SDK refused a signature (`errcode`): when the code says the ticket is no longer valid
   * and the signature was made with the ticket still cached, drop that ticket (another process may
   * already have replaced it) so the next signature uses a fresh one. Returns whether it dropped it.
   */
  async refused(kind: TicketKind, errcode: number, signed: { url: string; timestamp: number; nonceStr: string; signature: string }): Promise<boolean> {
    if (!INVALID_TICKET_ERRCODES.has(errcode)) return false;
    const ticket = await this.cache.redis.get(this.key(kind));
    if (!ticket) return false;
    const again = signJsApi({ url: signed.url, ticket, nonceStr: signed.nonceStr, timestamp: signed.timestamp });
    if (again.signature !== signed.signature) return false;
    return (await this.cache.redis.eval(RELEASE_LOCK, 1, this.key(kind), ticket)) === 1;
  }

  private async fetchTicket(kind: TicketKind): Promise<{ ticket: string; expires_in: number }> {
    if (kind === "corp") return this.client.call("get_jsapi_ticket", "GET", "/cgi-bin/get_jsapi_ticket");
    return this.client.call("ticket/get", "GET", "/cgi-bin/ticket/get", { query: { type: "agent_config" } });
  }

  private async refresh(kind: TicketKind): Promise<string> {
    const key = this.key(kind);
    const lockKey = `${key}:lock`;
    const owner = randomBytes(8).toString("hex");
    const deadline = this.cache.now() + 15_000;
    for (;;) {
      const got = await this.cache.redis.set(lockKey, owner, "PX", 10_000, "NX");
      if (got === "OK") {
        try {
          const again = await this.cache.redis.get(key);
          if (again) return again;
          const res = await this.fetchTicket(kind);
          // Expire early (as the access token does): no signature goes out with a ticket about to lapse.
          const ttl = Math.max(60, res.expires_in - 300);
          await this.cache.redis.set(key, res.ticket, "EX", ttl);
          return res.ticket;
        } finally {
          await this.cache.redis.eval(RELEASE_LOCK, 1, lockKey, owner);
        }
      }
      // Another process is fetching: wait for its ticket.
      await this.cache.sleep(50);
      const t = await this.cache.redis.get(key);
      if (t) return t;
      if (this.cache.now() > deadline) throw new WecomNetworkError(kind === "corp" ? "get_jsapi_ticket" : "ticket/get", "timed out waiting for another process to fetch the jsapi ticket");
    }
  }
}
