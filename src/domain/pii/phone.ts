/**
 * Phone numbers: normalise (one canonical form per number, so dedupe works), mask for roles without
 * PII rights. Mainland mobiles become +86 followed by 11 digits.
 */
export type PhoneResult = { ok: true; e164: string; masked: string } | { ok: false; reason: string };

export function normalizePhone(input: string): PhoneResult {
  // Full-width digits and plus (from Chinese IMEs) fold to ASCII first.
  const folded = input.normalize("NFKC").trim();
  const compact = folded.replace(/[\s\-().]/g, "");
  if (!/^\+?\d+$/.test(compact)) return { ok: false, reason: "may contain only digits, spaces, dashes and a leading +" };
  let digits = compact.replace(/^\+/, "");
  const hadPlus = compact.startsWith("+");
  if (digits.startsWith("0086")) digits = digits.slice(4);
  else if (digits.startsWith("86") && digits.length === 13) digits = digits.slice(2);
  if (/^1[3-9]\d{9}$/.test(digits) && (!hadPlus || compact.startsWith("+86"))) {
    return { ok: true, e164: `+86${digits}`, masked: `${digits.slice(0, 3)}****${digits.slice(7)}` };
  }
  if (hadPlus && /^[1-9]\d{6,14}$/.test(digits)) {
    return { ok: true, e164: `+${digits}`, masked: maskDigits(digits) };
  }
  // Mainland landline with area code, e.g. 021-12345678 or 0755 1234567.
  if (/^0[1-9]\d{8,10}$/.test(digits)) {
    return { ok: true, e164: `+86${digits.slice(1)}`, masked: maskDigits(digits) };
  }
  return { ok: false, reason: "is not a valid phone number (expected a mainland mobile like 13812341234, or +country number)" };
}

function maskDigits(d: string): string {
  if (d.length <= 7) return `${d.slice(0, 1)}${"*".repeat(d.length - 3)}${d.slice(-2)}`;
  return `${d.slice(0, 3)}${"*".repeat(d.length - 7)}${d.slice(-4)}`;
}
