import { and, eq, sql } from "drizzle-orm";
import { rowsOf, type Db } from "../../db/client";
import { posts } from "../../db/schema/index";
import { MissingVariableError, type CalendarEntry } from "../../domain/calendars/index";
import { WecomError, WecomNetworkError } from "../../wecom/api/errors";
import type { MsgTemplate } from "../../wecom/api/types";
import { allowedRecipients } from "../consent/consent";
import { audit, systemCtx, withTransaction, type Ctx, type ServiceDeps } from "../context";
import { assertSendable, SendRefused } from "../posts/posts";
import { loadWecomApp } from "../wecom/settings";
import { finishCopy, sendsPerRecipient, textHash, TEXT_MAX_BYTES, utf8Bytes, type Recipient } from "./content";
import { endSends, idList } from "./quota";
import { deliverySettings } from "./settings";
import { loadEntrySpec } from "./spec";
import { pollJobId, type BatchKey } from "./timers";

/**
 * Delivery of one due batch: the sends of a post from one sender scheduled in one minute.
 *
 * 1. Claim (one transaction): planned sends of the batch (and ones a dead job left queued for
 *    CLAIM_STALE_MS) become `queued` with this run's token (queued_at), locked with SKIP LOCKED so
 *    two runs never claim the same send. Sends that must not go end here with the reason:
 *    cancelled (entry removed, calendar archived, enrollment ended), skipped (the contact removed
 *    the consultant, has no WeCom id, or opted out: consent's allowedRecipients, marketing only),
 *    failed (no WeCom app, no usable sender, too many attempts).
 * 2. Per WeCom message (one add_msg_template: up to 10,000 customers or 2,000 chats sharing one
 *    text; one per recipient when the copy is personal, see content.ts): a transaction calls the
 *    compliance gate (assertSendable: approved, unchanged, no new blocking term), renders and
 *    tracks the copy, and moves the message's sends from `queued` (with our token) to `sending`
 *    with the text's hash, then commits. Only then is WeCom called. A gate refusal ends every
 *    send of the run as failed, with the gate's reason.
 * 3. WeCom's answer is recorded: msgid on the sends (they stay `sending` until the results are
 *    read, results.ts), fail_list as not_friend; an errcode answer (nothing was created) fails the
 *    sends, or returns them to `planned` when it is worth retrying (rate limits).
 *
 * Never twice: a send reaches add_msg_template only from `queued` with this run's token, and only
 * after `sending` is committed; a run that dies (or loses its answer to the network) after that
 * leaves it `sending` without msgid, which nothing re-sends: the sweep's reconcile (reconcile.ts)
 * looks for the task in WeCom (get_groupmsg_list_v2: same text, same sender, same recipients) and
 * adopts its msgid, or, when WeCom has none, returns the sends to `planned`.
 */

/** A queued send whose run died is claimed again after this long. */
export const CLAIM_STALE_MS = 10 * 60_000;
/** Sends that reached WeCom's door this many times without a task end as failed. */
export const MAX_ATTEMPTS = 5;
/** Per-recipient messages of one batch in flight at once. */
const PARALLEL = 8;
const SINGLE_MAX = 10_000;
const GROUP_MAX = 2_000;

export interface BatchOutcome {
  outcome: "early" | "empty" | "done" | "refused" | "retry";
  claimed: number;
  /** add_msg_template calls WeCom accepted, and the recipients in them. */
  messages: number;
  recipients: number;
  ended: number;
  /** Sends left `sending` without a msgid (network failure): the reconcile decides. */
  unknown: number;
}

/** Points where tests stop a run as a crash would (after `sending` committed; after WeCom accepted). */
export interface DeliverHooks {
  beforeCall?: (sendIds: string[]) => Promise<void>;
  afterCall?: (sendIds: string[], msgid: string) => Promise<void>;
}

interface Claimed extends Recipient {
  entryId: string | null;
  service: boolean;
}

const iso = (d: Date) => sql`${d.toISOString()}::timestamptz`;

