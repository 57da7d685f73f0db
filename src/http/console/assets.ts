import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { Hono } from "hono";

/**
 * The console's static files: one stylesheet and one small script, read once at start. Pages
 * link them as `/assets/NAME?v=HASH`; a request carrying the current hash is cacheable for a
 * year (a new build has a new hash), anything else must revalidate (ETag).
 */
const TYPES = { "console.css": "text/css; charset=utf-8", "console.js": "text/javascript; charset=utf-8" } as const;
type AssetName = keyof typeof TYPES;

const assets = Object.fromEntries(
  (Object.keys(TYPES) as AssetName[]).map((name) => {
    const body = readFileSync(new URL(`./assets/${name}`, import.meta.url));
    return [name, { body, hash: createHash("sha256").update(body).digest("hex").slice(0, 12) }];
  }),
) as Record<AssetName, { body: Buffer; hash: string }>;

export function assetUrl(name: AssetName): string {
  return `/assets/${name}?v=${assets[name].hash}`;
}

export function assetRoutes() {
  const app = new Hono();
  app.get("/assets/:name", (c) => {
    const name = c.req.param("name");
    if (!Object.hasOwn(TYPES, name)) return c.text("not found", 404);
    const a = assets[name as AssetName];
    const etag = `"${a.hash}"`;
    const headers = {
      "content-type": TYPES[name as AssetName],
      etag,
      "cache-control": c.req.query("v") === a.hash ? "public, max-age=31536000, immutable" : "no-cache",
      "x-content-type-options": "nosniff",
    };
    if (c.req.header("if-none-match") === etag) return c.body(null, 304, headers);
    return c.body(new Uint8Array(a.body), 200, headers);
  });
  return app;
}
