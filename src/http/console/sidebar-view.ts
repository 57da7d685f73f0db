import { readFileSync } from "node:fs";
import type { Context } from "hono";
import Handlebars from "handlebars";
import { assetUrl } from "./assets";
import type { Locale, MessageKey, Translate } from "./i18n";
import { withQuery } from "./views";

/**
 * The chat sidebar's own shell: a phone-first page without the console's nav, compiled on a
 * private handlebars instance from templates/sidebar-*.hbs (the same `{{t}}` helper and escaping
 * as views.ts), with a CSP that allows scripts from exactly this site and the JS-SDK's origins.
 */
const hb = Handlebars.create();
const dir = new URL("./templates/", import.meta.url);
const source = (name: string) => readFileSync(new URL(`${name}.hbs`, dir), "utf8");

hb.registerHelper("t", function (this: unknown, key: string, options: Handlebars.HelperOptions) {
  const t = (options.data as { t?: Translate } | undefined)?.t;
  if (!t) throw new Error("the t helper needs a translator in the render data");
  return t(key as MessageKey, options.hash as Record<string, unknown>);
});
for (const name of ["sla", "field-error", "sidebar-scripts", "sidebar-mode"]) hb.registerPartial(name, source(`partials/${name}`));

export const SIDEBAR_VIEWS = ["sidebar-home", "sidebar-contact", "sidebar-group", "sidebar-unknown", "sidebar-error"] as const;
export type SidebarView = (typeof SIDEBAR_VIEWS)[number];

const layout = hb.compile(source("sidebar-layout"));
const templates = new Map<string, ReturnType<typeof hb.compile>>(SIDEBAR_VIEWS.map((v) => [v, hb.compile(source(v))]));

/** What the page's script needs: which page, for which chat, and its messages in the page's language. */
export interface SidebarData {
  mode: "home" | "contact" | "group" | "unknown";
  slug: string;
  ext?: string | undefined;
  chat?: string | undefined;
  contactId?: string | undefined;
  messages: { name: string; text: string }[];
}

export interface SidebarShell {
  locale: Locale;
  t: Translate;
  title: string;
  url: URL;
  who?: string | undefined;
  /** JS-SDK scripts (loaded before sidebar.js); none on pages that do not talk to WeCom. */
  jssdk?: string[] | undefined;
  sb?: SidebarData | undefined;
}

export function renderSidebar(view: SidebarView, model: object, shell: SidebarShell): string {
  const options = { data: { t: shell.t } };
  const body = templates.get(view)!(model, options);
  return layout(
    {
      ...shell,
      body,
      jssdk: shell.jssdk ?? [],
      retryHref: withQuery(shell.url, {}),
      assets: { css: assetUrl("sidebar.css"), js: assetUrl("sidebar.js") },
      languages: (["zh-CN", "en"] as const).map((code) => ({ code, label: shell.t(`lang.${code}`), href: withQuery(shell.url, { lang: code }), current: code === shell.locale })),
    },
    options,
  );
}

/** Origins of the JS-SDK scripts, for script-src. */
export function scriptOrigins(urls: readonly string[]): string[] {
  return [...new Set(urls.map((u) => new URL(u).origin))];
}

/**
 * Sidebar HTML: private and uncached like the console; scripts from this site and the JS-SDK's
 * origins only (no inline script or style anywhere); nobody may frame it.
 */
export function sidebarResponse(c: Context, html: string, status: number, jssdk: readonly string[] = []): Response {
  const scripts = ["'self'", ...scriptOrigins(jssdk)].join(" ");
  c.header("content-security-policy", `default-src 'self'; script-src ${scripts}; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'`);
  c.header("x-content-type-options", "nosniff");
  c.header("referrer-policy", "same-origin");
  c.header("cache-control", "private, no-store");
  return c.html(html, status as 200);
}
