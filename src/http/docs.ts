import { readFileSync } from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";
import { Hono } from "hono";

/** Swagger UI served from the swagger-ui-dist package: works offline, no CDN. */
export function docsRoutes() {
  const require = createRequire(import.meta.url);
  const dir = path.dirname(require.resolve("swagger-ui-dist/package.json"));
  const assets: Record<string, { body: string; type: string }> = {};
  const asset = (name: string, type: string) => (assets[name] ??= { body: readFileSync(path.join(dir, name), "utf8"), type });
  const app = new Hono();
  app.get("/", (c) =>
    c.html(`<!doctype html><html lang="zh-CN"><head><meta charset="utf-8"><title>Siyu API</title>
<link rel="stylesheet" href="/docs/swagger-ui.css"></head><body><div id="ui"></div>
<script src="/docs/swagger-ui-bundle.js"></script>
<script>window.ui = SwaggerUIBundle({ url: "/openapi.json", dom_id: "#ui", persistAuthorization: true });</script></body></html>`),
  );
  for (const [name, type] of [["swagger-ui.css", "text/css"], ["swagger-ui-bundle.js", "application/javascript"]] as const) {
    app.get(`/${name}`, (c) => {
      const a = asset(name, type);
      return c.body(a.body, 200, { "content-type": `${a.type}; charset=utf-8`, "cache-control": "public, max-age=86400" });
    });
  }
  return app;
}
