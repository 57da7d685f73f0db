import { encrypt, getSignature } from "@wecom/crypto";
import { randomDigits, randomString } from "./ids";
import type { FakeWecomState } from "./state";

// The callback sender (doc §1). Encryption and signing use the official @wecom/crypto so the fake
// stays independent of Siyu's own implementation. Each attempt gets a fresh random (so a fresh
// ciphertext), a fresh timestamp/nonce and signature; the plaintext is the same across retries.
// Delivery semantics: any HTTP 200 = delivered; another status, a network error or no answer within
// callbackTimeoutMs → retry, up to callbackRetries times.

export type AttemptStatus = number | "timeout" | "network-error";

export interface DeliveryAttempt {
  status: AttemptStatus;
  url: string;
  timestamp: string;
  nonce: string;
  msgSignature: string;
  encrypt: string;
  durationMs: number;
  error?: string;
}

export interface DeliveryReport {
  plaintext: string;
  /** Requests made (0 when held or when no callback URL is set). */
  attempts: number;
  delivered: boolean;
  statuses: AttemptStatus[];
  requests: DeliveryAttempt[];
  /** Queued by holdCallbacks(); release with releaseCallbacks(). */
  held?: boolean;
  /** No callback URL configured: recorded only. */
  skipped?: boolean;
}

export interface VerifyReport {
  ok: boolean;
  url: string;
  status: AttemptStatus;
  /** What the receiver answered (undefined on timeout/network error). */
  body?: string;
  /** The decrypted echostr the body must equal exactly. */
  expected: string;
  echostr: string;
  durationMs: number;
  reason?: string;
}

export type ReleaseOrder = "fifo" | "reverse" | "shuffle";

/** Append the query to `url`, percent-encoding each value with encodeURIComponent (doc §1.3). */
export function withQuery(url: string, params: Array<[string, string]>): string {
  const base = url.split("#")[0]!;
  const q = params.map(([k, v]) => `${k}=${encodeURIComponent(v)}`).join("&");
  return `${base}${base.includes("?") ? "&" : "?"}${q}`;
}

