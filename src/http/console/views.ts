import { readdirSync, readFileSync } from "node:fs";
import Handlebars from "handlebars";
import { assetUrl } from "./assets";
import type { Locale, MessageKey, Translate } from "./i18n";

/**
 * Console views: handlebars templates in ./templates (one per page, partials in ./templates/partials),
 * compiled once on a private instance. `{{x}}` HTML-escapes; the only unescaped output is the page
 * body inside the layout, itself a rendered template. Not `strict`: page models leave optional
 * fields out. Strings come from the catalogue through `{{t "key" param=value}}`, whose translator
 * rides in the render's data frame (so it works inside every block and partial).
 */
const hb = Handlebars.create();
const dir = new URL("./templates/", import.meta.url);
const source = (name: string) => readFileSync(new URL(`${name}.hbs`, dir), "utf8");

const hbsIn = (d: URL) => readdirSync(d).filter((f) => f.endsWith(".hbs")).map((f) => f.slice(0, -4)).sort();
/** Every template in ./templates except the layout is a view, named by its file (`rules.hbs` -> "rules"). */
export const VIEWS: readonly string[] = hbsIn(dir).filter((n) => n !== "layout");
export type ViewName = string;
export const PARTIALS: readonly string[] = hbsIn(new URL("./partials/", dir));

hb.registerHelper("t", function (this: unknown, key: string, options: Handlebars.HelperOptions) {
  const t = (options.data as { t?: Translate } | undefined)?.t;
  if (!t) throw new Error("the t helper needs a translator in the render data");
  return t(key as MessageKey, options.hash as Record<string, unknown>);
});
for (const name of PARTIALS) hb.registerPartial(name, source(`partials/${name}`));

const layout = hb.compile(source("layout"));
const templates = new Map(VIEWS.map((v) => [v, hb.compile(source(v))]));

export interface NavItem {
  key: string;
  href: string;
  label: string;
  current: boolean;
}

export interface Shell {
  locale: Locale;
  t: Translate;
  title: string;
  /** The current path and query, for the language links. */
  url: URL;
  principal?: { name: string; role: string } | undefined;
  tenant?: string | undefined;
  nav?: NavItem[] | undefined;
}

/** A whole HTML page: `view` rendered with `model`, inside the layout. */
export function renderPage(view: ViewName, model: object, shell: Shell): string {
  const options = { data: { t: shell.t } };
  const template = templates.get(view);
  if (!template) throw new Error(`no console view "${view}" (src/http/console/templates/${view}.hbs)`);
  const body = template(model, options);
  return layout(
    {
      ...shell,
      body,
      roleLabel: shell.principal ? shell.t(`role.${shell.principal.role}` as MessageKey) : undefined,
      assets: { css: assetUrl("console.css"), js: assetUrl("console.js") },
      languages: (["zh-CN", "en"] as const).map((code) => ({ code, label: shell.t(`lang.${code}`), href: withQuery(shell.url, { lang: code }), current: code === shell.locale })),
    },
    options,
  );
}

/** The URL's path and query with `params` set (undefined or "" removes one). */
export function withQuery(url: URL, params: Record<string, string | undefined>): string {
  const q = new URLSearchParams(url.search);
  for (const [k, v] of Object.entries(params)) {
    if (v === undefined || v === "") q.delete(k);
    else q.set(k, v);
  }
  const s = q.toString();
  return s ? `${url.pathname}?${s}` : url.pathname;
}

/** Template sources, for the catalogue test (every `{{t "key"}}` must exist). */
export function templateSources(): Record<string, string> {
  return Object.fromEntries([...VIEWS, "layout", ...PARTIALS.map((p) => `partials/${p}`)].map((n) => [n, source(n)]));
}
