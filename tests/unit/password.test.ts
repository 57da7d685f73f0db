import { describe, expect, it } from "vitest";
import { hashPassword, verifyPassword } from "../../src/domain/auth/password";

describe("passwords (scrypt)", () => {
  it("verifies the right password and refuses a wrong one", async () => {
    const h = await hashPassword("s3cret-password");
    expect(h).toMatch(/^scrypt\$32768\$8\$1\$/);
    expect(await verifyPassword("s3cret-password", h)).toBe(true);
    expect(await verifyPassword("s3cret-passwore", h)).toBe(false);
  });

  it("salts: the same password hashes differently", async () => {
    expect(await hashPassword("same")).not.toBe(await hashPassword("same"));
  });

  it("treats full-width and half-width forms alike (NFKC), as people type on Chinese IMEs", async () => {
    const h = await hashPassword("Abc123");
    expect(await verifyPassword("Ａｂｃ１２３", h)).toBe(true);
  });

  it("refuses malformed stored hashes", async () => {
    expect(await verifyPassword("x", "md5$abc")).toBe(false);
  });
});
