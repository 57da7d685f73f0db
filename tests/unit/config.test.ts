import { describe, expect, it } from "vitest";
import { ConfigError, ENV_VARIABLES, loadConfig } from "../../src/config/env";
import { readFileSync } from "node:fs";

describe("config", () => {
  it("has sensible defaults", () => {
    const c = loadConfig({});
    expect(c.PORT).toBe(8787);
    expect(c.TIMEZONE).toBe("Asia/Shanghai");
    expect(c.WECOM_MODE).toBe("sandbox");
    expect(c.TENANT_SLUG).toBe("demo");
    expect(c.publicUrl).toBe("http://localhost:8787");
    expect(c.DATABASE_URL).toBeUndefined();
  });

  it.each([
    [{ PORT: "eighty" }, "PORT"],
    [{ DATABASE_URL: "mysql://x" }, "DATABASE_URL"],
    [{ REDIS_URL: "localhost:6379" }, "REDIS_URL"],
    [{ PII_KEY: "short" }, "PII_KEY"],
    [{ ADMIN_TOKEN: "abc" }, "ADMIN_TOKEN"],
    [{ WECOM_MODE: "prod" }, "WECOM_MODE"],
    [{ SEED_DEMO: "maybe" }, "SEED_DEMO"],
    [{ NODE_ENV: "production" }, "PII_KEY"],
  ])("refuses %j naming %s", (env, variable) => {
    try {
      loadConfig(env);
      expect.unreachable("should have thrown");
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      expect((err as ConfigError).issues.map((i) => i.variable)).toContain(variable);
      expect((err as Error).message).toContain(variable);
    }
  });

  it("reads the key as base64 or hex and treats empty strings as unset", () => {
    const b64 = Buffer.alloc(32, 9).toString("base64");
    expect(loadConfig({ PII_KEY: b64 }).piiKey?.equals(Buffer.alloc(32, 9))).toBe(true);
    expect(loadConfig({ PII_KEY: Buffer.alloc(32, 9).toString("hex") }).piiKey?.equals(Buffer.alloc(32, 9))).toBe(true);
    expect(loadConfig({ PORT: "" }).PORT).toBe(8787);
  });

  it("is frozen", () => {
    const c = loadConfig({});
    expect(Object.isFrozen(c)).toBe(true);
  });

  it("README documents every variable", () => {
    const readme = readFileSync(new URL("../../README.md", import.meta.url), "utf8");
    const missing = ENV_VARIABLES.filter((v) => !readme.includes(`\`${v}\``));
    expect(missing).toEqual([]);
  });
});
