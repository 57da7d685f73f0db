import { describe, expect, it } from "vitest";
import { normalizePhone } from "../../src/domain/pii/phone";

describe("normalizePhone", () => {
  it.each([
    ["13812341234", "+8613812341234", "138****1234"],
    ["138 1234 1234", "+8613812341234", "138****1234"],
    ["138-1234-1234", "+8613812341234", "138****1234"],
    ["+86 138 1234 1234", "+8613812341234", "138****1234"],
    ["008613812341234", "+8613812341234", "138****1234"],
    ["8613812341234", "+8613812341234", "138****1234"],
    ["１３８１２３４１２３４", "+8613812341234", "138****1234"],
    ["(021) 6234-5678", "+862162345678", "021****5678"],
    ["+1 415 555 2671", "+14155552671", "141****2671"],
  ])("%s -> %s", (input, e164, masked) => {
    expect(normalizePhone(input)).toEqual({ ok: true, e164, masked });
  });

  it.each(["12812341234", "1381234123", "abc13812341234", "+", "", "138123412345"])("refuses %j", (input) => {
    expect(normalizePhone(input).ok).toBe(false);
  });

  it("gives one canonical form to every way of writing the same mobile, so dedupe works", () => {
    const forms = ["13812341234", "+8613812341234", "0086 138 1234 1234", "１３８-１２３４-１２３４"];
    const out = new Set(forms.map((f) => (normalizePhone(f) as { e164: string }).e164));
    expect(out.size).toBe(1);
  });
});
