import { describe, expect, it } from "vitest";
import { LoginThrottle } from "../../src/http/middleware/login-throttle";

describe("LoginThrottle", () => {
  it("blocks an account after 10 failures in 15 minutes, then lets it try again", () => {
    let now = 0;
    const t = new LoginThrottle(() => now);
    for (let i = 0; i < 10; i++) {
      expect(t.retryAfter("demo/a@x", "1.1.1.1")).toBe(0);
      t.fail("demo/a@x", "1.1.1.1");
      now += 1000;
    }
    expect(t.retryAfter("demo/a@x", "1.1.1.1")).toBeGreaterThan(0);
    expect(t.retryAfter("demo/b@x", "2.2.2.2")).toBe(0);
    now += 15 * 60_000;
    expect(t.retryAfter("demo/a@x", "1.1.1.1")).toBe(0);
  });

  it("blocks an address spraying many accounts", () => {
    const t = new LoginThrottle(() => 0);
    for (let i = 0; i < 30; i++) t.fail(`demo/u${i}@x`, "9.9.9.9");
    expect(t.retryAfter("demo/new@x", "9.9.9.9")).toBeGreaterThan(0);
  });

  it("forgets an account's failures on success", () => {
    const t = new LoginThrottle(() => 0);
    for (let i = 0; i < 9; i++) t.fail("demo/a@x", "1.1.1.1");
    t.succeed("demo/a@x");
    t.fail("demo/a@x", "1.1.1.1");
    expect(t.retryAfter("demo/a@x", "1.1.1.1")).toBe(0);
  });
});
