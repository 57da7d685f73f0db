import { sql } from "drizzle-orm";
import { rowsOf } from "../../db/client";
import { WecomError } from "../../wecom/api/errors";
import { audit, systemCtx, withTransaction, type ServiceDeps } from "../context";
import { loadWecomApp } from "../wecom/settings";
import { textHash } from "./content";
import { recordAccepted } from "./deliver";
import { endSends, idList } from "./quota";
import { resultsOf, taskOf } from "./results";
import { deliverySettings } from "./settings";
import { armBatches } from "./timers";

/**
 * Sends left `sending` without a msgid: the run committed `sending` and then died, or lost
 * WeCom's answer, so WeCom may or may not have created the task. Nothing re-sends them blindly.
 * After RECONCILE_AFTER_MS (well past the client's bound on an add_msg_template: made within
 * UNSAFE_DEADLINE_MS plus one request timeout or not at all, and never repeated after a network
 * failure) the sweep asks WeCom: get_groupmsg_list_v2 from a little
 * before the attempt, for an API-created message with the same text (rendered_hash) that no send
 * of ours holds yet, whose task belongs to the same sender and (1:1) lists our recipients. Found:
 * its msgid is adopted (the results are then read as usual; recipients it does not list were in
 * its fail_list: not_friend). Not found: WeCom never created it, so the sends go back to
 * `planned` and their batch is armed again. WeCom still dispatching (41063) or unreachable: the
 * next sweep asks again.
 */
export const RECONCILE_AFTER_MS = 5 * 60_000;

export interface ReconcileResult {
  adopted: number;
  replanned: number;
  waiting: number;
}

