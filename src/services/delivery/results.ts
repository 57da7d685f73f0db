import { sql } from "drizzle-orm";
import { rowsOf } from "../../db/client";
import { WecomError } from "../../wecom/api/errors";
import type { WecomClient } from "../../wecom/api/client";
import type { GroupMsgSendResult } from "../../wecom/api/types";
import { audit, systemCtx, withTransaction, type ServiceDeps } from "../context";
import { notifyStaff } from "../notifications/notify";
import { loadWecomApp } from "../wecom/settings";
import { endSends, idList } from "./quota";
import { deliverySettings } from "./settings";
import { pollJobId } from "./timers";

/**
 * Results of a mass message, read from WeCom until final (doc §3.7). Creating the task sent
 * nothing: the sender confirms it in the WeCom client. get_groupmsg_task says whether they did
 * (status 2 with send_time); then get_groupmsg_send_result gives each recipient's status:
 * 1 sent, 2 not friends (not_friend), 3 over WeCom's per-customer cap (over_quota), 0 not sent.
 * Each send moves from `sending` once, with a guarded update. A sender who has not confirmed after
 * remindAfterMinutes gets one WeCom app message (notifyStaff, once per post and sender) and
 * WeCom's own reminder; after confirmHours the task is cancelled in WeCom and its sends fail.
 * Recipients still at 0 an hour after the sender confirmed were left out by them (allow_select,
 * or a group WeCom did not send to): failed.
 */

export const LEFT_OUT_AFTER_MS = 3_600_000;

export interface PollOutcome {
  outcome: "final" | "pending" | "dispatching" | "no_wecom";
  sent: number;
  notFriend: number;
  overQuota: number;
  failed: number;
  /** Sends still waiting (for the sender's confirmation, or for WeCom). */
  pending: number;
  confirmed: boolean;
  reminded: boolean;
}

async function allPages<T>(fetchPage: (cursor: string) => Promise<{ items: T[]; next: string }>): Promise<T[]> {
  const out: T[] = [];
  let cursor = "";
  for (let i = 0; i < 1000; i++) {
    const p = await fetchPage(cursor);
    out.push(...p.items);
    if (!p.next) break;
    cursor = p.next;
  }
  return out;
}

export function taskOf(client: WecomClient, msgid: string) {
  return allPages(async (cursor) => {
    const r = await client.getGroupMsgTask({ msgid, limit: 1000, ...(cursor ? { cursor } : {}) });
    return { items: r.task_list ?? [], next: r.next_cursor ?? "" };
  });
}

export function resultsOf(client: WecomClient, msgid: string, userid: string): Promise<GroupMsgSendResult[]> {
  return allPages(async (cursor) => {
    const r = await client.getGroupMsgSendResult({ msgid, userid, limit: 1000, ...(cursor ? { cursor } : {}) });
    return { items: r.send_list ?? [], next: r.next_cursor ?? "" };
  });
}

/** When to read a pending message again: every minute at first, then every 5, then every 15 minutes. */
export function nextPollDelayMs(ageMs: number): number {
  return ageMs < 10 * 60_000 ? 60_000 : ageMs < 2 * 3_600_000 ? 5 * 60_000 : 15 * 60_000;
}

