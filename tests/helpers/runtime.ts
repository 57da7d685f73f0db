import { randomBytes } from "node:crypto";
import postgres from "postgres";
import { inject } from "vitest";
import { bootstrap, type Runtime } from "../../src/bootstrap";
import { loadConfig } from "../../src/config/env";
import { createApp, type App } from "../../src/http/app";
import { createLogger } from "../../src/logger";
import { httpDeps } from "../../src/server";
import { withDatabase } from "./global-setup";

/** A fixed key for tests only. */
export const TEST_PII_KEY = Buffer.alloc(32, 7).toString("base64");

export interface TestRuntime {
  rt: Runtime;
  app: App;
  databaseUrl: string;
  env: Record<string, string>;
  close(): Promise<void>;
}

/**
 * A runtime on its own database (cloned from the migrated template) and its own queue prefix, so
 * test files share the PostgreSQL and Redis servers but no data. `now` replaces the services' clock
 * (deps.now), e.g. a moving clock running ahead of the real one.
 */
export async function createTestRuntime(overrides: Record<string, string> = {}, opts: { wecomBaseUrl?: string; now?: () => Date } = {}): Promise<TestRuntime> {
  const base = process.env.DATABASE_URL!;
  const name = `t_${randomBytes(6).toString("hex")}`;
  const admin = postgres(base, { max: 1, onnotice: () => {} });
  await admin.unsafe(`create database ${name} template ${inject("templateDb")}`);
  await admin.end();
  const databaseUrl = withDatabase(base, name);
  const env = {
    NODE_ENV: "test",
    DATABASE_URL: databaseUrl,
    REDIS_URL: process.env.REDIS_URL!,
    QUEUE_PREFIX: `test-${name}`,
    PII_KEY: TEST_PII_KEY,
    LOG_LEVEL: "silent",
    ...overrides,
  };
  const config = loadConfig(env);
  const rt = await bootstrap(config, { logger: createLogger({ level: config.LOG_LEVEL }), ...opts });
  const app = createApp(httpDeps(rt));
  return {
    rt,
    app,
    databaseUrl,
    env,
    close: async () => {
      await rt.close();
      const a = postgres(base, { max: 1, onnotice: () => {} });
      await a.unsafe(`drop database if exists ${name} with (force)`).catch(() => {});
      await a.end();
    },
  };
}
