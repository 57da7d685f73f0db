import { Hono } from "hono";
import { AppError } from "../../errors";
import { sandboxOptions, sandboxStatus, simulateContactAdded, simulateGroupJoin, simulateMessage, type SandboxOptions, type SimulationResult } from "../../services/sandbox/simulate";
import { listWecomCallbacks, type WecomCallbackView } from "../../services/wecom/callbacks-list";
import type { AppEnv } from "../types";
import { field, formFailure, selectOptions, type Field } from "./admin-kit";
import { hasMessage, type MessageKey } from "./i18n";
import { formOf, page, type Page } from "./kit";
import { withQuery } from "./views";

const FORMS = ["add", "join", "message"] as const;
type FormName = (typeof FORMS)[number];
interface FormState {
  values: Record<string, string>;
  errors: Record<string, string>;
  formError?: string | undefined;
}

/**
 * 沙箱: with WECOM_MODE=sandbox, the fake WeCom runs in this process; these forms play what
 * patients do in WeCom against it (add a consultant through a channel code, join a customer
 * group, write a message). The fake sends real encrypted callbacks to /wecom/callback, and the
 * list below shows every callback received and what it became (events, contacts). Outside the
 * sandbox the page explains why there is nothing to simulate.
 */
export function sandboxPages(timeZone: string) {
  const app = new Hono<AppEnv>();

  const render = async (p: Page, state: { form?: FormName; values?: Record<string, string>; errors?: Record<string, string>; formError?: string | undefined } = {}, status = 200) => {
    const s = sandboxStatus({ ctx: p.ctx });
    const cursor = p.c.req.query("cursor") || undefined;
    const [opts, callbacks] = await Promise.all([s.mode === "ready" ? sandboxOptions({ ctx: p.ctx }) : Promise.resolve(null), listWecomCallbacks({ ctx: p.ctx, input: { cursor, limit: 20 } })]);
    const form = (name: FormName): FormState => (state.form === name ? { values: state.values ?? {}, errors: state.errors ?? {}, formError: state.formError } : { values: {}, errors: {} });
    return p.html(
      "sandbox",
      {
        mode: s.mode,
        ready: s.mode === "ready",
        explain: s.mode === "ready" ? undefined : p.t(`sandbox.mode.${s.mode}` as MessageKey),
        fakeUrl: s.mode === "ready" ? s.url : undefined,
        result: resultModel(p),
        forms: opts ? formsModel(p, opts, form) : undefined,
        callbacks: callbacks.items.map((c) => callbackModel(p, c)),
        callbacksEmpty: p.t(s.mode === "ready" ? "sandbox.callbacks.emptyReady" : "sandbox.callbacks.empty"),
        nextHref: callbacks.nextCursor ? withQuery(p.url, { cursor: callbacks.nextCursor, done: undefined }) : undefined,
        firstHref: cursor ? withQuery(p.url, { cursor: undefined }) : undefined,
        // While a callback waits for the worker, the list refreshes itself (with the script).
        pending: callbacks.items.some((c) => !c.processedAt && !c.lastError),
      },
      { title: p.t("sandbox.title"), section: "sandbox", status },
    );
  };

  app.get("/console/sandbox", page(timeZone, "wecom:manage", (p) => render(p)));

  const simulate = (name: FormName, run: (p: Page, f: Record<string, string>) => Promise<SimulationResult>) =>
    page(timeZone, "wecom:manage", async (p) => {
      const f = await formOf(p.c);
      let r: SimulationResult;
      try {
        r = await run(p, f);
      } catch (err) {
        const fail = formFailure(p, err, `sandbox.${name}`);
        if (fail) return render(p, { form: name, values: f, errors: fail.errors, formError: fail.formError }, fail.status);
        // The fake refused (an unknown group, the sandbox gone): said on the form.
        if (err instanceof AppError && err.code === "PRECONDITION_FAILED") return render(p, { form: name, values: f, errors: {}, formError: p.t("sandbox.err.refused", { message: err.detail }) }, 412);
        throw err;
      }
      const d = r.delivery;
      return p.c.redirect(
        withQuery(new URL("/console/sandbox", p.url), {
          done: name,
          ext: r.externalUserId,
          delivered: d ? (d.delivered ? "1" : "0") : undefined,
          attempts: d ? String(d.attempts) : undefined,
          statuses: d && !d.delivered ? d.statuses.join(",").slice(0, 100) : undefined,
        }) + "#done",
        303,
      );
    });

  app.post(
    "/console/sandbox/add",
    simulate("add", async (p, f) => {
      let staffId = f.staffId || undefined;
      const state = f.state?.trim() || f.channel || undefined;
      // A channel code without a chosen consultant: the code's own (first) consultant.
      if (!staffId && f.channel) {
        const o = await sandboxOptions({ ctx: p.ctx });
        const userid = o.channels.find((c) => c.state === f.channel)?.staffUserIds[0];
        staffId = o.staff.find((s) => userid && s.wecomUserId.toLowerCase() === userid.toLowerCase())?.id;
      }
      return simulateContactAdded({ ctx: p.ctx, input: { staffId, name: f.name, state } });
    }),
  );
  app.post(
    "/console/sandbox/join",
    simulate("join", (p, f) => simulateGroupJoin({ ctx: p.ctx, input: { externalUserId: f.externalUserId ?? "", chatId: f.chatId || undefined, ownerStaffId: f.ownerStaffId || undefined, groupName: f.groupName } })),
  );
  app.post(
    "/console/sandbox/message",
    simulate("message", (p, f) => simulateMessage({ ctx: p.ctx, input: { externalUserId: f.externalUserId ?? "", text: f.text ?? "" } })),
  );

  return app;
}