export async function pollMessage(deps: ServiceDeps, p: { tenantId: string; msgid: string }): Promise<PollOutcome> {
  const out: PollOutcome = { outcome: "final", sent: 0, notFriend: 0, overQuota: 0, failed: 0, pending: 0, confirmed: false, reminded: false };
  const rows = rowsOf<{ id: string; contact_id: string | null; chat_id: string | null; ext: string | null; sender_staff_id: string; post_id: string; sent_at: string | Date; userid: string | null; sender_name: string; title: string | null; entry_key: string | null; calendar_name: string | null }>(
    await deps.db.execute(sql`
      select s.id, s.contact_id, s.chat_id, c.external_user_id as ext, s.sender_staff_id, s.post_id, s.sent_at, st.wecom_user_id as userid, st.name as sender_name, p.title, e.key as entry_key, cal.name as calendar_name
      from sends s
      left join contacts c on c.id = s.contact_id
      join staff st on st.id = s.sender_staff_id
      join posts p on p.id = s.post_id
      left join calendar_entries e on e.id = s.entry_id
      left join calendars cal on cal.id = s.calendar_id
      where s.tenant_id = ${p.tenantId}::uuid and s.wecom_msgid = ${p.msgid} and s.status = 'sending'`),
  );
  if (!rows.length) return out;
  const first = rows[0]!;
  const app = await loadWecomApp(deps, p.tenantId);
  if (!app || !first.userid) return { ...out, outcome: "no_wecom", pending: rows.length };
  const settings = await deliverySettings(deps.db, deps, p.tenantId);
  const client = deps.wecomClient(app);
  const now = deps.now();
  const ctx = systemCtx(deps, p.tenantId, "delivery-results");
  const userid = first.userid;
  const end = (tx: Parameters<typeof endSends>[0], ids: string[], to: "sent" | "not_friend" | "over_quota" | "failed", reason: string | null, set?: ReturnType<typeof sql>) =>
    ids.length ? endSends(tx, { tenantId: p.tenantId, ledgerTz: settings.timeZone, now, from: ["sending"], to, where: sql`s.wecom_msgid = ${p.msgid} and s.id in (${idList(ids)})`, reason, ...(set ? { set } : {}) }) : Promise.resolve([]);

  let tasks: Awaited<ReturnType<typeof taskOf>>;
  try {
    tasks = await taskOf(client, p.msgid);
  } catch (err) {
    if (err instanceof WecomError && err.errcode === 41063) return { ...out, outcome: "dispatching", pending: rows.length };
    if (err instanceof WecomError && (err.errcode === 41047 || err.errcode === 41046)) {
      await withTransaction(ctx, (tx) => end(tx, rows.map((r) => r.id), "failed", `WeCom does not know mass message ${p.msgid} (${err.errcode})`));
      return { ...out, failed: rows.length };
    }
    throw err;
  }
  const task = tasks.find((t) => t.userid.toLowerCase() === userid.toLowerCase());
  if (task?.status === 2) {
    out.confirmed = true;
    const results = await resultsOf(client, p.msgid, userid);
    const byRecipient = new Map(results.map((r) => [r.external_userid ?? r.chat_id ?? "", r]));
    const groups = new Map<string, string[]>();
    const add = (k: string, id: string) => groups.set(k, [...(groups.get(k) ?? []), id]);
    const confirmedAt = (task.send_time ?? Math.floor(now.getTime() / 1000)) * 1000;
    for (const r of rows) {
      const res = byRecipient.get((r.ext ?? r.chat_id) || "");
      if (res?.status === 1) add(`sent:${res.send_time ?? task.send_time ?? ""}`, r.id);
      else if (res?.status === 2) add("not_friend", r.id);
      else if (res?.status === 3) add("over_quota", r.id);
      else if (now.getTime() - confirmedAt > LEFT_OUT_AFTER_MS) add("left_out", r.id);
      else out.pending++;
    }
    await withTransaction(ctx, async (tx) => {
      for (const [k, ids] of groups) {
        if (k.startsWith("sent:")) {
          const at = Number(k.slice(5));
          out.sent += (await end(tx, ids, "sent", null, at ? sql`sent_at = to_timestamp(${at}::bigint)` : undefined)).length;
        } else if (k === "not_friend") out.notFriend += (await end(tx, ids, "not_friend", `WeCom: not sent, ${first.sender_name} and the recipient are not friends (status 2)`)).length;
        else if (k === "over_quota") out.overQuota += (await end(tx, ids, "over_quota", "WeCom: not sent, the recipient already received a mass message in WeCom's period (status 3, the per-customer cap)")).length;
        else out.failed += (await end(tx, ids, "failed", `not sent: ${first.sender_name} confirmed the message without this recipient`)).length;
      }
      // The copy reached a patient: its post is sent (it stays sendable for the rest of its recipients and occurrences).
      if (out.sent) {
        await tx.execute(sql`update posts set status = 'sent', updated_at = ${now.toISOString()}::timestamptz
          where tenant_id = ${p.tenantId}::uuid and status in ('approved', 'scheduled')
            and id in (select s.post_id from sends s where s.tenant_id = ${p.tenantId}::uuid and s.wecom_msgid = ${p.msgid} and s.status = 'sent')`);
      }
    });
  } else {
    // Not confirmed yet.
    const sentAt = Math.min(...rows.map((r) => new Date(r.sent_at).getTime()));
    const age = now.getTime() - sentAt;
    if (age > settings.confirmHours * 3_600_000) {
      await client.cancelGroupMsgSend(p.msgid).catch((err: Error) => deps.logger.warn({ msgid: p.msgid, err: err.message }, "could not cancel an unconfirmed mass message"));
      await withTransaction(ctx, async (tx, ctx) => {
        out.failed += (await end(tx, rows.map((r) => r.id), "failed", `${first.sender_name} did not confirm the message in WeCom within ${settings.confirmHours} hours: cancelled`)).length;
        await audit(tx, ctx, { action: "delivery.expired", entityType: "post", entityId: first.post_id, after: { msgid: p.msgid, sender: userid, sends: rows.length } });
      });
      return out;
    }
    out.pending = rows.length;
    if (age > settings.remindAfterMinutes * 60_000) {
      const what = first.entry_key ? `${first.calendar_name ?? "日历"} · ${first.entry_key}` : (first.title ?? "群发消息");
      const ids = await withTransaction(ctx, (tx, ctx) =>
        notifyStaff(tx, ctx, [
          {
            staffId: first.sender_staff_id,
            kind: "mass_message_confirm",
            contactId: null,
            title: "群发待确认",
            body: `「${what}」已在企业微信「群发助手」中等待你确认发送（${rows.length} 位${first.chat_id ? "客户群" : "客户"}）。请打开企业微信确认。`,
            dedupeKey: `dlv-confirm-${first.post_id}-${first.sender_staff_id}`,
          },
        ]),
      );
      if (ids.length) {
        out.reminded = true;
        // WeCom's own push to the sender, once with our app message.
        await client.remindGroupMsgSend(p.msgid).catch((err: Error) => deps.logger.warn({ msgid: p.msgid, err: err.message }, "WeCom's mass-message reminder failed"));
      }
    }
  }
  if (out.pending) out.outcome = "pending";
  return out;
}

