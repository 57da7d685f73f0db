import path from "node:path";
import { fileURLToPath } from "node:url";
import { z } from "zod";

/** The shipped banned-word lists (compliance-rules/ at the repository root). */
const SHIPPED_COMPLIANCE_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../compliance-rules");

/**
 * The one place that reads process.env. Everything else receives a Config.
 * A bad value stops start-up with a message naming the variable.
 */
const bool = z
  .enum(["true", "false", "1", "0", "yes", "no"])
  .transform((v) => v === "true" || v === "1" || v === "yes");

const base64Key = z
  .string()
  .refine((v) => Buffer.from(v, "base64").length === 32 || /^[0-9a-fA-F]{64}$/.test(v), {
    message: "must be 32 bytes, as base64 (44 chars) or hex (64 chars); generate one with `openssl rand -base64 32`",
  });

export const EnvSchema = z.object({
  NODE_ENV: z.enum(["development", "production", "test"]).default("development"),
  /** HTTP port of the API and console. */
  PORT: z.coerce.number().int().min(0).max(65535).default(8787),
  /** Interface to listen on. 127.0.0.1 keeps the demo private; use 0.0.0.0 behind a load balancer. */
  HOST: z.string().min(1).default("127.0.0.1"),
  /** Base URL people and WeCom reach Siyu at (links, cookies). */
  PUBLIC_URL: z.url().optional(),
  /** PostgreSQL URL. Unset: embedded PGlite under DATA_DIR. */
  DATABASE_URL: z
    .string()
    .regex(/^postgres(ql)?:\/\//, "must be a postgres:// or postgresql:// URL")
    .optional(),
  DB_POOL_MAX: z.coerce.number().int().min(1).max(500).default(10),
  /** Redis URL. Unset: a private redis-server is started on loopback with its files in DATA_DIR. */
  REDIS_URL: z
    .string()
    .regex(/^rediss?:\/\//, "must be a redis:// or rediss:// URL")
    .optional(),
  /** BullMQ key prefix; use a hash tag such as {siyu} on Redis Cluster. */
  QUEUE_PREFIX: z.string().min(1).max(64).default("siyu"),
  /** Folder for the embedded database and the private redis-server. */
  DATA_DIR: z.string().min(1).default(".data"),
  /** Banned-word lists, allow-list and review policy, laid out like compliance-rules/; edits reload without a restart. */
  COMPLIANCE_RULES_DIR: z.string().min(1).default(SHIPPED_COMPLIANCE_DIR),
  /** Bearer token granted the admin role of the demo tenant at start. */
  ADMIN_TOKEN: z.string().min(16, "must be at least 16 characters").optional(),
  /** API token the CLI sends (import-contacts); ADMIN_TOKEN is used when unset. */
  SIYU_TOKEN: z.string().min(8).optional(),
  /** 32-byte key for phone encryption (AES-256-GCM) and lookup hashes (HMAC-SHA256). */
  PII_KEY: base64Key.optional(),
  /** Slug of the first (demo) tenant. */
  TENANT_SLUG: z
    .string()
    .regex(/^[a-z0-9][a-z0-9-]{1,62}$/, "lowercase letters, digits and dashes")
    .default("demo"),
  /** Seed the demo clinic (staff of every role, ~200 contacts with events) at start when it is empty. */
  SEED_DEMO: bool.default(true),
  /** Password of the seeded demo staff. */
  DEMO_PASSWORD: z.string().min(8, "must be at least 8 characters").default("siyu-demo-2026"),
  TIMEZONE: z.string().min(1).default("Asia/Shanghai"),
  LOG_LEVEL: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
  /** Maximum JSON request body, in bytes (413 beyond it). */
  BODY_LIMIT_BYTES: z.coerce.number().int().min(1024).default(1024 * 1024),
  /** Maximum CSV import body, in bytes. */
  IMPORT_LIMIT_BYTES: z.coerce.number().int().min(1024).default(64 * 1024 * 1024),
  EVENTS_CONCURRENCY: z.coerce.number().int().min(1).max(256).default(8),
  /**
   * Statements a metrics request (funnel, trends, scorecards) or an attribution request runs at
   * once, each on its own pool connection. About the database server's cores: more statements
   * than cores share them and slow each other down (their hash joins compete for memory bandwidth).
   */
  METRICS_PARALLEL_STATEMENTS: z.coerce.number().int().min(1).max(16).default(2),
  /** Events not processed this long after they were stored are re-enqueued by the sweeper. */
  SWEEP_AFTER_SECONDS: z.coerce.number().int().min(1).default(60),
  /** WeCom's per-customer mass-message cap per local day (群发助手 → 设置群发规则; the fake's default is 1). */
  DELIVERY_MASS_CAP_PER_DAY: z.coerce.number().int().min(1).max(100).default(1),
  /** Fatigue cap across calendars: at most this many marketing sends per contact in any DELIVERY_FATIGUE_DAYS consecutive local days. */
  DELIVERY_FATIGUE_CAP: z.coerce.number().int().min(1).max(100).default(3),
  DELIVERY_FATIGUE_DAYS: z.coerce.number().int().min(1).max(31).default(7),
  /** Staff who have not confirmed a mass message this long after it was created get one WeCom app reminder. */
  DELIVERY_REMIND_AFTER_MINUTES: z.coerce.number().int().min(1).default(60),
  /** A mass message its staff did not confirm within this many hours is cancelled in WeCom and its sends fail. */
  DELIVERY_CONFIRM_HOURS: z.coerce.number().int().min(1).max(24 * 14).default(48),
  SHUTDOWN_TIMEOUT_MS: z.coerce.number().int().min(100).default(10_000),
  SESSION_TTL_HOURS: z.coerce.number().int().min(1).default(24 * 7),
  /** Optional bearer token required to read /metrics. */
  METRICS_TOKEN: z.string().min(8).optional(),
  WECOM_MODE: z.enum(["sandbox", "live"]).default("sandbox"),
  /** WeCom server API base URL (live mode); sandbox mode points the client at the in-process fake. */
  WECOM_API_BASE: z.url().default("https://qyapi.weixin.qq.com"),
  /** Largest callback body accepted, in bytes (413 beyond it). */
  WECOM_CALLBACK_MAX_BYTES: z.coerce.number().int().min(1024).default(64 * 1024),
  /** Accepted clock difference between WeCom's callback timestamp and ours, in seconds. */
  WECOM_CALLBACK_WINDOW_SECONDS: z.coerce.number().int().min(10).default(300),
  WECOM_CORP_ID: z.string().optional(),
  WECOM_AGENT_ID: z.string().optional(),
  WECOM_SECRET: z.string().optional(),
  WECOM_CALLBACK_TOKEN: z.string().optional(),
  WECOM_AES_KEY: z.string().length(43, "must be the 43-character EncodingAESKey").optional(),
  /**
   * The JS-SDK script(s) the chat sidebar loads, space- or comma-separated, in order; the sidebar's
   * CSP allows scripts from exactly their origins. Unset: WeCom's own (jweixin-1.2.0.js and
   * jwxwork-1.0.0.js) in live mode, the fake WeCom's stand-in in sandbox mode.
   */
  WECOM_JSSDK_URL: z
    .string()
    .trim()
    .refine((v) => v.split(/[\s,]+/).filter(Boolean).every((u) => /^https?:\/\/[^\s/]+\/\S*$/.test(u)), { message: "one or more http(s) URLs of scripts, separated by spaces or commas" })
    .optional(),
});

export type Env = z.infer<typeof EnvSchema>;

export interface Config extends Env {
  publicUrl: string;
  /** The raw 32-byte PII key; only absent in commands that never touch PII. */
  piiKey: Buffer | undefined;
}

export class ConfigError extends Error {
  constructor(readonly issues: { variable: string; message: string }[]) {
    super(
      "Invalid configuration:\n" +
        issues.map((i) => `  ${i.variable}: ${i.message}`).join("\n"),
    );
    this.name = "ConfigError";
  }
}

function decodeKey(v: string): Buffer {
  return /^[0-9a-fA-F]{64}$/.test(v) ? Buffer.from(v, "hex") : Buffer.from(v, "base64");
}

/** Parse an environment (process.env by default) into a frozen Config; throws ConfigError naming each bad variable. */
export function loadConfig(source: Record<string, string | undefined> = process.env): Readonly<Config> {
  // Empty strings count as unset, as most deployment tools write them for blank values.
  const cleaned = Object.fromEntries(
    Object.entries(source).filter(([k, v]) => k in EnvSchema.shape && v !== undefined && v !== ""),
  );
  const parsed = EnvSchema.safeParse(cleaned);
  if (!parsed.success) {
    throw new ConfigError(
      parsed.error.issues.map((i) => ({ variable: String(i.path[0] ?? "?"), message: i.message })),
    );
  }
  const env = parsed.data;
  if (env.NODE_ENV === "production" && !env.PII_KEY) {
    throw new ConfigError([{ variable: "PII_KEY", message: "is required in production" }]);
  }
  return Object.freeze({
    ...env,
    publicUrl: (env.PUBLIC_URL ?? `http://localhost:${env.PORT}`).replace(/\/$/, ""),
    piiKey: env.PII_KEY ? decodeKey(env.PII_KEY) : undefined,
  });
}

/** Names of every variable, for the README test that keeps the docs true. */
export const ENV_VARIABLES = Object.keys(EnvSchema.shape);