function formsModel(p: Page, o: SandboxOptions, form: (name: FormName) => FormState) {
  const staffOptions = (selected: string | undefined, none: MessageKey) => [
    { value: "", label: p.t(none), selected: !selected },
    ...selectOptions(o.staff.map((s) => ({ value: s.id, label: `${s.name}（${p.t(`role.${s.role}` as MessageKey)} · ${s.wecomUserId}）` })), selected),
  ];
  const contactOptions = (selected: string | undefined) => [
    { value: "", label: p.t("sandbox.f.choose"), selected: !selected },
    ...selectOptions(o.contacts.map((c) => ({ value: c.externalUserId, label: `${c.name ?? p.t("contacts.unnamed")}（${c.externalUserId.slice(0, 12)}…）` })), selected),
  ];
  const add = form("add");
  const join = form("join");
  const msg = form("message");
  const fields = {
    add: [
      field({ id: "sa-channel", name: "channel", label: p.t("sandbox.f.channel"), hint: p.t("sandbox.f.channel.hint"), options: [{ value: "", label: p.t("sandbox.f.noChannel"), selected: !add.values.channel }, ...selectOptions(o.channels.map((c) => ({ value: c.state, label: `${c.name}（${c.state}）` })), add.values.channel)] }),
      field({ id: "sa-staffId", name: "staffId", label: p.t("sandbox.f.staff"), error: add.errors.staffId, options: staffOptions(add.values.staffId, "sandbox.f.choose") }),
      field({ id: "sa-name", name: "name", label: p.t("sandbox.f.name"), value: add.values.name, error: add.errors.name, maxlength: 50, placeholder: p.t("sandbox.f.name.placeholder") }),
      field({ id: "sa-state", name: "state", label: p.t("sandbox.f.state"), value: add.values.state, error: add.errors.state, maxlength: 30, hint: p.t("sandbox.f.state.hint") }),
    ] satisfies Field[],
    join: [
      field({ id: "sj-externalUserId", name: "externalUserId", label: p.t("sandbox.f.contact"), error: join.errors.externalUserId, options: contactOptions(join.values.externalUserId) }),
      field({ id: "sj-chatId", name: "chatId", label: p.t("sandbox.f.group"), error: join.errors.chatId, options: [{ value: "", label: p.t("sandbox.f.newGroup"), selected: !join.values.chatId }, ...selectOptions(o.groups.map((g) => ({ value: g.chatId, label: g.name ?? g.chatId })), join.values.chatId)] }),
      field({ id: "sj-ownerStaffId", name: "ownerStaffId", label: p.t("sandbox.f.owner"), error: join.errors.ownerStaffId, hint: p.t("sandbox.f.owner.hint"), options: staffOptions(join.values.ownerStaffId, "sandbox.f.choose") }),
      field({ id: "sj-groupName", name: "groupName", label: p.t("sandbox.f.groupName"), value: join.values.groupName, error: join.errors.groupName, maxlength: 50 }),
    ] satisfies Field[],
    message: [
      field({ id: "sm-externalUserId", name: "externalUserId", label: p.t("sandbox.f.contact"), error: msg.errors.externalUserId, options: contactOptions(msg.values.externalUserId) }),
      field({ id: "sm-text", name: "text", label: p.t("sandbox.f.text"), value: msg.values.text, error: msg.errors.text, rows: 3, maxlength: 2000, placeholder: p.t("sandbox.f.text.placeholder") }),
    ] satisfies Field[],
  };
  return {
    add: { fields: fields.add, formError: add.formError },
    join: { fields: fields.join, formError: join.formError, noContacts: o.contacts.length === 0 },
    message: { fields: fields.message, formError: msg.formError, noContacts: o.contacts.length === 0 },
    noStaff: o.staff.length === 0,
  };
}

