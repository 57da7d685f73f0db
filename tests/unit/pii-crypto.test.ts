import { describe, expect, it } from "vitest";
import { constantTimeEqual, createPiiCipher, sha256 } from "../../src/domain/pii/crypto";

const key = Buffer.alloc(32, 1);

describe("PII cipher", () => {
  const c = createPiiCipher(key);

  it("round-trips and never repeats a ciphertext (random IV)", () => {
    const a = c.encrypt("+8613812341234");
    const b = c.encrypt("+8613812341234");
    expect(a).not.toBe(b);
    expect(a.startsWith("v1.")).toBe(true);
    expect(a).not.toContain("13812341234");
    expect(c.decrypt(a)).toBe("+8613812341234");
  });

  it("detects tampering (GCM tag)", () => {
    const a = c.encrypt("+8613812341234");
    const raw = Buffer.from(a.slice(3), "base64");
    raw[raw.length - 1]! ^= 1;
    expect(() => c.decrypt(`v1.${raw.toString("base64")}`)).toThrow();
  });

  it("cannot be decrypted with another key", () => {
    const other = createPiiCipher(Buffer.alloc(32, 2));
    expect(() => other.decrypt(c.encrypt("x"))).toThrow();
  });

  it("hashes deterministically per key, differently across keys, and not as plain SHA-256", () => {
    expect(c.hash("+8613812341234")).toBe(c.hash("+8613812341234"));
    expect(createPiiCipher(Buffer.alloc(32, 2)).hash("+8613812341234")).not.toBe(c.hash("+8613812341234"));
    expect(c.hash("+8613812341234")).not.toBe(sha256("+8613812341234"));
  });

  it("refuses keys of the wrong size", () => {
    expect(() => createPiiCipher(Buffer.alloc(16))).toThrow(/32 bytes/);
  });

  it("compares in constant time semantics", () => {
    expect(constantTimeEqual("abc", "abc")).toBe(true);
    expect(constantTimeEqual("abc", "abd")).toBe(false);
    expect(constantTimeEqual("abc", "abcd")).toBe(false);
  });
});
