import { randomUUID } from "node:crypto";
import { describe, expect, it } from "vitest";
import { referralState, referrerFromState } from "../../src/domain/contacts/referral";

describe("referral channel codes", () => {
  it("round-trips a contact id within WeCom's 30-character state limit", () => {
    for (let i = 0; i < 100; i++) {
      const id = randomUUID();
      const state = referralState(id);
      expect(state.length).toBeLessThanOrEqual(30);
      expect(referrerFromState(state)).toBe(id);
    }
  });

  it.each([undefined, null, "", "clinic_a_poster_01", "ref_", "ref_short", "ref_!!!!!!!!!!!!!!!!!!!!!!"])("is not a referral: %j", (state) => {
    expect(referrerFromState(state)).toBeNull();
  });
});
