import { Hono, type Context } from "hono";
import { bodyLimit } from "hono/body-limit";
import { followLink, recordDwell } from "../../services/links/click";
import { problem } from "../problem";
import type { AppEnv, HttpDeps } from "../types";

/**
 * Tracked links, public and outside /v1 (no auth: patients click them in WeChat): GET /l/{code}
 * redirects (302) and records the click as an article_read event; POST /l/{code}/dwell (or GET with
 * ?seconds=) is the beacon an article page calls with the time spent reading.
 */

const NOT_FOUND_PAGE = `<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>链接已失效</title>
<style>body{font-family:-apple-system,"PingFang SC","Microsoft YaHei",sans-serif;color:#333;margin:0;display:flex;min-height:100vh;align-items:center;justify-content:center;background:#f7f7f7}
main{max-width:22rem;padding:2rem;text-align:center}h1{font-size:1.25rem;margin:0 0 .75rem}p{line-height:1.6;color:#666;margin:.25rem 0}</style></head>
<body><main><h1>链接已失效或不存在</h1><p>这个链接可能已过期，或复制时不完整。</p><p>如需帮助，请直接在企业微信里联系您的顾问。</p></main></body></html>`;

/** Fixed one-minute windows per client address; bounded memory. Only the beacon is limited: a click is never refused. */
export class MinuteLimiter {
  private window = 0;
  private readonly counts = new Map<string, number>();
  constructor(
    private readonly perMinute: number,
    private readonly now: () => number,
  ) {}
  allow(key: string): boolean {
    const w = Math.floor(this.now() / 60_000);
    if (w !== this.window || this.counts.size > 50_000) {
      this.window = w;
      this.counts.clear();
    }
    const n = (this.counts.get(key) ?? 0) + 1;
    this.counts.set(key, n);
    return n <= this.perMinute;
  }
}

export function clientAddress(c: Context): string {
  return (c.env as { incoming?: { socket?: { remoteAddress?: string } } } | undefined)?.incoming?.socket?.remoteAddress ?? "unknown";
}

/** seconds from JSON ({"seconds": 42}), a bare number (text/plain, as navigator.sendBeacon sends a string), a form field or the query. */
async function readSeconds(c: Context): Promise<unknown> {
  const q = c.req.query("seconds") ?? c.req.query("s");
  if (q !== undefined) return q;
  if (c.req.method !== "POST") return undefined;
  const type = c.req.header("content-type") ?? "";
  if (/form/i.test(type)) return (await c.req.parseBody())["seconds"];
  const text = (await c.req.text()).trim();
  if (!text) return undefined;
  try {
    const v: unknown = JSON.parse(text);
    return typeof v === "object" && v !== null ? (v as Record<string, unknown>).seconds : v;
  } catch {
    return text;
  }
}

function parseSeconds(v: unknown): number | null {
  const n = typeof v === "number" ? v : typeof v === "string" && /^\s*\d+(\.\d+)?\s*$/.test(v) ? Number(v) : NaN;
  if (!Number.isFinite(n) || n < 0 || n > 86_400) return null;
  return Math.round(n);
}

export function linkRoutes(deps: HttpDeps) {
  const app = new Hono<AppEnv>();
  const services = deps.services;
  const limiter = new MinuteLimiter(60, () => services.now().getTime());

  app.get("/:code", async (c) => {
    const r = await followLink({ deps: services, code: c.req.param("code"), method: c.req.method, userAgent: c.req.header("user-agent"), requestId: c.get("requestId") });
    if (!r) return c.html(NOT_FOUND_PAGE, 404, { "cache-control": "no-store" });
    // no-store: a cached redirect would hide the next click.
    c.header("cache-control", "no-store");
    c.header("referrer-policy", "no-referrer");
    return c.redirect(r.location, 302);
  });

  const dwell = async (c: Context<AppEnv>) => {
    c.header("access-control-allow-origin", "*");
    if (!limiter.allow(clientAddress(c))) return problem(c, 429, "TOO_MANY_REQUESTS", "too many dwell reports from this address; try again in a minute");
    const seconds = parseSeconds(await readSeconds(c));
    if (seconds === null) return problem(c, 422, "VALIDATION_FAILED", "seconds: must be a number from 0 to 86400", [{ field: "seconds", message: "must be a number from 0 to 86400" }]);
    const r = await recordDwell({ deps: services, code: c.req.param("code") ?? "", seconds, requestId: c.get("requestId") });
    if (!r) return problem(c, 404, "NOT_FOUND", "no such link");
    return c.body(null, 204);
  };
  app.use("/:code/dwell", bodyLimit({ maxSize: 1024, onError: (c) => problem(c, 413, "PAYLOAD_TOO_LARGE", "the body is over the 1024-byte limit") }));
  app.post("/:code/dwell", dwell);
  app.get("/:code/dwell", dwell);
  return app;
}