export async function deliverBatch(deps: ServiceDeps, key: BatchKey, hooks: DeliverHooks = {}): Promise<BatchOutcome> {
  const out: BatchOutcome = { outcome: "done", claimed: 0, messages: 0, recipients: 0, ended: 0, unknown: 0 };
  const now = deps.now();
  // A job a moment early (clocks of two machines) leaves it to the minute sweep.
  if (now.getTime() + 1000 < key.minute.getTime()) return { ...out, outcome: "early" };
  const ctx = systemCtx(deps, key.tenantId, "delivery");
  const settings = await deliverySettings(deps.db, deps, key.tenantId);
  const app = await loadWecomApp(deps, key.tenantId);
  const token = now;
  const end = (tx: Parameters<typeof endSends>[0], where: ReturnType<typeof sql>, to: "failed" | "skipped" | "cancelled", reason: string | ReturnType<typeof sql>) =>
    endSends(tx, { tenantId: key.tenantId, ledgerTz: settings.timeZone, now, from: ["queued"], to, where: sql`s.queued_at = ${iso(token)} and ${where}`, reason });

  // 1. Claim.
  const claim = await withTransaction(ctx, async (tx) => {
    const claimed = rowsOf<{ id: string }>(
      await tx.execute(sql`
        with c as (
          select s.id from sends s
          where s.tenant_id = ${key.tenantId}::uuid and s.post_id = ${key.postId}::uuid and s.sender_staff_id = ${key.senderStaffId}::uuid
            and s.scheduled_at >= ${iso(key.minute)} and s.scheduled_at < ${iso(new Date(key.minute.getTime() + 60_000))}
            and (s.status = 'planned' or (s.status = 'queued' and s.queued_at < ${iso(new Date(now.getTime() - CLAIM_STALE_MS))}))
          for update skip locked
        )
        update sends s set status = 'queued', queued_at = ${iso(token)} from c where s.id = c.id returning s.id`),
    );
    if (!claimed.length) return null;
    let ended = 0;
    if (!app) ended += (await end(tx, sql`true`, "failed", "WeCom is not set up for this clinic group (PUT /v1/wecom/settings)")).length;
    ended += (await end(tx, sql`s.attempts >= ${MAX_ATTEMPTS}`, "failed", sql`${`gave up after ${MAX_ATTEMPTS} attempts: `}::text || coalesce(s.last_error, 'no answer from WeCom')`)).length;
    ended += (await end(tx, sql`not exists (select 1 from staff st where st.id = s.sender_staff_id and st.active and st.wecom_user_id is not null)`, "failed", "the sender has no WeCom userid or has left")).length;
    ended += (await end(tx, sql`exists (select 1 from calendar_entries e where e.id = s.entry_id and e.removed_at is not null)`, "cancelled", "the entry was removed from the calendar")).length;
    ended += (await end(tx, sql`exists (select 1 from calendars c where c.id = s.calendar_id and c.status = 'archived')`, "cancelled", "the calendar was archived")).length;
    ended += (await end(tx, sql`exists (select 1 from calendar_enrollments en where en.id = s.enrollment_id and en.ended_at is not null)`, "cancelled", sql`'enrollment ended: ' || coalesce((select en.end_reason from calendar_enrollments en where en.id = s.enrollment_id), '')`)).length;
    ended += (await end(tx, sql`exists (select 1 from contacts c where c.id = s.contact_id and c.deleted_at is not null)`, "skipped", "the contact removed the consultant in WeCom (or was removed)")).length;
    ended += (await end(tx, sql`exists (select 1 from contacts c where c.id = s.contact_id and c.external_user_id is null)`, "skipped", "not a WeCom contact (no external userid)")).length;
    ended += (await end(tx, sql`exists (select 1 from wecom_group_chats g where g.tenant_id = s.tenant_id and g.chat_id = s.chat_id and g.dismissed_at is not null)`, "skipped", "the group chat was dismissed")).length;
    // Consent (个人信息保护法): marketing sends only to contacts who have not opted out since planning.
    const marketing = rowsOf<{ contact_id: string }>(await tx.execute(sql`select contact_id from sends s where s.status = 'queued' and s.queued_at = ${iso(token)} and s.id in (${idList(claimed.map((c) => c.id))}) and not s.service and s.contact_id is not null`));
    if (marketing.length) {
      const { refused } = await allowedRecipients(tx, ctx, marketing.map((m) => m.contact_id), { service: false });
      const byReason = new Map<string, string[]>();
      for (const r of refused) byReason.set(r.reason, [...(byReason.get(r.reason) ?? []), r.contactId]);
      for (const [reason, ids] of byReason) ended += (await end(tx, sql`s.contact_id in (${idList(ids)}) and not s.service`, "skipped", reason)).length;
    }
    const rows = rowsOf<{ id: string; contact_id: string | null; chat_id: string | null; entry_id: string | null; service: boolean; ext: string | null; name: string | null; nickname: string | null; clinic: string | null }>(
      await tx.execute(sql`
        select s.id, s.contact_id, s.chat_id, s.entry_id, s.service, c.external_user_id as ext, c.name, c.attributes->>'nickname' as nickname, cl.name as clinic
        from sends s
        left join contacts c on c.id = s.contact_id
        left join clinics cl on cl.id = c.clinic_id
        where s.tenant_id = ${key.tenantId}::uuid and s.status = 'queued' and s.queued_at = ${iso(token)} and s.id in (${idList(claimed.map((c) => c.id))})
        order by s.contact_id, s.chat_id`),
    );
    return { claimed: claimed.length, ended, rows };
  });
  if (!claim) return { ...out, outcome: "empty" };
  out.claimed = claim.claimed;
  out.ended = claim.ended;
  if (!claim.rows.length || !app) return out;

  const [post] = await deps.db.select().from(posts).where(and(eq(posts.tenantId, key.tenantId), eq(posts.id, key.postId)));
  const [sender] = rowsOf<{ userid: string; name: string }>(await deps.db.execute(sql`select wecom_user_id as userid, name from staff where id = ${key.senderStaffId}::uuid`));
  if (!post || !sender) return out;
  const entryId = claim.rows.find((r) => r.entry_id)?.entry_id ?? null;
  const def: CalendarEntry | null = entryId ? ((await loadEntrySpec(deps.db, key.tenantId, entryId))?.def ?? null) : null;
  const recipients: Claimed[] = claim.rows.map((r) => ({ sendId: r.id, contactId: r.contact_id, chatId: r.chat_id, externalUserId: r.ext, name: r.name, nickname: r.nickname, clinic: r.clinic, entryId: r.entry_id, service: r.service }));
  const group = recipients.some((r) => r.chatId);
  const personal = sendsPerRecipient(post, def, group);
  const messages: Claimed[][] = [];
  if (personal) for (const r of recipients) messages.push([r]);
  else for (let i = 0; i < recipients.length; i += group ? GROUP_MAX : SINGLE_MAX) messages.push(recipients.slice(i, i + (group ? GROUP_MAX : SINGLE_MAX)));

  const client = deps.wecomClient(app);
  let refused: string | null = null;
  let retry = false;

  const sendOne = async (batch: Claimed[]): Promise<void> => {
    if (refused) return;
    const ids = batch.map((r) => r.sendId);
    // 2. Gate, copy, and `sending` committed before WeCom hears of it.
    const prepared = await withTransaction(ctx, async (tx, ctx): Promise<{ ids: string[]; body: MsgTemplate } | { refused: string } | null> => {
      // The gate comes first, so on a refusal its audit row is this transaction's only write and is
      // committed. It is written through this transaction (PGlite has one connection: a write
      // through another would wait for this transaction, which waits for it).
      try {
        await assertSendable(tx, { ...ctx, deps: { ...ctx.deps, db: tx as unknown as Db } }, post.id, { title: post.title, body: post.body });
      } catch (err) {
        if (err instanceof SendRefused) return { refused: err.message };
        throw err;
      }
      let copy: Awaited<ReturnType<typeof finishCopy>>;
      try {
        copy = await finishCopy(tx, ctx, post, def, personal ? batch[0]! : null, sender.name);
      } catch (err) {
        if (!(err instanceof MissingVariableError)) throw err;
        await end(tx, sql`s.id in (${idList(ids)})`, "failed", `${err.message} (give the variable a fallback in the calendar)`);
        return null;
      }
      if (utf8Bytes(copy.text) > TEXT_MAX_BYTES) {
        await end(tx, sql`s.id in (${idList(ids)})`, "failed", `the copy is longer than WeCom's ${TEXT_MAX_BYTES} bytes once rendered`);
        return null;
      }
      const moving = rowsOf<{ id: string }>(
        await tx.execute(sql`
          update sends s set status = 'sending', attempts = s.attempts + 1, sent_at = ${iso(deps.now())}, rendered_hash = ${textHash(copy.text)}, last_error = null
          where s.id in (${idList(ids)}) and s.status = 'queued' and s.queued_at = ${iso(token)}
          returning s.id`),
      );
      if (!moving.length) return null;
      const mine = new Set(moving.map((m) => m.id));
      const to = batch.filter((r) => mine.has(r.sendId));
      const body: MsgTemplate = group
        ? { chat_type: "group", chat_id_list: to.map((r) => r.chatId!), sender: sender.userid, text: { content: copy.text }, ...(copy.attachments.length ? { attachments: copy.attachments } : {}) }
        : { chat_type: "single", external_userid: to.map((r) => r.externalUserId!), sender: sender.userid, text: { content: copy.text }, ...(copy.attachments.length ? { attachments: copy.attachments } : {}) };
      return { ids: to.map((r) => r.sendId), body };
    });
    if (prepared && "refused" in prepared) {
      refused = prepared.refused;
      return;
    }
    if (!prepared) return;
    await hooks.beforeCall?.(prepared.ids);
    let answer: { msgid: string; fail_list?: string[] };
    try {
      answer = await client.addMsgTemplate(prepared.body);
    } catch (err) {
      // 3. An errcode is WeCom's answer: no task was created.
      if (err instanceof WecomError) {
        const detail = `WeCom refused: errcode ${err.errcode} ${err.errmsg.split(",")[0] ?? ""}`.trim();
        await withTransaction(ctx, async (tx) => {
          if (err.retryable) {
            retry = true;
            await tx.execute(sql`update sends s set status = 'planned', queued_at = null, last_error = ${detail} where s.id in (${idList(prepared!.ids)}) and s.status = 'sending' and s.wecom_msgid is null`);
          } else if (err.errcode === 41048) await endSends(tx, { tenantId: key.tenantId, ledgerTz: settings.timeZone, now, from: ["sending"], to: "not_friend", where: sql`s.id in (${idList(prepared!.ids)}) and s.wecom_msgid is null`, reason: "WeCom found no valid recipient: not the sender's customer (41048)" });
          else await endSends(tx, { tenantId: key.tenantId, ledgerTz: settings.timeZone, now, from: ["sending"], to: "failed", where: sql`s.id in (${idList(prepared!.ids)}) and s.wecom_msgid is null`, reason: detail, set: sql`last_error = ${detail}` });
        });
        return;
      }
      // No answer: WeCom may have created the task. The sends stay `sending`; the reconcile decides.
      const detail = err instanceof WecomNetworkError ? err.message : (err as Error).message;
      await deps.db.execute(sql`update sends s set last_error = ${`no answer from WeCom: ${detail}`.slice(0, 500)} where s.id in (${idList(prepared.ids)}) and s.status = 'sending' and s.wecom_msgid is null`);
      out.unknown += prepared.ids.length;
      return;
    }
    await hooks.afterCall?.(prepared.ids, answer.msgid);
    await recordAccepted(ctx, settings.timeZone, prepared.ids, answer, { group, userid: sender.userid, postId: post.id, contentHash: post.contentHash, entryId });
    out.messages++;
    out.recipients += prepared.ids.length - (answer.fail_list?.length ?? 0);
  };

  let next = 0;
  await Promise.all(
    Array.from({ length: personal ? Math.min(PARALLEL, messages.length) : 1 }, async () => {
      while (next < messages.length && !refused) await sendOne(messages[next++]!);
    }),
  );
  if (refused) {
    // Nothing more of this post goes out in this run: the remaining sends fail with the gate's reason.
    const left = await withTransaction(ctx, (tx) => end(tx, sql`true`, "failed", `the compliance gate refused the post: ${refused}`));
    out.ended += left.length;
    return { ...out, outcome: "refused" };
  }
  if (retry) return { ...out, outcome: "retry" };
  return out;
}

