import { Hono, type Context, type MiddlewareHandler } from "hono";
import { getCookie, setCookie } from "hono/cookie";
import { AppError } from "../../errors";
import { signOut } from "../../services/auth/authenticate";
import { authenticate, SESSION_COOKIE } from "../middleware/auth";
import type { LoginThrottle } from "../middleware/login-throttle";
import { setSessionCookie, throttledSignIn } from "../routes/auth";
import type { AppEnv, HttpDeps } from "../types";
import { assetRoutes } from "./assets";
import { contactPages } from "./contacts";
import { dashboardPages } from "./dashboard";
import { isLocale, LANG_COOKIE, translator, type MessageKey } from "./i18n";
import { errorPage, htmlResponse, localeOf, page, pageOf, pageStatus, shell } from "./kit";
import { leadPages } from "./leads";
import { marketingPages } from "./marketing";
import { contentPages } from "./content";
import { consultantPages } from "./consultant";
import { adminPages } from "./admin";
import { sidebarPages } from "./sidebar";
import { homeSection, sectionsFor } from "./nav";
import { renderPage, withQuery } from "./views";

/** Where a sign-in may send people back to: console pages only (no open redirect). */
function safeNext(next: string | undefined): string {
  return next && /^\/console(?:[/?#]|$)/.test(next) && !next.startsWith("//") ? next : "/console";
}

/**
 * The web console: server-rendered pages on the API's own app, behind the console sign-in. Each
 * page names the permission it needs (the API's), calls services with the signed-in staff
 * member's ctx, and renders a handlebars view in the layout. See docs/console.md.
 */
export function consolePages(deps: HttpDeps, throttle: LoginThrottle, opts: { demoHint?: string | undefined }) {
  const app = new Hono<AppEnv>();
  const tz = deps.services.config.TIMEZONE;

  app.route("/", assetRoutes());
  // The WeCom chat sidebar signs in on its own (inside WeCom), so it is mounted before the console's.
  app.route("/", sidebarPages(deps));

  // Language: `?lang=en` (or zh-CN) on any console page remembers the choice in a cookie, then
  // shows the same page without the parameter.
  const switchLanguage: MiddlewareHandler<AppEnv> = async (c, next) => {
    const lang = c.req.query("lang");
    if (c.req.method === "GET" && lang !== undefined) {
      if (isLocale(lang)) setCookie(c, LANG_COOKIE, lang, { path: "/", maxAge: 365 * 24 * 3600, sameSite: "Lax", httpOnly: true });
      return c.redirect(withQuery(new URL(c.req.url), { lang: undefined }), 303);
    }
    return next();
  };
  app.use("/login", switchLanguage);
  app.use("/console", switchLanguage);
  app.use("/console/*", switchLanguage);

  app.get("/", (c) => c.redirect(getCookie(c, SESSION_COOKIE) ? "/console" : "/login"));

  const loginPage = (c: Context<AppEnv>, model: { tenant: string; email?: string; error?: MessageKey; next?: string | undefined }, status = 200) => {
    const locale = localeOf(c);
    const t = translator(locale);
    const body = { ...model, error: model.error ? t(model.error) : undefined, hint: opts.demoHint };
    return htmlResponse(c, renderPage("login", body, shell(c, locale, t, t("login.title"))), status);
  };

  app.get("/login", (c) => loginPage(c, { tenant: deps.services.config.TENANT_SLUG, next: c.req.query("next") }));

  app.post("/login", async (c) => {
    const form = await c.req.parseBody();
    const tenant = String(form.tenant ?? "");
    const email = String(form.email ?? "");
    const next = typeof form.next === "string" ? form.next : undefined;
    try {
      const s = await throttledSignIn(c, deps, throttle, { tenant, email, password: String(form.password ?? ""), userAgent: c.req.header("user-agent") });
      setSessionCookie(c, deps, s.cookie, s.expiresAt);
      return c.redirect(safeNext(next), 303);
    } catch (err) {
      if (!(err instanceof AppError)) throw err;
      const throttled = err.code === "TOO_MANY_REQUESTS";
      return loginPage(c, { tenant, email, next, error: throttled ? "login.throttled" : "login.failed" }, throttled ? 429 : 401);
    }
  });

  app.post("/logout", async (c) => {
    const cookie = getCookie(c, SESSION_COOKIE);
    if (cookie) await signOut(deps.services.db, cookie);
    c.header("set-cookie", `${SESSION_COOKIE}=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax`);
    return c.redirect("/login", 303);
  });

  app.use("/console/*", authenticate(deps, { allowAnonymous: true }));
  app.use("/console", authenticate(deps, { allowAnonymous: true }));

  const leads = leadPages(tz);
  // /console is the role's home: a consultant's day, else the overview of what the role may open.
  app.get("/console", page(tz, null, (p) => {
    if (homeSection(p.principal.role).key === "workspace") return leads.workspacePage(p);
    const sections = sectionsFor(p.principal.role)
      .filter((s) => s.key !== "home")
      .map((s) => ({ href: s.href, label: p.t(s.label(p.principal.role)), desc: p.t(s.desc) }));
    return p.html("home", { name: p.principal.name, sections, roleLabel: p.t(`role.${p.principal.role}`) }, { title: p.t("home.title"), section: "home" });
  }));
  app.route("/", contactPages(tz));
  app.route("/", dashboardPages(tz));
  app.route("/", leads.app);
  app.route("/", marketingPages(deps));
  app.route("/", contentPages(deps));
  app.route("/", consultantPages(deps));
  app.route("/", adminPages(deps));
  app.all("/console/*", page(tz, null, (p) => errorPage(p, 404)));

  // Errors of console pages are pages too (403, 404, a bad link), never problem+json.
  app.onError((err, c) => {
    const status = pageStatus(err);
    if (status === 500) c.get("logger")?.error({ err, route: c.req.path }, "console page failed");
    const principal = c.get("principal");
    if (!principal) return htmlResponse(c, `<!doctype html><title>${status}</title><p>${status}</p>`, status);
    return errorPage(pageOf(c, principal, tz), status);
  });
  return app;
}
