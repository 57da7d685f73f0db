import { randomBytes } from "node:crypto";
import { Hono, type Context, type Handler } from "hono";
import { deleteCookie, getCookie, setCookie } from "hono/cookie";
import { can, type Role } from "../../domain/auth/permissions";
import { constantTimeEqual } from "../../domain/pii/crypto";
import { AppError, ConflictError, ValidationError, type FieldIssue } from "../../errors";
import type { Principal } from "../../services/auth/authenticate";
import { signInWithWecomCode, WecomSignInRefused } from "../../services/auth/wecom-sign-in";
import { contactByExternalUserId } from "../../services/contacts/by-external-id";
import { getContact } from "../../services/contacts/get";
import type { ContactView } from "../../services/contacts/schemas";
import type { Ctx } from "../../services/context";
import { getLead, type LeadView } from "../../services/leads/leads";
import { leadOfContact } from "../../services/leads/of-contact";
import { leadOutcomeOptions } from "../../services/leads/outcome-options";
import { listTasks, type TaskView } from "../../services/leads/sop";
import { recordOutcome } from "../../services/leads/workspace";
import { listScripts, releaseScript, ScriptRefused, type ScriptView } from "../../services/posts/scripts";
import { listContactTags } from "../../services/tags/list-contact-tags";
import { listTags } from "../../services/tags/list-tags";
import type { GroupChatView } from "../../services/wecom/group-chats";
import { jsapiConfig, jssdkUrls, refusedSignature, sidebarApp, wecomSignInUrl, type SidebarApp } from "../../services/wecom/sidebar";
import { sidebarGroupChat } from "../../services/wecom/sidebar-group";
import { authenticate } from "../middleware/auth";
import { problem } from "../problem";
import { setSessionCookie } from "../routes/auth";
import type { AppEnv, HttpDeps } from "../types";
import { isLocale, LANG_COOKIE, translator, type Locale, type MessageKey, type Translate } from "./i18n";
import { formats, formOf, localeOf, pageStatus, type Formats } from "./kit";
import { renderSidebar, sidebarResponse, type SidebarData, type SidebarView } from "./sidebar-view";
import { withQuery } from "./views";
import { OUTCOME_MODES, outcomeInput, slaModel } from "./leads";

/** The OAuth `state`, bound to the browser that started the sign-in (10 minutes). */
const OAUTH_COOKIE = "siyu_sb_oauth";
const SLUG = /^[a-z0-9][a-z0-9-]{1,62}$/;
const SCRIPTS_SHOWN = 10;
/** Messages sidebar.js shows, by the name it reads them under (data-msg-NAME on <main>). */
const JS_MESSAGES: Record<string, MessageKey> = {
  identifying: "sb.identifying",
  ready: "sb.ready",
  "no-sdk": "sb.error.noSdk",
  sdk: "sb.error.sdk",
  signatures: "sb.error.signatures",
  context: "sb.error.context",
  "no-chat": "sb.home.noChat",
  releasing: "sb.scripts.releasing",
  sent: "sb.scripts.sent",
  "send-failed": "sb.scripts.sendFailed",
  "refused-other": "sb.scripts.refused.other",
  untitled: "sb.scripts.untitled",
  "sla-left": "sla.left",
  "sla-over": "sla.over",
  "dur-min": "dur.min",
  "dur-hmin": "dur.hmin",
  "dur-dh": "dur.dh",
};

interface SbPage {
  c: Context<AppEnv>;
  slug: string;
  app: SidebarApp;
  principal: Principal;
  ctx: Ctx;
  locale: Locale;
  t: Translate;
  fmt: Formats;
  url: URL;
  /** A sidebar page; `sb` wires the page's script to WeCom (the JS-SDK scripts load with it). */
  html(view: SidebarView, model: object, opts: { title: string; status?: number; sb?: Omit<SidebarData, "slug" | "messages"> }): Response;
}

/**
 * The WeCom chat sidebar (聊天工具栏, /sidebar/{tenant}/…): phone-width pages opened beside a chat
 * in WeCom. Signs people in on its own (WeCom OAuth; a console session works too), then the page's
 * script (assets/sidebar.js) registers with the JS-SDK, asks WeCom which chat is open and shows that
 * customer (or group): profile, tags with reasons, lead, today's tasks, the outcome in two taps, and
 * the script library, whose scripts go into the chat only after the server released them through
 * the send gate. See docs/console.md.
 */
