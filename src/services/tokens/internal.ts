import { randomBytes } from "node:crypto";

/** New API token: `sy_` + 8 visible chars + `_` + secret. Shown once; only its SHA-256 is stored. */
export function generateToken(): { token: string; prefix: string } {
  const prefix = randomBytes(6).toString("base64url").slice(0, 8);
  return { token: `sy_${prefix}_${randomBytes(24).toString("base64url")}`, prefix: `sy_${prefix}` };
}
