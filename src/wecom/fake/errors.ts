// WeCom reports every failure as HTTP 200 with {errcode, errmsg}. The errmsg text below is the fake's
// wording (WeCom's own text varies and clients must branch on errcode only); the codes and their
// meaning follow the global error-code page (doc 90313).

export const ERRMSG: Record<number, string> = {
  [-1]: "system busy",
  0: "ok",
  40001: "invalid credential",
  40003: "invalid userid",
  40004: "invalid media type",
  40005: "invalid file type",
  40007: "invalid media_id",
  40008: "invalid message type",
  41005: "media data missing",
  40013: "invalid corpid",
  40014: "invalid access_token",
  40029: "invalid code",
  40032: "invalid userid list size",
  40050: "chatid not found",
  40056: "invalid agentid",
  40058: "invalid Request Parameter",
  40068: "invalid tagid",
  40071: "invalid tag name, tag name already exists",
  40096: "invalid external userid",
  40097: "invalid handover userid, the user has not resigned",
  40098: "invalid takeover userid, the user is not activated",
  40100: "the customer is already being transferred",
  40126: "corp tag count exceeds the limit of 3000",
  40128: "customer transferred too frequently, at most 2 times in 90 days",
  40129: "the customer is being transferred",
  40130: "handover userid is the same as takeover userid",
  40131: "handover userid is not a follower of the external contact",
  41001: "access_token missing",
  41002: "corpid missing",
  41004: "corpsecret missing",
  41006: "missing media_id",
  41008: "missing code",
  41009: "missing userid",
  41010: "missing url",
  41011: "missing agentid",
  41016: "missing title",
  41018: "missing tag name",
  41033: "missing description",
  41035: "missing external userid",
  41037: "missing contact way type",
  41038: "missing contact way scene",
  41039: "invalid contact way type",
  41040: "invalid contact way scene",
  41041: "contact way user count exceeds the limit",
  41043: "missing config_id",
  41044: "invalid config_id",
  41045: "contact way count exceeds the api limit",
  41046: "missing msgid",
  41047: "invalid msgid",
  41048: "no valid external contact to send to",
  41049: "missing welcome_code",
  41050: "invalid welcome_code",
  41051: "customer and staff have already started chatting",
  41054: "user not activated",
  41063: "group msg is being dispatched, please try again later",
  41064: "too many attachments",
  41065: "invalid attachment type",
  41093: "group msg task has been cancelled",
  42001: "access_token expired",
  44004: "empty content",
  45002: "content size out of limit",
  45009: "api freq out of limit",
  47001: "data format error",
  48001: "api forbidden",
  60011: "no privilege to access/modify contact/party/agent",
  81013: "user & party & tag all invalid",
  84061: "not external contact",
};

/** A WeCom API error: thrown by the fake's model and route code, rendered as {errcode, errmsg}. */
export class WecomError extends Error {
  readonly errcode: number;
  constructor(errcode: number, detail?: string) {
    const text = ERRMSG[errcode] ?? "unknown error";
    super(detail ? `${text}: ${detail}` : text);
    this.name = "WecomError";
    this.errcode = errcode;
  }
}

export const fail = (errcode: number, detail?: string): never => {
  throw new WecomError(errcode, detail);
};

/**
 * The shape of a real failure errmsg:
 * `<text>, hint: [<id>], from ip: <ip>, more info at https://open.work.weixin.qq.com/devtool/query?e=<code>`.
 */
export function formatErrmsg(errcode: number, text: string, hint: string, ip: string): string {
  if (errcode === 0) return text;
  return `${text}, hint: [${hint}], from ip: ${ip}, more info at https://open.work.weixin.qq.com/devtool/query?e=${errcode}`;
}

/** What WeCom appends when the body was not (entirely) valid JSON or a field had the wrong type. */
export const JSON_WARNING = ", Warning: wrong json format.";

/** Misuse of the control surface (unknown staff, duplicate ids…): not a WeCom error, HTTP 400 on /__control. */
export class FakeControlError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "FakeControlError";
  }
}

export const controlFail = (message: string): never => {
  throw new FakeControlError(message);
};