export function sidebarPages(deps: HttpDeps) {
  const app = new Hono<AppEnv>();
  const services = deps.services;
  const tz = services.config.TIMEZONE;
  const secure = services.config.publicUrl.startsWith("https://");
  /** Where WeCom should send people back to: PUBLIC_URL when set, else the address this request came to. */
  const originOf = (c: Context) => (services.config.PUBLIC_URL ? services.config.publicUrl : new URL(c.req.url).origin);

  // `?lang=en` (or zh-CN) remembers the language and shows the same page without the parameter.
  app.use("/sidebar/*", async (c, next) => {
    const lang = c.req.query("lang");
    if (c.req.method === "GET" && lang !== undefined) {
      if (isLocale(lang)) setCookie(c, LANG_COOKIE, lang, { path: "/", maxAge: 365 * 24 * 3600, sameSite: "Lax", httpOnly: true });
      return c.redirect(withQuery(new URL(c.req.url), { lang: undefined }), 303);
    }
    return next();
  });
  app.use("/sidebar/*", authenticate(deps, { allowAnonymous: true }));

  const bare = (c: Context, view: SidebarView, model: object, title: string, status: number) => {
    const locale = localeOf(c);
    const t = translator(locale);
    return sidebarResponse(c, renderSidebar(view, model, { locale, t, title, url: new URL(c.req.url), who: c.get("principal")?.name }), status);
  };
  const errorView = (c: Context, status: number, heading: string, message: string, retry?: { href: string; label: string }) =>
    bare(c, "sidebar-error", { status, heading, message, retryHref: retry?.href, retryLabel: retry?.label }, heading, status);

  /** Send the browser to WeCom to sign in, coming back to this page. */
  const startSignIn = (c: Context, a: SidebarApp) => {
    const state = randomBytes(16).toString("base64url");
    setCookie(c, OAUTH_COOKIE, state, { path: "/sidebar", httpOnly: true, sameSite: "Lax", secure, maxAge: 600 });
    const here = new URL(c.req.url);
    const redirectUri = `${originOf(c)}/sidebar/${a.slug}/oauth?next=${encodeURIComponent(here.pathname + here.search)}`;
    return c.redirect(wecomSignInUrl(services, a, { redirectUri, state }), 302);
  };

  /**
   * A sidebar handler: the tenant of the URL and its WeCom app, someone signed in to that tenant
   * (else WeCom sign-in; JSON calls get 401), a role that may use the sidebar (`scripts:use`).
   */
  const sbPage = (handler: (p: SbPage) => Promise<Response>, opts: { json?: boolean } = {}): Handler<AppEnv> => {
    return async (c) => {
      const slug = c.req.param("slug") ?? "";
      const locale = localeOf(c);
      const t = translator(locale);
      const jsonError = (status: number, code: Parameters<typeof problem>[2], detail: string, issues?: FieldIssue[]) => problem(c, status, code, detail, issues);
      const found = SLUG.test(slug) ? await sidebarApp(services, slug) : null;
      if (!found) return opts.json ? jsonError(404, "NOT_FOUND", "no such clinic") : errorView(c, 404, t("sb.err.title"), t("sb.err.tenant", { slug }));
      if (!found.app) return opts.json ? jsonError(412, "PRECONDITION_FAILED", "WeCom is not set up for this clinic") : errorView(c, 412, t("sb.err.title"), t("sb.err.noWecom"));
      const a = found.app;
      const principal = c.get("principal");
      if (!principal || principal.tenantSlug !== slug) {
        if (opts.json) return jsonError(401, "UNAUTHENTICATED", "sign in to the sidebar first");
        if (c.req.method !== "GET") return c.redirect(`/sidebar/${slug}`, 303);
        return startSignIn(c, a);
      }
      if (!can(principal.role, "scripts:use")) {
        return opts.json ? jsonError(403, "FORBIDDEN", `the ${principal.role} role may not use the chat sidebar`) : errorView(c, 403, t("sb.err.title"), t("sb.err.403", { role: t(`role.${principal.role}` as MessageKey) }));
      }
      const url = new URL(c.req.url);
      const jssdk = jssdkUrls(services, a.client);
      const p: SbPage = {
        c,
        slug,
        app: a,
        principal,
        ctx: c.get("ctx"),
        locale,
        t,
        fmt: formats(locale, tz, t),
        url,
        html: (view, model, o) => {
          const sb: SidebarData | undefined = o.sb ? { ...o.sb, slug, messages: Object.entries(JS_MESSAGES).map(([name, key]) => ({ name, text: t(key) })) } : undefined;
          return sidebarResponse(c, renderSidebar(view, model, { locale, t, title: o.title, url, who: principal.name, jssdk: sb ? jssdk : [], sb }), o.status ?? 200, sb ? jssdk : []);
        },
      };
      try {
        return await handler(p);
      } catch (err) {
        if (opts.json) {
          if (err instanceof AppError) return jsonError(err.status, err.code, err.detail, err.issues);
          throw err;
        }
        const status = pageStatus(err);
        if (status === 500) throw err;
        const key: MessageKey = status === 403 ? "sb.err.403" : "sb.err.404";
        return errorView(c, status, t("sb.err.title"), t(key, { role: t(`role.${principal.role}` as MessageKey) }));
      }
    };
  };

  // ---- sign-in with WeCom (OAuth) ----

  app.get("/sidebar/:slug/oauth", async (c) => {
    const slug = c.req.param("slug");
    const t = translator(localeOf(c));
    const found = SLUG.test(slug) ? await sidebarApp(services, slug) : null;
    if (!found?.app) return errorView(c, 404, t("sb.err.title"), t(found ? "sb.err.noWecom" : "sb.err.tenant", { slug }));
    const retry = { href: `/sidebar/${slug}`, label: t("sb.signin.retry") };
    const code = c.req.query("code");
    const state = c.req.query("state");
    const expected = getCookie(c, OAUTH_COOKIE);
    deleteCookie(c, OAUTH_COOKIE, { path: "/sidebar" });
    // The state must be the one this browser was given: no signing someone else in (login CSRF).
    if (!code || !state || !expected || !constantTimeEqual(state, expected)) return errorView(c, 401, t("sb.signin.failed"), t("sb.signin.state"), retry);
    try {
      const s = await signInWithWecomCode(services, found.app, { code, userAgent: c.req.header("user-agent") });
      setSessionCookie(c, deps, s.cookie, s.expiresAt);
    } catch (err) {
      if (!(err instanceof WecomSignInRefused)) throw err;
      return errorView(c, 401, t("sb.signin.failed"), t(`sb.signin.${err.reason}`, { userid: err.wecomUserId }), err.reason === "no_staff" ? undefined : retry);
    }
    // Back to the sidebar page that started it: a path of this tenant's sidebar only (no open redirect).
    const next = c.req.query("next") ?? "";
    const home = `/sidebar/${slug}`;
    const safe = (next === home || next.startsWith(`${home}/`) || next.startsWith(`${home}?`)) && !/[\\\r\n]|\/\//.test(next) ? next : home;
    return c.redirect(safe, 303);
  });

  // ---- pages ----

  // The entry configured in WeCom: identify the chat, then go to its page.
  app.get(
    "/sidebar/:slug",
    sbPage(async (p) => p.html("sidebar-home", {}, { title: p.t("sb.home.title"), sb: { mode: "home" } })),
  );

  const contactPage = async (p: SbPage, ext: string, state: { outcome?: OutcomeForm; status?: number } = {}) => {
    const contact = await contactByExternalUserId({ ctx: p.ctx, externalUserId: ext });
    const scripts = await scriptsModel(p, contact?.name ?? "");
    if (!contact) {
      return p.html(
        "sidebar-unknown",
        {
          heading: p.t("sb.unknown.title"),
          body: p.t("sb.unknown.body"),
          hints: [p.t("sb.unknown.hint.sync"), p.t("sb.unknown.hint.owner")],
          idText: p.t("sb.unknown.id", { id: ext }),
          searchHref: can(p.principal.role, "contacts:read") ? `/console/contacts?q=${encodeURIComponent(ext)}` : undefined,
          scripts,
        },
        { title: p.t("sb.unknown.title"), status: 404, sb: { mode: "unknown", ext } },
      );
    }
    const model = await contactModel(p, contact, state.outcome);
    return p.html("sidebar-contact", { ...model, scripts }, { title: model.name, status: state.status, sb: { mode: "contact", ext, contactId: contact.id } });
  };

  app.get(
    "/sidebar/:slug/contact/:ext",
    sbPage(async (p) => {
      const ext = p.c.req.param("ext") ?? "";
      const done = p.c.req.query("done") === "outcome";
      if (!done) return contactPage(p, ext);
      return contactPage(p, ext, { outcome: { values: {}, errors: {}, flash: true } });
    }),
  );

  app.get(
    "/sidebar/:slug/group/:chatId",
    sbPage(async (p) => {
      const chatId = p.c.req.param("chatId") ?? "";
      const [group, scripts] = await Promise.all([sidebarGroupChat({ ctx: p.ctx, chatId }), scriptsModel(p, "")]);
      if (!group) {
        return p.html(
          "sidebar-unknown",
          { heading: p.t("sb.unknown.group.title"), body: p.t("sb.unknown.group.body"), hints: [], idText: chatId, scripts },
          { title: p.t("sb.unknown.group.title"), status: 404, sb: { mode: "unknown", chat: chatId } },
        );
      }
      return p.html("sidebar-group", groupModel(p, group, scripts), { title: group.name ?? p.t("sb.group.title"), sb: { mode: "group", chat: chatId } });
    }),
  );

  // The outcome in two taps: 成交 → amount → confirm, or 流失 → a reason. Same service as the lead page.
  app.post(
    "/sidebar/:slug/leads/:id/outcome",
    sbPage(async (p) => {
      const id = p.c.req.param("id") ?? "";
      const lead = await getLead({ ctx: p.ctx, id });
      const contact = await getContact({ ctx: p.ctx, id: lead.contactId });
      const back = contact.externalUserId ? `/sidebar/${p.slug}/contact/${encodeURIComponent(contact.externalUserId)}` : `/sidebar/${p.slug}`;
      const f = await formOf(p.c);
      // The two-tap form sends the outcome, the mode (preset), and the amount or the lost reason.
      const { outcome, amount, items, lostReason, mode } = outcomeInput(f);
      const input = { outcome, amount, items, lostReason, mode };
      try {
        await recordOutcome({ ctx: p.ctx, id, input });
      } catch (err) {
        const form = outcomeFailure(p, err, f);
        if (!form || !contact.externalUserId) throw err;
        return contactPage(p, contact.externalUserId, { outcome: form.form, status: form.status });
      }
      return p.c.redirect(`${back}?done=outcome`, 303);
    }),
  );

  // ---- JSON for the page's script ----

  app.get(
    "/sidebar/:slug/jsapi",
    sbPage(
      async (p) => {
        const origins = [...new Set([services.config.publicUrl, p.url.origin].map((u) => new URL(u).origin))];
        return p.c.json(await jsapiConfig({ ctx: p.ctx, input: { url: p.c.req.query("url") ?? "", origins, pathPrefix: `/sidebar/${p.slug}` } }));
      },
      { json: true },
    ),
  );

  app.post(
    "/sidebar/:slug/jsapi/refused",
    sbPage(async (p) => p.c.json(await refusedSignature({ ctx: p.ctx, input: await jsonBody(p.c) })), { json: true }),
  );

  app.post(
    "/sidebar/:slug/scripts/:id/release",
    sbPage(
      async (p) => {
        try {
          return p.c.json(await releaseScript({ ctx: p.ctx, id: p.c.req.param("id") ?? "", input: await jsonBody(p.c) }));
        } catch (err) {
          if (!(err instanceof ScriptRefused)) throw err;
          const message = p.t(`sb.scripts.refused.${err.reason}`, { detail: err.detail });
          return p.c.json({ code: err.code, reason: err.reason, detail: err.detail, message }, 409);
        }
      },
      { json: true },
    ),
  );

  // Anything else below a sidebar: its own 404 page.
  app.get(
    "/sidebar/:slug/*",
    sbPage(async (p) => p.html("sidebar-error", { status: 404, heading: p.t("sb.err.title"), message: p.t("sb.err.404") }, { title: p.t("sb.err.title"), status: 404 })),
  );

  app.onError((err, c) => {
    c.get("logger")?.error({ err, route: c.req.path }, "sidebar page failed");
    if (c.req.path.includes("/jsapi") || c.req.path.includes("/release")) return problem(c, 500, "INTERNAL", "something went wrong on our side; the request id helps us find it");
    const t = translator(localeOf(c));
    return errorView(c, 500, t("sb.err.title"), t("sb.err.500", { requestId: c.get("requestId") }));
  });
  return app;
}

