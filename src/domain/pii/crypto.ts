import { createCipheriv, createDecipheriv, createHash, createHmac, hkdfSync, randomBytes, timingSafeEqual } from "node:crypto";

/**
 * Field encryption for PII. One 32-byte master key from the environment; separate sub-keys for
 * encryption (AES-256-GCM) and lookup hashing (HMAC-SHA256) are derived with HKDF so neither use
 * can leak the other. Ciphertext format: `v1.<base64(iv[12] | tag[16] | data)>`.
 */
export interface PiiCipher {
  encrypt(plain: string): string;
  decrypt(cipher: string): string;
  /** Deterministic keyed hash for equality lookups (dedupe by phone). */
  hash(plain: string): string;
  /** Seal a credential (WeCom secrets) under its own sub-key, so a PII leak cannot open it and vice versa. */
  seal(plain: string): string;
  unseal(sealed: string): string;
}

function gcmEncrypt(key: Buffer, plain: string): string {
  const iv = randomBytes(12);
  const c = createCipheriv("aes-256-gcm", key, iv);
  const data = Buffer.concat([c.update(plain, "utf8"), c.final()]);
  return `v1.${Buffer.concat([iv, c.getAuthTag(), data]).toString("base64")}`;
}

function gcmDecrypt(key: Buffer, cipher: string): string {
  if (!cipher.startsWith("v1.")) throw new Error("unknown ciphertext version");
  const raw = Buffer.from(cipher.slice(3), "base64");
  const d = createDecipheriv("aes-256-gcm", key, raw.subarray(0, 12));
  d.setAuthTag(raw.subarray(12, 28));
  return Buffer.concat([d.update(raw.subarray(28)), d.final()]).toString("utf8");
}

export function createPiiCipher(masterKey: Buffer): PiiCipher {
  if (masterKey.length !== 32) throw new Error("PII key must be 32 bytes");
  const encKey = Buffer.from(hkdfSync("sha256", masterKey, Buffer.alloc(0), "siyu/pii/enc/v1", 32));
  const macKey = Buffer.from(hkdfSync("sha256", masterKey, Buffer.alloc(0), "siyu/pii/hash/v1", 32));
  const sealKey = Buffer.from(hkdfSync("sha256", masterKey, Buffer.alloc(0), "siyu/secrets/v1", 32));
  return {
    encrypt: (plain) => gcmEncrypt(encKey, plain),
    decrypt: (cipher) => gcmDecrypt(encKey, cipher),
    seal: (plain) => gcmEncrypt(sealKey, plain),
    unseal: (sealed) => gcmDecrypt(sealKey, sealed),
    hash(plain) {
      return createHmac("sha256", macKey).update(plain, "utf8").digest("base64url");
    },
  };
}

/** SHA-256 for high-entropy secrets (API tokens, session ids): no salt or stretching needed. */
export function sha256(value: string): string {
  return createHash("sha256").update(value, "utf8").digest("hex");
}

export function constantTimeEqual(a: string, b: string): boolean {
  const ab = Buffer.from(a);
  const bb = Buffer.from(b);
  return ab.length === bb.length && timingSafeEqual(ab, bb);
}