/** The POST body WeCom sends: ToUserName = CorpID, AgentID, Encrypt (the signature covers Encrypt). */
export function envelopeXml(corpId: string, agentId: number, encrypted: string): string {
  return `<xml><ToUserName><![CDATA[${corpId}]]></ToUserName><AgentID><![CDATA[${agentId}]]></AgentID><Encrypt><![CDATA[${encrypted}]]></Encrypt></xml>`;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

async function timedFetch(url: string, init: RequestInit, timeoutMs: number): Promise<{ status: AttemptStatus; body?: string; error?: string; durationMs: number }> {
  const started = performance.now();
  const ctrl = new AbortController();
  const timer = setTimeout(() => ctrl.abort(), timeoutMs);
  let status: AttemptStatus | undefined;
  try {
    const res = await fetch(url, { ...init, signal: ctrl.signal, redirect: "manual" });
    status = res.status;
    const body = await res.text();
    return { status, body, durationMs: performance.now() - started };
  } catch (err) {
    if (status !== undefined) return { status, durationMs: performance.now() - started };
    return { status: ctrl.signal.aborted ? "timeout" : "network-error", error: (err as Error).message, durationMs: performance.now() - started };
  } finally {
    clearTimeout(timer);
  }
}

export class CallbackSender {
  /** Every event plaintext emitted, in order, whether sent, held or skipped. */
  readonly events: string[] = [];
  /** Every delivery report, in order. */
  readonly deliveries: DeliveryReport[] = [];
  private readonly heldQueue: string[] = [];
  private holding = false;
  private readonly inFlight = new Set<Promise<unknown>>();

  constructor(private readonly state: FakeWecomState) {}

  /** Emit an event: deliver it now (awaiting retries), or queue it while callbacks are held. */
  async emit(plaintext: string): Promise<DeliveryReport> {
    this.events.push(plaintext);
    if (this.holding) {
      this.heldQueue.push(plaintext);
      return { plaintext, attempts: 0, delivered: false, statuses: [], requests: [], held: true };
    }
    return this.deliver(plaintext);
  }

  /** Emit without waiting (for changes discovered while serving an API call); see flush(). */
  emitInBackground(plaintext: string): void {
    const p = this.emit(plaintext).finally(() => this.inFlight.delete(p));
    this.inFlight.add(p);
  }

  /** Wait for background deliveries to finish. */
  async flush(): Promise<void> {
    while (this.inFlight.size > 0) await Promise.allSettled([...this.inFlight]);
  }

  hold(): void {
    this.holding = true;
  }

  /** Stop holding and deliver the queued events one after another in the given order. */
  async release(order: ReleaseOrder = "fifo"): Promise<DeliveryReport[]> {
    this.holding = false;
    const queued = this.heldQueue.splice(0);
    if (order === "reverse") queued.reverse();
    if (order === "shuffle") {
      for (let i = queued.length - 1; i > 0; i--) {
        const j = Math.floor(Math.random() * (i + 1));
        [queued[i], queued[j]] = [queued[j]!, queued[i]!];
      }
    }
    const reports: DeliveryReport[] = [];
    for (const p of queued) reports.push(await this.deliver(p));
    return reports;
  }

  get heldCount(): number {
    return this.heldQueue.length;
  }

  /** One delivery with WeCom's retry rule (ignores holding: used for replays too). */
  async deliver(plaintext: string): Promise<DeliveryReport> {
    const { settings, corpId, agentId, callbackToken, encodingAesKey } = this.state;
    const url = settings.callbackUrl;
    const report: DeliveryReport = { plaintext, attempts: 0, delivered: false, statuses: [], requests: [] };
    if (url === undefined || url === "") {
      report.skipped = true;
      this.deliveries.push(report);
      return report;
    }
    for (let attempt = 0; attempt <= settings.callbackRetries; attempt++) {
      if (attempt > 0 && settings.callbackRetryDelayMs > 0) await sleep(settings.callbackRetryDelayMs);
      const timestamp = String(this.state.nowSec());
      const nonce = randomDigits(10);
      const encrypted = encrypt(encodingAesKey, plaintext, corpId, Buffer.from(randomString(16), "ascii"));
      const msgSignature = getSignature(callbackToken, timestamp, nonce, encrypted);
      const target = withQuery(url, [
        ["msg_signature", msgSignature],
        ["timestamp", timestamp],
        ["nonce", nonce],
      ]);
      const res = await timedFetch(
        target,
        { method: "POST", headers: { "content-type": "text/xml" }, body: envelopeXml(corpId, agentId, encrypted) },
        settings.callbackTimeoutMs,
      );
      const a: DeliveryAttempt = { status: res.status, url: target, timestamp, nonce, msgSignature, encrypt: encrypted, durationMs: res.durationMs };
      if (res.error !== undefined) a.error = res.error;
      report.requests.push(a);
      report.statuses.push(res.status);
      report.attempts++;
      if (res.status === 200) {
        report.delivered = true;
        break;
      }
    }
    this.deliveries.push(report);
    return report;
  }

  /**
   * The GET URL verification WeCom runs when the admin saves the callback config: a random numeric
   * echostr, encrypted and signed, sent percent-encoded; the receiver must answer 200 within
   * verifyTimeoutMs with exactly the plaintext.
   */
  async verifyUrl(url = this.state.settings.callbackUrl): Promise<VerifyReport> {
    if (url === undefined || url === "") throw new Error("no callback URL to verify");
    const { corpId, callbackToken, encodingAesKey, settings } = this.state;
    const expected = randomDigits(19);
    const timestamp = String(this.state.nowSec());
    const nonce = randomDigits(10);
    const echostr = encrypt(encodingAesKey, expected, corpId, Buffer.from(randomString(16), "ascii"));
    const msgSignature = getSignature(callbackToken, timestamp, nonce, echostr);
    const target = withQuery(url, [
      ["msg_signature", msgSignature],
      ["timestamp", timestamp],
      ["nonce", nonce],
      ["echostr", echostr],
    ]);
    const res = await timedFetch(target, { method: "GET" }, settings.verifyTimeoutMs);
    const report: VerifyReport = { ok: false, url: target, status: res.status, expected, echostr, durationMs: res.durationMs };
    if (res.body !== undefined) report.body = res.body;
    if (res.status !== 200) report.reason = typeof res.status === "number" ? `HTTP ${res.status}` : res.status;
    else if (res.body !== expected) report.reason = "body is not exactly the decrypted echostr";
    else report.ok = true;
    return report;
  }
}