async function jsonBody(c: Context): Promise<unknown> {
  try {
    return await c.req.json();
  } catch {
    throw new ValidationError([{ field: "(body)", message: "is not valid JSON" }]);
  }
}

// ---- models ----

interface OutcomeForm {
  values: Record<string, string>;
  errors: Record<string, string>;
  formError?: string;
  /** Show the "recorded" notice (after the redirect). */
  flash?: boolean;
}

/** The library's page, previews as they will read in this chat (`name`: the customer's, empty for a group). */
async function scriptsModel(p: SbPage, name: string) {
  const cursor = p.c.req.query("scripts") || undefined;
  const page = await listScripts({ ctx: p.ctx, input: { cursor, limit: SCRIPTS_SHOWN, name } });
  return {
    items: page.items.map((s: ScriptView) => ({ id: s.id, contentHash: s.contentHash, title: s.title ?? p.t("sb.scripts.untitled"), preview: s.preview })),
    nextHref: page.nextCursor ? withQuery(p.url, { scripts: page.nextCursor, done: undefined }) : undefined,
    firstHref: cursor ? withQuery(p.url, { scripts: undefined, done: undefined }) : undefined,
  };
}

function reasonText(t: Translate, source: string, ruleId: string | null, version: number | null): string {
  if (source === "rule" && ruleId) return t("contact.reason.rule", { rule: ruleId, version: version ?? "?" });
  return source === "manual" || source === "import" || source === "wecom" || source === "event" ? t(`contact.reason.${source}` as MessageKey) : source;
}

