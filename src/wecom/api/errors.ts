/**
 * WeCom reports errors in the body (HTTP 200, errcode != 0). Branch on errcode, never on errmsg.
 */
export const TOKEN_ERRCODES = new Set([40014, 42001, 41001]);
/** Worth retrying with backoff: frequency limit, concurrency limit, system busy. */
export const RETRYABLE_ERRCODES = new Set([45009, 45033, -1]);

export class WecomError extends Error {
  readonly errcode: number;
  readonly errmsg: string;
  readonly api: string;
  readonly retryable: boolean;
  constructor(api: string, errcode: number, errmsg: string) {
    super(`WeCom ${api} failed: errcode ${errcode} (${errmsg.split(",")[0] ?? errmsg})`);
    this.name = "WecomError";
    this.api = api;
    this.errcode = errcode;
    this.errmsg = errmsg;
    this.retryable = RETRYABLE_ERRCODES.has(errcode);
  }
}

/** The network or WeCom's front end failed (no JSON answer): retryable. */
export class WecomNetworkError extends Error {
  readonly retryable = true;
  constructor(
    readonly api: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`WeCom ${api} unreachable: ${message}`, options);
    this.name = "WecomNetworkError";
  }
}