/** WeCom accepted a message: its msgid on the sends, fail_list recipients not_friend, audited; the first result poll armed. */
export async function recordAccepted(ctx: Ctx, ledgerTz: string, ids: string[], answer: { msgid: string; fail_list?: string[] }, o: { group: boolean; userid: string; postId: string; contentHash: string; entryId: string | null }): Promise<void> {
  const deps = ctx.deps;
  await withTransaction(ctx, async (tx, ctx) => {
    await tx.execute(sql`update sends s set wecom_msgid = ${answer.msgid} where s.id in (${idList(ids)}) and s.status = 'sending' and s.wecom_msgid is null`);
    const failed = answer.fail_list ?? [];
    if (failed.length) {
      const who = o.group ? sql`s.chat_id in (${sql.join(failed.map((f) => sql`${f}::text`), sql`, `)})` : sql`s.contact_id in (select c.id from contacts c where c.tenant_id = ${ctx.tenantId}::uuid and c.external_user_id in (${sql.join(failed.map((f) => sql`${f}::text`), sql`, `)}))`;
      await endSends(tx, { tenantId: ctx.tenantId, ledgerTz, now: deps.now(), from: ["sending"], to: "not_friend", where: sql`s.wecom_msgid = ${answer.msgid} and ${who}`, reason: "WeCom could not reach this recipient through the sender (fail_list: not the sender's customer or chat)" });
    }
    await audit(tx, ctx, { action: "post.send", entityType: "post", entityId: o.postId, after: { kind: "calendar", entryId: o.entryId, msgid: answer.msgid, sender: o.userid, chatType: o.group ? "group" : "single", recipients: ids.length - failed.length, failList: failed.length, contentHash: o.contentHash } });
  });
  await deps.producer.enqueue("delivery-poll", { tenantId: ctx.tenantId, msgid: answer.msgid }, { jobId: pollJobId(answer.msgid, "first"), delayMs: 60_000 }).catch((err: Error) => deps.logger.warn({ err: err.message }, "could not arm the first result poll; the sweep will"));
}
