// Lint: typescript-eslint's recommended rules plus the one-way import flow of shared/DESIGN.md:
// domain <- services <- {http, jobs} <- {main, workers, cli}. Only services and jobs touch the
// adapters (db, queue, wecom); handlers are glue; the domain is pure.
import js from "@eslint/js";
import tseslint from "typescript-eslint";

const layer = (name) => [`**/${name}/**`, `**/${name}`];
const restrict = (files, groups, message) => ({
  files,
  rules: {
    "no-restricted-imports": ["error", { patterns: groups.map((group) => ({ group, message })) }],
  },
});

export default tseslint.config(
  { ignores: ["node_modules/", "drizzle/", ".data/", "dist/", "coverage/"] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { process: "readonly", console: "readonly", Buffer: "readonly", URL: "readonly", setTimeout: "readonly", clearTimeout: "readonly", performance: "readonly", TextDecoder: "readonly", fetch: "readonly" } },
    rules: {
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_", destructuredArrayIgnorePattern: "^_" }],
      "@typescript-eslint/no-non-null-assertion": "off",
      "no-console": "error",
    },
  },
  restrict(
    ["src/domain/**"],
    [[...layer("db"), ...layer("services"), ...layer("http"), ...layer("jobs"), ...layer("queue"), ...layer("wecom"), ...layer("cli"), "hono", "hono/*", "bullmq", "ioredis", "drizzle-orm", "drizzle-orm/*", "postgres", "pino", "@hono/*"]],
    "src/domain is pure logic: no I/O, no adapters, no frameworks (shared/DESIGN.md section 2)",
  ),
  restrict(
    ["src/services/**"],
    [[...layer("http"), ...layer("jobs"), ...layer("cli"), "hono", "hono/*", "@hono/*", "bullmq"]],
    "services may not import http, jobs, cli, hono or bullmq: they are called by them",
  ),
  restrict(
    ["src/http/**"],
    [[...layer("db"), ...layer("jobs"), ...layer("cli"), "drizzle-orm", "drizzle-orm/*", "postgres", "ioredis", "bullmq"]],
    "handlers are glue: validate, call a service, shape the response (no database or queue access)",
  ),
  restrict(
    ["src/jobs/**"],
    [[...layer("db"), ...layer("http"), ...layer("cli"), "drizzle-orm", "drizzle-orm/*", "postgres", "hono", "hono/*"]],
    "jobs parse their payload and call services; no database access of their own",
  ),
  restrict(
    ["src/db/**", "src/queue/**", "src/wecom/**", "src/config/**"],
    [[...layer("services"), ...layer("http"), ...layer("jobs"), ...layer("cli")]],
    "adapters and config sit below services",
  ),
  { files: ["src/cli/**", "scripts/**", "bench/**"], rules: { "no-console": "off" } },
  // Tests read JSON response bodies loosely; the assertions are the type check.
  { files: ["tests/**"], rules: { "@typescript-eslint/no-explicit-any": "off" } },
);