async function contactModel(p: SbPage, contact: ContactView, outcome: OutcomeForm | undefined) {
  const role: Role = p.principal.role;
  const [tags, tagOptions, lead] = await Promise.all([
    can(role, "tags:read") ? listContactTags({ ctx: p.ctx, contactId: contact.id }) : Promise.resolve([]),
    can(role, "tags:read") ? listTags({ ctx: p.ctx }) : Promise.resolve([]),
    can(role, "leads:read") ? leadOfContact({ ctx: p.ctx, contactId: contact.id }) : Promise.resolve(null),
  ]);
  const groupNames = new Map(tagOptions.map((o) => [o.group, o.groupName]));
  const open = lead?.status === "open";
  const canWork = open && can(role, "leads:work");
  const [tasks, options] = await Promise.all([lead ? tasksOf(p, lead) : Promise.resolve([]), canWork ? leadOutcomeOptions({ ctx: p.ctx, id: lead!.id }) : Promise.resolve(null)]);
  const now = p.ctx.deps.now().getTime();
  const statusLabel = lead ? p.t(`lead.status.${lead.status}` as MessageKey) : "";
  const o = outcome ?? { values: {}, errors: {} };
  const mode = OUTCOME_MODES.find((m) => m === o.values.mode) ?? options?.mode ?? "online";
  const g = contact.gender;
  return {
    name: contact.name ?? p.t("contacts.unnamed"),
    contactId: contact.id,
    flash: o.flash && lead ? p.t("sb.outcome.done", { status: statusLabel }) : undefined,
    profile: [
      { label: p.t("sb.contact.phone"), value: contact.phone ?? "—", testid: "sb-phone" },
      { label: p.t("sb.contact.gender"), value: g ? p.t(`contact.gender.${g}` as MessageKey) : "—" },
      { label: p.t("sb.contact.source"), value: contact.source },
      { label: p.t("sb.contact.since"), value: p.fmt.dateTime(contact.createdAt) },
    ],
    optedOut: contact.marketingOptOutAt ? p.t("sb.contact.optedOut", { at: p.fmt.dateTime(contact.marketingOptOutAt) }) : undefined,
    tags: tags.map((x) => ({
      value: `${x.group}:${x.name}`,
      groupName: groupNames.get(x.group) ?? x.group,
      name: x.name,
      reason: reasonText(p.t, x.source, x.reason.ruleId, x.reason.ruleVersion),
      since: x.since,
      sinceText: p.t("sb.tags.since", { at: p.fmt.dateTime(x.since) }),
    })),
    lead: lead ? { id: lead.id, grade: lead.grade, statusLabel, need: lead.need ?? "—", sla: slaModel(p, lead, now) } : undefined,
    tasks: tasks.map((x) => ({ title: x.title, dueAt: x.dueAt, dueText: p.fmt.dateTime(x.dueAt), overdue: x.overdue, done: x.status === "done" })),
    outcome: canWork
      ? {
          ...o,
          action: `/sidebar/${p.slug}/leads/${lead!.id}/outcome`,
          converted: o.values.outcome === "converted",
          lost: o.values.outcome === "lost",
          lostReasons: options?.lostReasons ?? [],
          // One choice per sheet (each sheet is its own form), preset: in person when the contact's
          // visit was recorded today, else online (the chat this sidebar sits in).
          modes: Object.fromEntries(
            (["converted", "lost"] as const).map((sheet) => [
              sheet,
              OUTCOME_MODES.map((value) => ({ value, id: `o-mode-${sheet}-${value}`, label: p.t(`sb.outcome.mode.${value}`), checked: value === mode })),
            ]),
          ),
        }
      : undefined,
    closedText: lead && !open ? p.t("sb.outcome.closed", { status: statusLabel }) : undefined,
  };
}