/** The notice after a simulation: delivered (in how many attempts) or not, with the statuses. */
function resultModel(p: Page) {
  const done = p.c.req.query("done");
  if (!done || !(FORMS as readonly string[]).includes(done)) return undefined;
  const ext = p.c.req.query("ext") ?? "";
  const delivered = p.c.req.query("delivered");
  const what = p.t(`sandbox.done.${done}` as MessageKey, { ext });
  if (delivered === "0") return { ok: false, text: `${what} ${p.t("sandbox.done.notDelivered", { statuses: p.c.req.query("statuses") ?? "" })}` };
  if (delivered === "1") return { ok: true, text: `${what} ${p.t("sandbox.done.delivered", { attempts: p.c.req.query("attempts") ?? "1" })}` };
  return { ok: true, text: what };
}

function callbackModel(p: Page, c: WecomCallbackView) {
  const what = c.changeType ? `${c.kind}.${c.changeType}${c.detail ? `.${c.detail}` : ""}` : c.kind;
  const key = `sandbox.cb.${what}`;
  const short = `sandbox.cb.${c.kind}.${c.changeType ?? ""}`;
  const label = hasMessage(key) ? p.t(key as MessageKey) : hasMessage(short) ? p.t(short as MessageKey) : what;
  const status = c.processedAt ? "done" : c.lastError ? "failed" : "pending";
  return {
    id: c.id,
    received: p.fmt.dateTime(c.receivedAt),
    receivedAt: c.receivedAt,
    label,
    raw: what,
    who: [c.userId ? p.t("sandbox.cb.staff", { userid: c.userId }) : "", c.chatId ? p.t("sandbox.cb.chat", { chatId: c.chatId.length > 14 ? `${c.chatId.slice(0, 12)}…` : c.chatId }) : "", c.state ? p.t("sandbox.cb.state", { state: c.state }) : ""].filter(Boolean).join(" · "),
    contacts: c.contacts.map((x) => ({ id: x.id, name: x.name ?? p.t("contacts.unnamed") })),
    unknownContacts: c.externalUserIds.filter((e) => !c.contacts.some((x) => x.externalUserId === e)).map((e) => `${e.slice(0, 12)}…`),
    events: c.events.map((e) => ({ label: hasMessage(`event.${e.type}`) ? p.t(`event.${e.type}` as MessageKey) : e.type, type: e.type, contactId: e.contactId, contactName: e.contactName ?? p.t("contacts.unnamed"), anchor: `ev-${e.id}` })),
    status,
    statusLabel: p.t(`sandbox.cb.status.${status}` as MessageKey),
    error: c.lastError,
    deliveries: c.deliveries > 1 ? p.t("sandbox.cb.deliveries", { n: c.deliveries }) : undefined,
  };
}
