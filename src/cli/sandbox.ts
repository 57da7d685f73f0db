import { writeFileSync, mkdirSync } from "node:fs";
import path from "node:path";
import { and, eq, isNotNull } from "drizzle-orm";
import type { Config } from "../config/env";
import { contacts, staff } from "../db/schema/index";
import type { Logger } from "../logger";
import type { ServiceDeps } from "../services/context";
import { systemCtx } from "../services/context";
import { attachSandbox } from "../services/sandbox/link";
import { loadWecomApp, putWecomSettings } from "../services/wecom/settings";
import { FAKE_DEFAULTS, startFakeWecom, type RunningFakeWecom } from "../wecom/fake/index";

export interface WecomAppCredentials {
  corpId: string;
  agentId: number;
  secret: string;
  callbackToken: string;
  encodingAesKey: string;
}

/** The first tenant's app from WECOM_* when all are set; in sandbox mode the fake's defaults otherwise. */
export function envWecomApp(config: Readonly<Config>): WecomAppCredentials | null {
  const { WECOM_CORP_ID, WECOM_AGENT_ID, WECOM_SECRET, WECOM_CALLBACK_TOKEN, WECOM_AES_KEY } = config;
  if (WECOM_CORP_ID && WECOM_AGENT_ID && WECOM_SECRET && WECOM_CALLBACK_TOKEN && WECOM_AES_KEY) {
    return { corpId: WECOM_CORP_ID, agentId: Number(WECOM_AGENT_ID), secret: WECOM_SECRET, callbackToken: WECOM_CALLBACK_TOKEN, encodingAesKey: WECOM_AES_KEY };
  }
  if (config.WECOM_MODE !== "sandbox") return null;
  return { corpId: FAKE_DEFAULTS.corpId, agentId: FAKE_DEFAULTS.agentId, secret: FAKE_DEFAULTS.secrets[0], callbackToken: FAKE_DEFAULTS.callbackToken, encodingAesKey: FAKE_DEFAULTS.encodingAesKey };
}

/** Sandbox mode: the fake WeCom runs in this process on a free loopback port, with the first tenant's credentials. */
export async function startSandboxWecom(config: Readonly<Config>, logger: Logger): Promise<RunningFakeWecom> {
  const app = envWecomApp(config)!;
  const fake = await startFakeWecom({ corpId: app.corpId, agentId: app.agentId, secrets: [app.secret], callbackToken: app.callbackToken, encodingAesKey: app.encodingAesKey, port: 0 });
  logger.info({ url: fake.url }, "sandbox: fake WeCom started (WECOM_MODE=sandbox)");
  return fake;
}

/** Give the first tenant its WeCom settings from the environment (or the sandbox), unless an admin already set them. */
export async function applyEnvWecomSettings(deps: ServiceDeps, tenantId: string): Promise<void> {
  const app = envWecomApp(deps.config);
  if (!app) return;
  const current = await loadWecomApp(deps, tenantId);
  const fromEnv = Boolean(deps.config.WECOM_CORP_ID);
  if (current && !fromEnv) return;
  if (current && current.corpId === app.corpId && current.agentId === app.agentId && current.secret === app.secret && current.callbackToken === app.callbackToken && current.encodingAesKey === app.encodingAesKey) return;
  await putWecomSettings({ ctx: systemCtx(deps, tenantId, "start"), input: app });
}

/**
 * Point the fake's callbacks at our endpoint, and mirror the tenant's staff and WeCom contacts into
 * it so that details, sync and the simulations work on the demo data. The console's sandbox page
 * finds the fake through `deps` from then on.
 */
export async function connectSandbox(deps: ServiceDeps, fake: RunningFakeWecom, opts: { tenantId: string; slug: string; callbackBase: string }): Promise<void> {
  fake.control.setCallbackUrl(`${opts.callbackBase}/wecom/callback/${opts.slug}`);
  attachSandbox(deps, { url: fake.url, tenantId: opts.tenantId });
  const people = await deps.db.select({ id: staff.id, userid: staff.wecomUserId, name: staff.name }).from(staff).where(and(eq(staff.tenantId, opts.tenantId), isNotNull(staff.wecomUserId)));
  for (const p of people) if (!fake.state.findStaff(p.userid!)) fake.control.createStaff({ userid: p.userid!, name: p.name });
  const byId = new Map(people.map((p) => [p.id, p.userid!]));
  const rows = await deps.db
    .select({ ext: contacts.externalUserId, name: contacts.name, owner: contacts.ownerStaffId })
    .from(contacts)
    .where(and(eq(contacts.tenantId, opts.tenantId), isNotNull(contacts.externalUserId)));
  for (const r of rows) {
    if (fake.state.contacts.get(r.ext!)) continue;
    const owner = r.owner ? byId.get(r.owner) : undefined;
    fake.control.createContact({ externalUserId: r.ext!, ...(r.name ? { name: r.name } : {}), ...(owner ? { followedBy: owner } : {}) });
  }
}

/** Where `siyu wecom simulate` finds the running sandbox. */
export function writeSandboxInfo(dataDir: string, info: { fakeUrl: string; siyuUrl: string; tenant: string }): void {
  if (dataDir === "memory://") return;
  mkdirSync(dataDir, { recursive: true });
  writeFileSync(path.join(dataDir, "sandbox.json"), JSON.stringify(info, null, 2) + "\n");
}
