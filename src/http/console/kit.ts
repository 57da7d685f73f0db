import type { Context, Handler } from "hono";
import { getCookie } from "hono/cookie";
import { can, type Permission } from "../../domain/auth/permissions";
import { AppError } from "../../errors";
import type { Principal } from "../../services/auth/authenticate";
import type { Ctx } from "../../services/context";
import type { AppEnv } from "../types";
import { DEFAULT_LOCALE, isLocale, LANG_COOKIE, translator, type Locale, type MessageKey, type Translate } from "./i18n";
import { navFor } from "./nav";
import { renderPage, type Shell, type ViewName } from "./views";
import { z } from "zod";

/** Everything a console page handler needs: who is signed in, their service ctx, the language and formats. */
export interface Page {
  c: Context<AppEnv>;
  principal: Principal;
  /** The signed-in staff member's service context, built by the auth middleware exactly as for the API. */
  ctx: Ctx;
  locale: Locale;
  t: Translate;
  url: URL;
  fmt: Formats;
  /** Render a view in the layout, with the nav of this role and `section` highlighted. */
  html(view: ViewName, model: object, opts: { title: string; section?: string; status?: number }): Response;
}

export function localeOf(c: Context): Locale {
  const v = getCookie(c, LANG_COOKIE);
  return isLocale(v) ? v : DEFAULT_LOCALE;
}

/** Console HTML responses: no caching of patient data, no framing, scripts and styles from us only. */
export function htmlResponse(c: Context, html: string, status = 200): Response {
  c.header("content-security-policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'");
  c.header("x-content-type-options", "nosniff");
  c.header("referrer-policy", "same-origin");
  c.header("cache-control", "private, no-store");
  return c.html(html, status as 200);
}

export function shell(c: Context, locale: Locale, t: Translate, title: string, principal?: Principal, section?: string): Shell {
  return {
    locale,
    t,
    title,
    url: new URL(c.req.url),
    principal: principal ? { name: principal.name, role: principal.role } : undefined,
    tenant: principal?.tenantSlug,
    nav: principal ? navFor(principal.role, t, section) : undefined,
  };
}

export function pageOf(c: Context<AppEnv>, principal: Principal, timeZone: string): Page {
  const locale = localeOf(c);
  const t = translator(locale);
  return {
    c,
    principal,
    ctx: c.get("ctx"),
    locale,
    t,
    url: new URL(c.req.url),
    fmt: formats(locale, timeZone, t),
    html: (view, model, opts) => htmlResponse(c, renderPage(view, model, shell(c, locale, t, opts.title, principal, opts.section)), opts.status ?? 200),
  };
}

/**
 * A console page: signed in (else to the sign-in form, coming back here after), and allowed by
 * `permission` (the API's own), else a 403 page. Services check again and scope the rows.
 */
export function page(timeZone: string, permission: Permission | null, handler: (p: Page) => Promise<Response> | Response): Handler<AppEnv> {
  return async (c) => {
    const principal = c.get("principal");
    if (!principal) {
      const u = new URL(c.req.url);
      const back = u.pathname + u.search;
      return c.redirect(back === "/console" ? "/login" : `/login?next=${encodeURIComponent(back)}`, 303);
    }
    const p = pageOf(c, principal, timeZone);
    if (permission && !can(principal.role, permission)) return errorPage(p, 403);
    return handler(p);
  };
}

const ERROR_PAGES: Record<number, { title: MessageKey; body: MessageKey }> = {
  400: { title: "error.400.title", body: "error.400.body" },
  403: { title: "error.403.title", body: "error.403.body" },
  404: { title: "error.404.title", body: "error.404.body" },
  500: { title: "error.500.title", body: "error.500.body" },
};

export function errorPage(p: Pick<Page, "html" | "t" | "principal" | "c">, status: 400 | 403 | 404 | 500): Response {
  const e = ERROR_PAGES[status]!;
  const message = p.t(e.body, { role: p.t(`role.${p.principal.role}` as MessageKey), requestId: p.c.get("requestId") });
  return p.html("error", { status, heading: p.t(e.title), message }, { title: p.t(e.title), status });
}

/** The HTTP status of an error as a console page shows it (validation of a link's query: 400). */
export function pageStatus(err: unknown): 400 | 403 | 404 | 500 {
  if (!(err instanceof AppError)) return 500;
  if (err.status === 403 || err.status === 404) return err.status;
  if (err.status === 400 || err.status === 422) return 400;
  return 500;
}

export interface Formats {
  /** Date and time in the tenant's zone: 2026/11/02 14:30. */
  dateTime(iso: string | Date | null | undefined): string;
  /** A length of time for people: 12 分钟, 1 小时 5 分. */
  duration(seconds: number): string;
}

export function formats(locale: Locale, timeZone: string, t: Translate): Formats {
  const dt = new Intl.DateTimeFormat(locale === "en" ? "en-GB" : "zh-CN", { timeZone, year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", hourCycle: "h23" });
  return {
    dateTime: (v) => (v ? dt.format(typeof v === "string" ? new Date(v) : v) : "—"),
    duration: (seconds) => {
      const m = Math.max(1, Math.round(Math.abs(seconds) / 60));
      if (m < 60) return t("dur.min", { m });
      if (m < 24 * 60) return t("dur.hmin", { h: Math.floor(m / 60), m: m % 60 });
      return t("dur.dh", { d: Math.floor(m / 1440), h: Math.floor((m % 1440) / 60) });
    },
  };
}

/** A form body as strings (repeated fields keep the last value; files are ignored). */
export async function formOf(c: Context): Promise<Record<string, string>> {
  const body = await c.req.parseBody();
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(body)) if (typeof v === "string") out[k] = v;
  return out;
}

/** A path or query value that is a UUID (anything else is a 404, never a database error). */
export const isUuid = (s: string | undefined): s is string => z.uuid().safeParse(s).success;
