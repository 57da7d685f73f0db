/**
 * WeCom callback crypto (doc 90968 "加解密方案说明"; shared/wecom-protocol.md section 1.2), on
 * node:crypto only. Written independently of @wecom/crypto, which the tests use as a reference:
 * that library neither checks the receiveid nor the padding, and we must do both.
 *
 * Order at the boundary: verify the signature (constant time) first, then decrypt. The padding and
 * length checks below throw distinct codes; that is only safe because an attacker without the
 * Token cannot get a forged ciphertext past the signature check (no padding oracle).
 */
import { createCipheriv, createDecipheriv, createHash, randomBytes, timingSafeEqual } from "node:crypto";

/**
 * WXBizMsgCrypt's local error codes (never on the wire):
 * -40001 bad signature, -40004 bad EncodingAESKey, -40005 receiveid mismatch,
 * -40007 AES decrypt failure (incl. bad padding), -40008 illegal buffer (length, base64, UTF-8).
 */
export type WecomCryptoErrorCode = -40001 | -40004 | -40005 | -40007 | -40008;

export class WecomCryptoError extends Error {
  readonly code: WecomCryptoErrorCode;
  constructor(code: WecomCryptoErrorCode, message: string, options?: { cause?: unknown }) {
    super(`${message} (WeCom crypto error ${code})`, options);
    this.name = "WecomCryptoError";
    this.code = code;
  }
}

/** PKCS#7 block size used by WeCom: 32 bytes, not AES's 16 (pad value 1..32). */
const PAD_BLOCK = 32;
const RANDOM_BYTES = 16;
/** random(16) + msg_len(4). */
const HEADER_BYTES = RANDOM_BYTES + 4;
const ENCODING_AES_KEY = /^[A-Za-z0-9]{43}$/;
const STRICT_BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const SHA1_HEX = /^[0-9a-fA-F]{40}$/;
const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/**
 * EncodingAESKey (43 chars of [A-Za-z0-9]) -> the 32-byte AES key. Decoded leniently, as WeCom
 * does: the official sample key is not canonical Base64 (its last char has non-zero spare bits).
 */
export function aesKeyFromEncodingAesKey(encodingAesKey: string): Buffer {
  if (!ENCODING_AES_KEY.test(encodingAesKey)) {
    throw new WecomCryptoError(-40004, "EncodingAESKey must be exactly 43 characters from [A-Za-z0-9]");
  }
  const key = Buffer.from(`${encodingAesKey}=`, "base64");
  if (key.length !== 32) {
    throw new WecomCryptoError(-40004, `EncodingAESKey decodes to ${key.length} bytes, expected 32`);
  }
  return key;
}

function checkKey(aesKey: Buffer): void {
  if (aesKey.length !== 32) {
    throw new WecomCryptoError(-40004, `AES key must be 32 bytes, got ${aesKey.length}`);
  }
}

/**
 * msg_signature = hex(sha1(concat(sort([token, timestamp, nonce, encrypt])))), sorted by plain
 * byte order (UTF-8 bytes, which equals code-unit order for the ASCII WeCom sends).
 */
export function computeSignature(token: string, timestamp: string, nonce: string, encrypt: string): string {
  const parts = [token, timestamp, nonce, encrypt].map((s) => Buffer.from(s, "utf8"));
  parts.sort(Buffer.compare);
  return createHash("sha1").update(Buffer.concat(parts)).digest("hex");
}

/**
 * Constant-time check of a received msg_signature. False (never a throw) for a signature that is
 * not 40 hex chars; hex case is ignored.
 */
export function verifySignature(
  token: string,
  timestamp: string,
  nonce: string,
  encrypt: string,
  signature: string,
): boolean {
  if (!SHA1_HEX.test(signature)) return false;
  const expected = Buffer.from(computeSignature(token, timestamp, nonce, encrypt), "hex");
  const given = Buffer.from(signature, "hex");
  return given.length === expected.length && timingSafeEqual(given, expected);
}

/**
 * True when a callback's `timestamp` query parameter (unix seconds, digits only) is within
 * `windowSeconds` of `nowMs` either way: bounds replay of a captured, correctly signed request.
 */
export function isTimestampFresh(timestamp: string, nowMs: number, windowSeconds = 300): boolean {
  if (!/^\d{1,12}$/.test(timestamp)) return false;
  return Math.abs(Number(timestamp) - Math.floor(nowMs / 1000)) <= windowSeconds;
}

/**
 * AES-256-CBC (IV = first 16 key bytes) of random(16) | msg_len(4, BE) | msg | receiveId, PKCS#7
 * padded to a multiple of 32 bytes; returns Base64. Pass `random` for deterministic fixtures.
 */
export function encryptMessage(aesKey: Buffer, message: string, receiveId: string, random?: Buffer): string {
  checkKey(aesKey);
  const rand = random ?? randomBytes(RANDOM_BYTES);
  if (rand.length !== RANDOM_BYTES) {
    throw new RangeError(`random must be ${RANDOM_BYTES} bytes, got ${rand.length}`);
  }
  const msg = Buffer.from(message, "utf8");
  const len = Buffer.alloc(4);
  len.writeUInt32BE(msg.length, 0);
  const body = Buffer.concat([rand, len, msg, Buffer.from(receiveId, "utf8")]);
  const pad = PAD_BLOCK - (body.length % PAD_BLOCK);
  const plain = Buffer.concat([body, Buffer.alloc(pad, pad)]);
  const cipher = createCipheriv("aes-256-cbc", aesKey, aesKey.subarray(0, 16));
  cipher.setAutoPadding(false);
  return Buffer.concat([cipher.update(plain), cipher.final()]).toString("base64");
}