export async function reconcileInterrupted(deps: ServiceDeps, opts: { limit?: number } = {}): Promise<ReconcileResult> {
  const result: ReconcileResult = { adopted: 0, replanned: 0, waiting: 0 };
  const now = deps.now();
  const groups = rowsOf<{ tenant_id: string; post_id: string; sender_staff_id: string; rendered_hash: string | null; sent_at: string | Date; ids: string[]; chats: string[] | null; exts: string[] | null; content_hash: string; entry_id: string | null; userid: string | null; minutes: string[] }>(
    await deps.db.execute(sql`
      select s.tenant_id, s.post_id, s.sender_staff_id, s.rendered_hash, s.sent_at,
        json_agg(s.id) as ids, json_agg(s.chat_id) filter (where s.chat_id is not null) as chats, json_agg(c.external_user_id) filter (where c.external_user_id is not null) as exts,
        min(p.content_hash) as content_hash, min(s.entry_id::text) as entry_id, min(st.wecom_user_id) as userid,
        json_agg(distinct to_char(date_trunc('minute', s.scheduled_at) at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')) as minutes
      from sends s
      left join contacts c on c.id = s.contact_id
      join posts p on p.id = s.post_id
      join staff st on st.id = s.sender_staff_id
      where s.status = 'sending' and s.wecom_msgid is null and s.sent_at < ${new Date(now.getTime() - RECONCILE_AFTER_MS).toISOString()}::timestamptz
      group by s.tenant_id, s.post_id, s.sender_staff_id, s.rendered_hash, s.sent_at
      order by s.sent_at
      limit ${opts.limit ?? 100}`),
  );
  for (const g of groups) {
    const ctx = systemCtx(deps, g.tenant_id, "delivery-reconcile");
    const app = await loadWecomApp(deps, g.tenant_id);
    if (!app || !g.userid) {
      result.waiting++;
      continue;
    }
    const client = deps.wecomClient(app);
    const group = Boolean(g.chats?.length);
    const sentSec = Math.floor(new Date(g.sent_at).getTime() / 1000);
    const ours = new Set(group ? (g.chats ?? []) : (g.exts ?? []));
    let found: { msgid: string; listed: Set<string> } | null = null;
    try {
      let cursor = "";
      outer: for (let page = 0; page < 200; page++) {
        const list = await client.getGroupMsgListV2({ chat_type: group ? "group" : "single", start_time: sentSec - 300, end_time: Math.min(Math.floor(now.getTime() / 1000), sentSec + 29 * 86_400), filter_type: 0, limit: 100, ...(cursor ? { cursor } : {}) });
        for (const m of list.group_msg_list ?? []) {
          if (!m.text || textHash(m.text.content) !== g.rendered_hash) continue;
          const [held] = rowsOf<{ n: number }>(await deps.db.execute(sql`select count(*)::int as n from sends where tenant_id = ${g.tenant_id}::uuid and wecom_msgid = ${m.msgid}`));
          if (held?.n) continue;
          const tasks = await taskOf(client, m.msgid);
          if (!tasks.some((t) => t.userid.toLowerCase() === g.userid!.toLowerCase())) continue;
          const listed = new Set((await resultsOf(client, m.msgid, g.userid)).map((r) => r.external_userid ?? r.chat_id ?? ""));
          // 1:1 tasks list every recipient (status 0 until sent); group tasks list only chats already sent to.
          if (!group && ![...listed].some((x) => ours.has(x))) continue;
          found = { msgid: m.msgid, listed };
          break outer;
        }
        cursor = list.next_cursor ?? "";
        if (!cursor) break;
      }
    } catch (err) {
      if (err instanceof WecomError || (err as Error).name === "WecomNetworkError") {
        deps.logger.warn({ tenantId: g.tenant_id, err: (err as Error).message }, "could not check WeCom for an interrupted mass message; the next sweep asks again");
        result.waiting++;
        continue;
      }
      throw err;
    }
    const settings = await deliverySettings(deps.db, deps, g.tenant_id);
    if (found) {
      const { msgid, listed } = found;
      // Recipients the task does not list were in its fail_list (lost with the answer).
      const failList = group ? [] : [...ours].filter((x) => !listed.has(x));
      await recordAccepted(ctx, settings.timeZone, g.ids, { msgid, fail_list: failList }, { group, userid: g.userid, postId: g.post_id, contentHash: g.content_hash, entryId: g.entry_id });
      await withTransaction(ctx, (tx, ctx) => audit(tx, ctx, { action: "delivery.reconciled", entityType: "post", entityId: g.post_id, after: { msgid, sends: g.ids.length, found: true } }));
      result.adopted += g.ids.length;
      continue;
    }
    // WeCom has no such task: it was never created. Back to planned (or failed after too many tries), and armed again.
    const back = await withTransaction(ctx, async (tx, ctx) => {
      const ids = g.ids;
      const moved = rowsOf<{ id: string }>(
        await tx.execute(sql`
          update sends s set status = 'planned', queued_at = null, last_error = 'interrupted before WeCom created the task (none in get_groupmsg_list_v2): planned again'
          where s.id in (${idList(ids)}) and s.status = 'sending' and s.wecom_msgid is null returning s.id`),
      );
      await audit(tx, ctx, { action: "delivery.reconciled", entityType: "post", entityId: g.post_id, after: { sends: moved.length, found: false } });
      return moved.length;
    });
    result.replanned += back;
    await armBatches(
      deps,
      g.minutes.map((m) => ({ tenantId: g.tenant_id, postId: g.post_id, senderStaffId: g.sender_staff_id, minute: new Date(m) })),
      `r${Math.floor(now.getTime() / 60_000)}`,
    );
  }
  return result;
}

/** Give back reservations of sends others ended (an enrollment ended: cancelled with result_at null); see quota.ts. */
export async function healLedger(deps: ServiceDeps, opts: { since: Date; limit?: number }): Promise<number> {
  const rows = rowsOf<{ tenant_id: string; ids: string[] }>(
    await deps.db.execute(sql`
      select s.tenant_id, json_agg(s.id) as ids
      from calendar_enrollments en
      join sends s on s.tenant_id = en.tenant_id and s.contact_id = en.contact_id and s.enrollment_id = en.id
      where en.ended_at >= ${opts.since.toISOString()}::timestamptz and s.status in ('cancelled', 'skipped', 'failed', 'not_friend') and s.result_at is null
      group by s.tenant_id
      limit ${opts.limit ?? 100}`),
  );
  let n = 0;
  for (const r of rows) {
    const settings = await deliverySettings(deps.db, deps, r.tenant_id);
    const done = await endSends(deps.db, { tenantId: r.tenant_id, ledgerTz: settings.timeZone, now: deps.now(), from: ["cancelled", "skipped", "failed", "not_friend"], to: null, where: sql`s.result_at is null and s.id in (${idList(r.ids)})` });
    n += done.length;
  }
  return n;
}
