import { createHash } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { Hono } from "hono";

/**
 * The console's static files (every .css, .js and .svg in ./assets), read once at start. Pages
 * link them as `/assets/NAME?v=HASH`; a request carrying the current hash is cacheable for a
 * year (a new build has a new hash), anything else must revalidate (ETag).
 */
const CONTENT_TYPES: Record<string, string> = { ".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8", ".svg": "image/svg+xml" };
const typeOf = (name: string) => CONTENT_TYPES[name.slice(name.lastIndexOf("."))];
const dir = new URL("./assets/", import.meta.url);

/** Every .css, .js and .svg file in ./assets, by name. */
const assets = new Map(
  readdirSync(dir)
    .filter((name) => typeOf(name))
    .map((name) => {
      const body = readFileSync(new URL(name, dir));
      return [name, { body, type: typeOf(name)!, hash: createHash("sha256").update(body).digest("hex").slice(0, 12) }] as const;
    }),
);

export function assetUrl(name: string): string {
  const a = assets.get(name);
  if (!a) throw new Error(`no console asset "${name}" (src/http/console/assets/${name})`);
  return `/assets/${name}?v=${a.hash}`;
}

export function assetRoutes() {
  const app = new Hono();
  app.get("/assets/:name", (c) => {
    const name = c.req.param("name");
    const a = assets.get(name);
    if (!a) return c.text("not found", 404);
    const etag = `"${a.hash}"`;
    const headers = {
      "content-type": a.type,
      etag,
      "cache-control": c.req.query("v") === a.hash ? "public, max-age=31536000, immutable" : "no-cache",
      "x-content-type-options": "nosniff",
    };
    if (c.req.header("if-none-match") === etag) return c.body(null, 304, headers);
    return c.body(new Uint8Array(a.body), 200, headers);
  });
  return app;
}