export interface DecryptedMessage {
  /** The msg part: the callback's plaintext XML, or the echostr reply for URL verification. */
  message: string;
  /** CorpID for a self-built app. */
  receiveId: string;
  random: Buffer;
}

/**
 * Strict inverse of encryptMessage. Throws WecomCryptoError: -40008 for bad Base64, a length that
 * is not a positive multiple of 16, a msg_len that does not fit or invalid UTF-8; -40007 for a
 * decipher failure or bad padding (value outside 1..32 or unequal pad bytes); -40005 when
 * `expectedReceiveId` is given and differs. Verify the signature before calling this.
 */
export function decryptMessage(aesKey: Buffer, encrypt: string, expectedReceiveId?: string): DecryptedMessage {
  checkKey(aesKey);
  if (!STRICT_BASE64.test(encrypt)) {
    throw new WecomCryptoError(-40008, "ciphertext is not valid Base64");
  }
  const cipherBytes = Buffer.from(encrypt, "base64");
  if (cipherBytes.length === 0 || cipherBytes.length % 16 !== 0) {
    throw new WecomCryptoError(-40008, `ciphertext length ${cipherBytes.length} is not a positive multiple of 16`);
  }

  let plain: Buffer;
  try {
    const decipher = createDecipheriv("aes-256-cbc", aesKey, aesKey.subarray(0, 16));
    decipher.setAutoPadding(false);
    plain = Buffer.concat([decipher.update(cipherBytes), decipher.final()]);
  } catch (cause) {
    throw new WecomCryptoError(-40007, "AES decryption failed", { cause });
  }

  const pad = plain[plain.length - 1]!;
  if (pad < 1 || pad > PAD_BLOCK || pad > plain.length) {
    throw new WecomCryptoError(-40007, `bad PKCS#7 padding value ${pad}`);
  }
  for (let i = plain.length - pad; i < plain.length; i++) {
    if (plain[i] !== pad) throw new WecomCryptoError(-40007, "bad PKCS#7 padding bytes");
  }
  const content = plain.subarray(0, plain.length - pad);
  if (content.length < HEADER_BYTES) {
    throw new WecomCryptoError(-40008, `decrypted content is ${content.length} bytes, shorter than the 20-byte header`);
  }
  const msgLen = content.readUInt32BE(RANDOM_BYTES);
  if (msgLen > content.length - HEADER_BYTES) {
    throw new WecomCryptoError(-40008, `msg_len ${msgLen} exceeds the ${content.length - HEADER_BYTES} bytes available`);
  }

  let message: string;
  let receiveId: string;
  try {
    message = utf8.decode(content.subarray(HEADER_BYTES, HEADER_BYTES + msgLen));
    receiveId = utf8.decode(content.subarray(HEADER_BYTES + msgLen));
  } catch (cause) {
    throw new WecomCryptoError(-40008, "decrypted message is not valid UTF-8", { cause });
  }
  if (expectedReceiveId !== undefined && receiveId !== expectedReceiveId) {
    throw new WecomCryptoError(-40005, "receiveid in the ciphertext does not match the expected CorpID");
  }
  return { message, receiveId, random: Buffer.from(content.subarray(0, RANDOM_BYTES)) };
}

export interface CallbackCredentials {
  /** The callback Token (signing only). */
  token: string;
  /** From aesKeyFromEncodingAesKey. */
  aesKey: Buffer;
  /** Own CorpID (self-built app); the ciphertext must carry it. */
  receiveId: string;
}

/**
 * The receiving side in one call: constant-time signature check (-40001 on mismatch), then a strict
 * decrypt that also checks the receiveid. Works for the POST Encrypt and the GET echostr alike.
 */
export function verifyAndDecrypt(
  creds: CallbackCredentials,
  params: { timestamp: string; nonce: string; signature: string; encrypt: string },
): DecryptedMessage {
  if (!verifySignature(creds.token, params.timestamp, params.nonce, params.encrypt, params.signature)) {
    throw new WecomCryptoError(-40001, "msg_signature does not match");
  }
  return decryptMessage(creds.aesKey, params.encrypt, creds.receiveId);
}

export interface SignedCiphertext {
  encrypt: string;
  signature: string;
  timestamp: string;
  nonce: string;
}

/**
 * The sending side (the fake WeCom, passive replies): encrypt then sign. `random` is for
 * deterministic fixtures only.
 */
export function signAndEncrypt(
  creds: CallbackCredentials,
  params: { message: string; timestamp: string; nonce: string; random?: Buffer },
): SignedCiphertext {
  const encrypt = encryptMessage(creds.aesKey, params.message, creds.receiveId, params.random);
  return {
    encrypt,
    signature: computeSignature(creds.token, params.timestamp, params.nonce, encrypt),
    timestamp: params.timestamp,
    nonce: params.nonce,
  };
}
