import { Hono } from "hono";
import { can } from "../../domain/auth/permissions";
import { AppError, NotFoundError } from "../../errors";
import { listChannels, type ChannelView } from "../../services/wecom/channels";
import { getWecomSettings, putWecomSettings } from "../../services/wecom/settings";
import { getWecomSyncStatus, startWecomSync, type SyncRunView } from "../../services/wecom/sync";
import type { AppEnv } from "../types";
import { doneNotice, field, formFailure, numberOf } from "./admin-kit";
import { hasMessage, type MessageKey } from "./i18n";
import { formOf, page, type Page } from "./kit";

const SECRETS = ["secret", "callbackToken", "encodingAesKey"] as const;

/** null when there is none yet (a NotFoundError), else the service's answer. */
async function orNull<T>(work: Promise<T>): Promise<T | null> {
  try {
    return await work;
  } catch (err) {
    if (err instanceof NotFoundError) return null;
    throw err;
  }
}

/**
 * 企业微信设置: the tenant's WeCom app (corp id, agent id; the secret, callback token and
 * EncodingAESKey are never shown: only whether they are set, and a new value replaces one only
 * when typed), the callback URL to enter in WeCom's admin console, a contact sync with its
 * progress, and the channel codes (渠道活码).
 */
export function wecomPages(timeZone: string) {
  const app = new Hono<AppEnv>();

  const render = async (p: Page, state: { values?: Record<string, string>; errors?: Record<string, string>; formError?: string | undefined; syncError?: string | undefined } = {}, status = 200) => {
    const [settings, sync, channels] = await Promise.all([
      orNull(getWecomSettings({ ctx: p.ctx })),
      orNull(getWecomSyncStatus({ ctx: p.ctx })),
      can(p.principal.role, "channels:manage") ? listChannels({ ctx: p.ctx }) : Promise.resolve([] as ChannelView[]),
    ]);
    const config = p.ctx.deps.config;
    const v = state.values ?? { corpId: settings?.corpId ?? "", agentId: settings ? String(settings.agentId) : "" };
    const e = state.errors ?? {};
    const setText = (set: boolean | undefined) => p.t(set ? "wecom.secret.set" : "wecom.secret.unset");
    const secretSet: Record<(typeof SECRETS)[number], boolean> = {
      secret: Boolean(settings?.secretSet),
      callbackToken: Boolean(settings?.callbackTokenSet),
      encodingAesKey: Boolean(settings?.encodingAesKeySet),
    };
    return p.html(
      "wecom",
      {
        flash: doneNotice(p, "wecom"),
        sandbox: config.WECOM_MODE === "sandbox",
        configured: Boolean(settings),
        updatedText: settings ? p.t("wecom.updated", { at: p.fmt.dateTime(settings.updatedAt) }) : undefined,
        callbackUrl: settings?.callbackUrl ?? `${config.publicUrl}/wecom/callback/${p.principal.tenantSlug}`,
        formError: state.formError,
        fields: [
          field({ id: "w-corpId", name: "corpId", label: p.t("wecom.corpId"), value: v.corpId, error: e.corpId, autocomplete: "off", maxlength: 40, hint: p.t("wecom.corpId.hint") }),
          field({ id: "w-agentId", name: "agentId", label: p.t("wecom.agentId"), value: v.agentId, error: e.agentId, inputmode: "numeric", autocomplete: "off" }),
        ],
        // Secrets: an empty password field every time, and whether one is stored. Never the value.
        secrets: SECRETS.map((k) =>
          field({
            id: `w-${k}`,
            name: k,
            label: `${p.t(`wecom.${k}`)}（${setText(secretSet[k])}）`,
            type: "password",
            value: "",
            autocomplete: "off",
            error: e[k],
            hint: p.t(secretSet[k] ? "wecom.secret.keep" : "wecom.secret.first"),
          }),
        ),
        secretStatus: SECRETS.map((k) => ({ label: p.t(`wecom.${k}`), text: setText(secretSet[k]), set: secretSet[k] })),
        sync: sync ? syncModel(p, sync) : undefined,
        syncError: state.syncError,
        channels: channels.map((c) => ({
          name: c.name,
          kind: p.t(c.kind === "referral" ? "wecom.channel.referral" : "wecom.channel.channel"),
          state: c.state,
          staff: c.staffUserIds.join("、"),
          contacts: c.contacts,
          qrCode: c.qrCode && /^https?:\/\//.test(c.qrCode) ? c.qrCode : undefined,
          created: p.fmt.dateTime(c.createdAt),
        })),
        channelsManaged: can(p.principal.role, "channels:manage"),
      },
      { title: p.t("wecom.title"), section: "wecom", status },
    );
  };

  app.get("/console/wecom", page(timeZone, "wecom:manage", (p) => render(p)));

  app.post("/console/wecom", page(timeZone, "wecom:manage", async (p) => {
    const f = await formOf(p.c);
    const input = {
      corpId: (f.corpId ?? "").trim(),
      agentId: numberOf(f.agentId),
      // A secret replaces the stored one only when typed.
      secret: f.secret || undefined,
      callbackToken: f.callbackToken?.trim() || undefined,
      encodingAesKey: f.encodingAesKey?.trim() || undefined,
    };
    const values = { corpId: f.corpId ?? "", agentId: f.agentId ?? "" };
    try {
      await putWecomSettings({ ctx: p.ctx, input });
    } catch (err) {
      const fail = formFailure(p, err, "wecom");
      if (fail) return render(p, { values, errors: fail.errors, formError: fail.formError }, fail.status);
      // No key to seal the secrets with: the server's to fix, said on the page.
      if (err instanceof AppError && err.code === "SERVICE_UNAVAILABLE") return render(p, { values, formError: p.t("wecom.err.noKey") }, 503);
      throw err;
    }
    return p.c.redirect("/console/wecom?done=saved#done", 303);
  }));

  app.post("/console/wecom/sync", page(timeZone, "wecom:manage", async (p) => {
    const f = await formOf(p.c);
    try {
      await startWecomSync({ ctx: p.ctx, restart: f.restart === "1" });
    } catch (err) {
      if (err instanceof AppError && err.code === "PRECONDITION_FAILED") return render(p, { syncError: p.t("wecom.sync.notSetUp") }, 412);
      throw err;
    }
    return p.c.redirect("/console/wecom?done=sync#sync", 303);
  }));

  return app;
}

function syncModel(p: Page, r: SyncRunView) {
  const label = (prefix: string, v: string) => (hasMessage(`${prefix}.${v}`) ? p.t(`${prefix}.${v}` as MessageKey) : v);
  const running = r.status === "queued" || r.status === "running";
  const total = Math.max(r.totalBatches, 0);
  return {
    status: r.status,
    statusLabel: label("wecom.sync.status", r.status),
    phaseLabel: label("wecom.sync.phase", r.phase),
    running,
    progress: total ? p.t("wecom.sync.batches", { n: r.phase === "contacts" ? r.batch : r.phase === "tags" ? 0 : total, of: total }) : undefined,
    counts: Object.entries(r.counts).map(([k, n]) => ({ label: label("wecom.sync.count", k), n })),
    error: r.error,
    started: p.fmt.dateTime(r.startedAt),
    finished: r.finishedAt ? p.fmt.dateTime(r.finishedAt) : undefined,
    canResume: r.status === "failed",
  };
}

