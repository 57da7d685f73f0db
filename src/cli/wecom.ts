import { readFileSync } from "node:fs";
import path from "node:path";
import type { Config } from "../config/env";

interface SandboxInfo {
  fakeUrl: string;
  siyuUrl: string;
  tenant: string;
}

function sandboxInfo(config: Readonly<Config>): SandboxInfo {
  try {
    return JSON.parse(readFileSync(path.join(config.DATA_DIR, "sandbox.json"), "utf8")) as SandboxInfo;
  } catch {
    throw new Error(`no running sandbox found (${path.join(config.DATA_DIR, "sandbox.json")}): start Siyu with \`npm start\` (WECOM_MODE=sandbox, the default) first`);
  }
}

async function control(info: SandboxInfo, action: string, args: Record<string, unknown>): Promise<Record<string, unknown>> {
  const res = await fetch(`${info.fakeUrl}/__control/${action}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(args) }).catch((err: Error) => {
    throw new Error(`the sandbox WeCom at ${info.fakeUrl} does not answer (${err.message}); is Siyu still running?`);
  });
  const body = (await res.json()) as { ok: boolean; result?: Record<string, unknown>; error?: string };
  if (!body.ok) throw new Error(body.error ?? `${action} failed`);
  return body.result ?? {};
}

function delivered(result: Record<string, unknown>): string {
  const d = result.delivery as { delivered?: boolean; attempts?: number; statuses?: unknown[] } | undefined;
  if (!d) return "";
  return d.delivered ? ` (callback delivered to Siyu in ${d.attempts} attempt${d.attempts === 1 ? "" : "s"})` : ` (callback NOT delivered: ${JSON.stringify(d.statuses)})`;
}

/** `siyu wecom simulate …`: what patients do in WeCom, played against the sandbox. */
export async function simulate(config: Readonly<Config>, what: string, o: Record<string, string | undefined>): Promise<string> {
  const info = sandboxInfo(config);
  switch (what) {
    case "add-contact": {
      if (!o.staff) throw new Error("--staff <wecom userid> is required (e.g. zhangmin)");
      const r = await control(info, "customerAddsStaff", { userid: o.staff, ...(o.name ? { name: o.name } : {}), ...(o.state ? { state: o.state } : {}), ...(o.external ? { externalUserId: o.external } : {}) });
      return `A patient (${String(r.externalUserId)}) added ${o.staff}${o.state ? ` through channel code ${o.state}` : ""}${delivered(r)}.`;
    }
    case "delete-staff": {
      if (!o.staff || !o.external) throw new Error("--staff and --external are required");
      const r = await control(info, "customerDeletesStaff", { userid: o.staff, externalUserId: o.external });
      return `Patient ${o.external} deleted ${o.staff}${delivered(r)}.`;
    }
    case "join-group":
    case "leave-group": {
      if (!o.external) throw new Error("--external <external_userid> is required");
      let chatId = o.chat;
      if (!chatId) {
        if (!o.staff) throw new Error("give --chat <chat id>, or --staff to create a new group owned by that staff member");
        const g = await control(info, "createGroupChat", { owner: o.staff, name: o.name ?? "祛痘交流群" });
        chatId = String((g.chatId as string | undefined) ?? (g as { chat?: { chatId?: string } }).chat?.chatId ?? g.chat_id);
      }
      const r = await control(info, what === "join-group" ? "customerJoinsGroup" : "customerLeavesGroup", { chatId, externalUserId: o.external, ...(what === "join-group" ? { how: "qr" } : {}) });
      return `Patient ${o.external} ${what === "join-group" ? "joined" : "left"} group ${chatId}${delivered(r)}.`;
    }
    case "message": {
      // Chat content reaches Siyu through chat archiving / the API, not through contact callbacks.
      if (!o.external || !o.text) throw new Error("--external and --text are required");
      const token = config.SIYU_TOKEN ?? config.ADMIN_TOKEN;
      if (!token) throw new Error("set ADMIN_TOKEN (or SIYU_TOKEN) to record the message");
      const res = await fetch(`${info.siyuUrl}/v1/events`, {
        method: "POST",
        headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
        body: JSON.stringify({ events: [{ type: "message_received", externalUserId: o.external, occurredAt: new Date().toISOString(), idempotencyKey: `sim-msg-${Date.now()}`, data: { text: o.text } }] }),
      });
      if (res.status !== 202) throw new Error(`Siyu answered ${res.status}: ${await res.text()}`);
      return `Patient ${o.external} sent: ${o.text}`;
    }
    default:
      throw new Error(`unknown simulation ${what}: add-contact, delete-staff, join-group, leave-group, message`);
  }
}

/** `siyu wecom sync`: start or resume a sync through the API and follow it with a progress bar. */
export async function syncCommand(config: Readonly<Config>, o: { url?: string; token?: string; restart?: boolean; wait?: boolean }): Promise<number> {
  const { SingleBar, Presets } = await import("cli-progress");
  const url = (o.url ?? config.publicUrl).replace(/\/$/, "");
  const token = o.token ?? config.SIYU_TOKEN ?? config.ADMIN_TOKEN;
  if (!token) {
    process.stderr.write("No API token: pass --token, or set SIYU_TOKEN (or ADMIN_TOKEN).\n");
    return 2;
  }
  const headers = { authorization: `Bearer ${token}`, "content-type": "application/json" };
  const started = await fetch(`${url}/v1/wecom/sync`, { method: "POST", headers, body: JSON.stringify({ restart: Boolean(o.restart) }) }).catch((err: Error) => err);
  if (started instanceof Error || started.status !== 202) {
    process.stderr.write(`could not start the sync: ${started instanceof Error ? `${started.message} (is Siyu running at ${url}?)` : `${started.status} ${await started.text()}`}\n`);
    return 1;
  }
  let run = (await started.json()) as { id: string; status: string; phase: string; batch: number; totalBatches: number; counts: Record<string, number>; error: string | null };
  if (o.wait === false) {
    process.stdout.write(`sync ${run.id} ${run.status}\n`);
    return 0;
  }
  const bar = new SingleBar({ format: "wecom sync {bar} {phase} | staff batch {value}/{total} | {contacts} customers, {groups} groups, {pushed} tags pushed", stream: process.stderr }, Presets.shades_classic);
  bar.start(Math.max(1, run.totalBatches), 0, { phase: run.phase, contacts: 0, groups: 0, pushed: 0 });
  for (;;) {
    await new Promise((r) => setTimeout(r, 500));
    const res = await fetch(`${url}/v1/wecom/sync`, { headers });
    if (!res.ok) {
      bar.stop();
      process.stderr.write(`lost track of the sync: ${res.status} ${await res.text()}\n`);
      return 1;
    }
    run = (await res.json()) as typeof run;
    bar.setTotal(Math.max(1, run.totalBatches));
    bar.update(run.phase === "groups" || run.phase === "done" ? run.totalBatches : run.batch, { phase: run.phase, contacts: run.counts.relations ?? 0, groups: run.counts.groupChats ?? 0, pushed: run.counts.tagsPushed ?? 0 });
    if (run.status === "done" || run.status === "failed") break;
  }
  bar.stop();
  const c = run.counts;
  if (run.status === "failed") {
    process.stderr.write(`sync failed: ${run.error}\nRun \`siyu wecom sync\` again to resume from where it stopped.\n`);
    return 1;
  }
  process.stdout.write(`sync done: ${c.relations ?? 0} customer relations (${c.contactsCreated ?? 0} new, ${c.contactsUpdated ?? 0} updated), ${c.groupChats ?? 0} groups, tags ${c.tagsCreatedInWecom ?? 0} created in WeCom / ${c.tagsImported ?? 0} imported / ${c.tagsPushed ?? 0} pushed / ${c.tagsPulled ?? 0} pulled\n`);
  return 0;
}
