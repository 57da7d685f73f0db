import postgres from "postgres";
import type { TestProject } from "vitest/node";
import { openDatabase } from "../../src/db/client";
import { withDatabase } from "../helpers/global-setup";

/** Its own template database, so this project's setup never drops the one integration tests clone. */
export const BROWSER_TEMPLATE_DB = "siyu_template_browser";

export default async function setup(project: TestProject) {
  const url = process.env.DATABASE_URL;
  if (!url || !process.env.REDIS_URL) {
    throw new Error("Browser tests need DATABASE_URL and REDIS_URL: run them with `npm test`, which starts both.");
  }
  const admin = postgres(url, { max: 1, onnotice: () => {} });
  await admin.unsafe(`drop database if exists ${BROWSER_TEMPLATE_DB} with (force)`);
  await admin.unsafe(`create database ${BROWSER_TEMPLATE_DB}`);
  await admin.end();
  const db = await openDatabase({ url: withDatabase(url, BROWSER_TEMPLATE_DB), dataDir: "unused" });
  await db.migrate();
  await db.close();
  project.provide("templateDb", BROWSER_TEMPLATE_DB);
}
