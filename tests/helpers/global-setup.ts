import type { TestProject } from "vitest/node";
import postgres from "postgres";
import { openDatabase } from "../../src/db/client";

export const TEMPLATE_DB = "siyu_template";

/**
 * Integration tests run against the real PostgreSQL and Redis that `npm test` starts. Migrate a
 * template database once per run; each test file clones it (CREATE DATABASE … TEMPLATE), so files
 * run in parallel without seeing each other's rows.
 */
export default async function setup(project: TestProject) {
  const url = process.env.DATABASE_URL;
  const redisUrl = process.env.REDIS_URL;
  if (!url || !redisUrl) {
    throw new Error("Integration tests need DATABASE_URL and REDIS_URL: run them with `npm test`, which starts both.");
  }
  const admin = postgres(url, { max: 1, onnotice: () => {} });
  await admin.unsafe(`drop database if exists ${TEMPLATE_DB} with (force)`);
  await admin.unsafe(`create database ${TEMPLATE_DB}`);
  await admin.end();
  const db = await openDatabase({ url: withDatabase(url, TEMPLATE_DB), dataDir: "unused" });
  await db.migrate();
  await db.close();
  project.provide("templateDb", TEMPLATE_DB);
}

export function withDatabase(url: string, name: string): string {
  const u = new URL(url);
  u.pathname = `/${name}`;
  return u.toString();
}

declare module "vitest" {
  export interface ProvidedContext {
    templateDb: string;
  }
}