/** Poll a message and, while it is pending, arm its next poll (deterministic ids per due time). */
export async function pollAndRearm(deps: ServiceDeps, p: { tenantId: string; msgid: string }): Promise<PollOutcome> {
  const r = await pollMessage(deps, p);
  if (r.outcome === "pending" || r.outcome === "dispatching") {
    const [row] = rowsOf<{ sent_at: string | Date | null }>(await deps.db.execute(sql`select min(sent_at) as sent_at from sends where tenant_id = ${p.tenantId}::uuid and wecom_msgid = ${p.msgid}`));
    const age = row?.sent_at ? deps.now().getTime() - new Date(row.sent_at).getTime() : 0;
    const delay = nextPollDelayMs(age);
    const due = Math.floor((deps.now().getTime() + delay) / 60_000);
    await deps.producer.enqueue("delivery-poll", p, { jobId: pollJobId(p.msgid, `m${due}`), delayMs: delay });
  }
  return r;
}

/**
 * Re-arm the polls of every message still waiting for results (its job lost with Redis, or
 * failed): one job per message and time bucket. Reads the sends `sending` with a msgid (a scan:
 * the minute sweep does it every ten minutes and at start).
 */
export async function rearmPolls(deps: ServiceDeps, limit = 5000): Promise<number> {
  const rows = rowsOf<{ tenant_id: string; msgid: string; sent_at: string | Date }>(
    await deps.db.execute(sql`select tenant_id, wecom_msgid as msgid, min(sent_at) as sent_at from sends where status = 'sending' and wecom_msgid is not null group by 1, 2 order by 3 limit ${limit}`),
  );
  const now = deps.now().getTime();
  const bucket = Math.floor(now / (10 * 60_000));
  await deps.producer.enqueueMany(
    "delivery-poll",
    rows.map((r) => ({ payload: { tenantId: r.tenant_id, msgid: r.msgid }, jobId: pollJobId(r.msgid, `s${bucket}`) })),
  );
  return rows.length;
}