/** The lead's tasks due today (any status) and its overdue open ones, soonest first. */
async function tasksOf(p: SbPage, lead: LeadView): Promise<TaskView[]> {
  const [today, overdue] = await Promise.all([
    listTasks({ ctx: p.ctx, input: { leadId: lead.id, due: "today", mine: false, limit: 50 } }),
    listTasks({ ctx: p.ctx, input: { leadId: lead.id, due: "overdue", mine: false, limit: 50 } }),
  ]);
  const byId = new Map([...overdue.items, ...today.items].map((x) => [x.id, x]));
  return [...byId.values()].sort((a, b) => (a.dueAt < b.dueAt ? -1 : a.dueAt > b.dueAt ? 1 : 0));
}

function groupModel(p: SbPage, g: GroupChatView, scripts: Awaited<ReturnType<typeof scriptsModel>>) {
  return {
    name: g.name ?? p.t("sb.group.title"),
    members: p.t("sb.group.members", { members: g.memberCount, customers: g.customerCount }),
    tags: g.tags,
    synced: p.t("sb.group.synced", { at: p.fmt.dateTime(g.syncedAt) }),
    scripts,
  };
}

/** A refused outcome: messages next to the fields (the service's field names), or one for the form. */
function outcomeFailure(p: SbPage, err: unknown, values: Record<string, string>): { form: OutcomeForm; status: number } | null {
  if (err instanceof ConflictError) return { form: { values, errors: {}, formError: p.t("sb.outcome.conflict") }, status: 409 };
  if (!(err instanceof ValidationError)) return null;
  const errors: Record<string, string> = {};
  const other: FieldIssue[] = [];
  for (const issue of err.issues) {
    const field = issue.field.replace(/[[.].*$/, "");
    if (field === "amount") errors.amount ??= p.t("sb.outcome.err.amount");
    else if (field === "lostReason") errors.lostReason ??= p.t("sb.outcome.err.lostReason");
    else other.push(issue);
  }
  const formError = other.length ? p.t("sb.outcome.err.form", { detail: other.map((i) => `${i.field}: ${i.message}`).join("; ") }) : undefined;
  return { form: { values, errors, ...(formError ? { formError } : {}) }, status: 422 };
}
