import { Hono } from "hono";
import { getCookie } from "hono/cookie";
import { can, ownsOnly } from "../../domain/auth/permissions";
import { AppError } from "../../errors";
import { signOut } from "../../services/auth/authenticate";
import { listContacts } from "../../services/contacts/list";
import { authenticate, SESSION_COOKIE } from "../middleware/auth";
import type { LoginThrottle } from "../middleware/login-throttle";
import { setSessionCookie, throttledSignIn } from "../routes/auth";
import type { AppEnv, HttpDeps } from "../types";
import { renderPage, ROLE_LABELS, views } from "./views";

/** The console's sign-in and home page. The full console (issue: web console) grows from here. */
export function consolePages(deps: HttpDeps, throttle: LoginThrottle, opts: { demoHint?: string | undefined }) {
  const app = new Hono<AppEnv>();
  const fmt = new Intl.DateTimeFormat("zh-CN", { timeZone: deps.services.config.TIMEZONE, dateStyle: "short", timeStyle: "short" });

  app.get("/", (c) => c.redirect(getCookie(c, SESSION_COOKIE) ? "/console" : "/login"));

  app.get("/login", (c) =>
    c.html(renderPage({ title: "登录", body: views.login({ tenant: deps.services.config.TENANT_SLUG, hint: opts.demoHint }) })),
  );

  app.post("/login", async (c) => {
    const form = await c.req.parseBody();
    const tenant = String(form.tenant ?? "");
    const email = String(form.email ?? "");
    try {
      const s = await throttledSignIn(c, deps, throttle, { tenant, email, password: String(form.password ?? ""), userAgent: c.req.header("user-agent") });
      setSessionCookie(c, deps, s.cookie, s.expiresAt);
      return c.redirect("/console", 303);
    } catch (err) {
      if (!(err instanceof AppError)) throw err;
      const throttled = err.code === "TOO_MANY_REQUESTS";
      const error = throttled ? "登录失败次数过多，请 15 分钟后再试" : "机构代码、邮箱或密码不正确";
      return c.html(renderPage({ title: "登录", body: views.login({ tenant, email, error, hint: opts.demoHint }) }), throttled ? 429 : 401);
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
  app.get("/console", async (c) => {
    const p = c.get("principal");
    if (!p) return c.redirect("/login", 303);
    let body: string;
    if (can(p.role, "contacts:read")) {
      const page = await listContacts({ ctx: c.get("ctx"), input: { limit: 50 } });
      const contacts = page.items.map((x) => ({ ...x, createdAt: fmt.format(new Date(x.createdAt)), lastEventAt: x.lastEventAt ? fmt.format(new Date(x.lastEventAt)) : "—" }));
      body = views.home({ contacts, more: page.nextCursor !== null, ownOnly: ownsOnly(p.role), canImport: can(p.role, "contacts:import") });
    } else {
      body = views.home({ contacts: [], noAccess: true, roleLabel: ROLE_LABELS[p.role] });
    }
    return c.html(renderPage({ title: "工作台", body, principal: p, tenant: p.tenantSlug }));
  });
  return app;
}
