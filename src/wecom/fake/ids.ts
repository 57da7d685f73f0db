import { randomBytes, randomInt } from "node:crypto";

// Id shapes follow the protocol doc (section 0): opaque strings with WeCom's prefixes and lengths,
// so a client that wrongly assumes a format breaks against the fake as it would against WeCom.

const ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const URLSAFE = `${ALNUM}-_`;

export function randomString(length: number, alphabet: string = ALNUM): string {
  let out = "";
  for (let i = 0; i < length; i++) out += alphabet[randomInt(alphabet.length)];
  return out;
}

export const randomHex = (bytes: number): string => randomBytes(bytes).toString("hex");

/** Decimal digits, never starting with 0 (WeCom's nonces and echostr plaintexts look like this). */
export function randomDigits(length: number): string {
  return String(randomInt(1, 10)) + randomString(length - 1, "0123456789");
}

export const ids = {
  /** `wm` + 30 chars: an external contact of this corp (WeChat user). */
  externalUserId: () => `wm${randomString(30)}`,
  /** `wr` + 30 chars: a customer group. */
  chatId: () => `wr${randomString(30)}`,
  /** `et` + 30 chars: corp tags and tag groups share the shape. */
  tagId: () => `et${randomString(30)}`,
  /** `3` + 40 chars: temporary media (media/upload), kept 3 days. */
  mediaId: () => `3${randomString(40)}`,
  /** `msg` + 25 chars: a mass-message task. */
  massMsgId: () => `msg${randomString(25)}`,
  /** 32 lowercase hex: a 「联系我」 config. */
  configId: () => randomHex(16),
  /** 32 lowercase hex, like an md5: a group member version. */
  memberVersion: () => randomHex(16),
  /** Long URL-safe token; WeCom's are ~200 chars, callers must store ≥ 512 bytes. */
  accessToken: () => randomString(172, URLSAFE),
  welcomeCode: () => randomString(43, URLSAFE),
  /** message/send msgid. */
  appMsgId: () => randomString(46, URLSAFE),
  unionId: () => `o${randomString(27, URLSAFE)}`,
  avatar: () => `http://wx.qlogo.cn/mmhead/${randomString(44)}/0`,
  qrCode: () => `https://wework.qpic.cn/wwpic/${randomDigits(6)}_${randomString(22)}_${randomDigits(10)}/0`,
  /** The `hint: [...]` in error messages. */
  hint: (nowSec: number) => `${nowSec}${randomDigits(6)}_${randomString(10)}`,
};
