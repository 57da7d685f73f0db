import { periodKey } from "../clock";
import { controlFail, fail } from "../errors";
import { ids } from "../ids";
import { page } from "../paging";
import { lower, type FakeFollow, type FakeMassMessage, type FakeSendResult, type FakeWecomState } from "../state";
import type { Content } from "./content";
import { liveTagIds } from "./contacts";

// 企业群发 (doc §3.6, §3.7, §4.3). Creating a task sends nothing: each staff member "confirms" in
// the client (control.staffConfirmsMassMessage), which turns its pending results into sent (1),
// not friends (2) or over the per-recipient cap (3).

export interface AddMsgTemplateInput extends Content {
  chatType: "single" | "group";
  externalUserIds?: string[];
  chatIds?: string[];
  /** OR within an inner list, AND across the lists. */
  tagFilter?: string[][];
  sender?: string;
  allowSelect?: boolean;
}

function eligibleStaff(state: FakeWecomState, userid: string): boolean {
  const s = state.findStaff(userid);
  return s !== undefined && s.visible && s.active && !s.resigned;
}

function matchesTags(state: FakeWecomState, f: FakeFollow, filter: string[][] | undefined): boolean {
  if (!filter || filter.length === 0) return true;
  const tags = new Set(liveTagIds(state, f));
  return filter.every((anyOf) => anyOf.length === 0 || anyOf.some((t) => tags.has(t)));
}

export function addMsgTemplate(state: FakeWecomState, input: AddMsgTemplateInput): { msgid: string; failList: string[] } {
  const sender = input.sender === undefined || input.sender === "" ? undefined : state.requireStaff(input.sender);
  if (input.tagFilter?.some((g) => g.length > 100)) return fail(40058, "at most 100 tags per tag_filter group");
  const failList: string[] = [];
  const results: FakeSendResult[] = [];

  if (input.chatType === "single") {
    if ((input.externalUserIds?.length ?? 0) > 10_000) return fail(40058, "external_userid has more than 10000 entries");
    const candidates = input.externalUserIds && input.externalUserIds.length > 0 ? [...new Set(input.externalUserIds)] : [...state.contacts.keys()];
    for (const ext of candidates) {
      const follows = state
        .followsOfContact(ext)
        .filter((f) => eligibleStaff(state, f.userid) && (!sender || lower(f.userid) === lower(sender.userid)) && matchesTags(state, f, input.tagFilter));
      // WeCom pushes each customer to one staff member (the one who last chatted with them); the
      // fake approximates that with the most recent relation.
      const chosen = follows.sort((a, b) => b.createtime - a.createtime)[0];
      if (chosen) results.push({ userid: chosen.userid, externalUserId: ext, status: 0 });
      else if (input.externalUserIds && input.externalUserIds.length > 0) failList.push(ext);
    }
  } else {
    if (!sender) return fail(41009, "sender is required for group messages");
    if ((input.chatIds?.length ?? 0) > 2000) return fail(40058, "chat_id_list has more than 2000 entries");
    const owned = [...state.groupChats.values()].filter((c) => !c.dismissed && lower(c.owner) === lower(sender.userid));
    const wanted = input.chatIds && input.chatIds.length > 0 ? [...new Set(input.chatIds)] : undefined;
    for (const chat of owned) if (!wanted || wanted.includes(chat.chatId)) results.push({ userid: chat.owner, chatId: chat.chatId, status: 0 });
    for (const id of wanted ?? []) if (!owned.some((c) => c.chatId === id)) failList.push(id);
  }
  if (results.length === 0) return fail(41048);

  const taskUsers = [...new Set(results.map((r) => r.userid))];
  const msg: FakeMassMessage = {
    msgid: ids.massMsgId(),
    chatType: input.chatType,
    createType: 0,
    createTime: state.nowSec(),
    createdAtMs: state.nowMs(),
    attachments: input.attachments,
    allowSelect: input.chatType === "single" && (input.allowSelect ?? false),
    cancelled: false,
    remindCount: 0,
    tasks: taskUsers.map((userid) => ({ userid, status: 0 })),
    results,
  };
  if (input.text) msg.text = input.text;
  state.massMessages.set(msg.msgid, msg);
  return { msgid: msg.msgid, failList };
}

/** A mass message the report APIs may read: 41046 missing, 41047 unknown, 41063 still dispatching. */
export function readableMassMessage(state: FakeWecomState, msgid: string | undefined): FakeMassMessage {
  if (msgid === undefined || msgid === "") return fail(41046);
  const msg = state.massMessages.get(msgid) ?? fail(41047, msgid);
  if (state.nowMs() - msg.createdAtMs < state.settings.massMessageDispatchMs) return fail(41063);
  return msg;
}

const MONTH_SECONDS = 31 * 86_400;

export function listGroupMsgs(
  state: FakeWecomState,
  input: { chatType?: string; startTime?: number; endTime?: number; creator?: string; filterType?: number; limit?: number; cursor?: string },
): { list: Record<string, unknown>[]; nextCursor: string } {
  if (input.chatType !== "single" && input.chatType !== "group") return fail(40058, "chat_type must be single or group");
  if (input.startTime === undefined || input.endTime === undefined) return fail(40058, "start_time and end_time are required");
  if (input.endTime < input.startTime || input.endTime - input.startTime > MONTH_SECONDS) return fail(40058, "time range must be within one month");
  const limit = input.limit === undefined || input.limit <= 0 || input.limit > 100 ? 50 : input.limit;
  const filterType = input.filterType ?? 2;
  const msgs = [...state.massMessages.values()].filter(
    (m) =>
      m.chatType === input.chatType &&
      m.createTime >= input.startTime! &&
      m.createTime <= input.endTime! &&
      (filterType === 2 || m.createType === filterType) &&
      (input.creator === undefined || input.creator === "" || (m.creator !== undefined && lower(m.creator) === lower(input.creator))),
  );
  const p = page(`groupmsg:${input.chatType}`, msgs, input.cursor, limit);
  return {
    list: p.items.map((m) => {
      const out: Record<string, unknown> = { msgid: m.msgid };
      if (m.creator !== undefined) out.creator = m.creator;
      out.create_time = String(m.createTime);
      out.create_type = m.createType;
      if (m.text) out.text = m.text;
      out.attachments = m.attachments;
      return out;
    }),
    nextCursor: p.nextCursor,
  };
}

const taskLimit = (limit: number | undefined) => (limit === undefined || limit <= 0 ? 500 : Math.min(limit, 1000));

export function listGroupMsgTasks(state: FakeWecomState, input: { msgid?: string; limit?: number; cursor?: string }) {
  const msg = readableMassMessage(state, input.msgid);
  const p = page(`task:${msg.msgid}`, msg.tasks, input.cursor, taskLimit(input.limit));
  return {
    list: p.items.map((t) => (t.sendTime === undefined ? { userid: t.userid, status: t.status } : { userid: t.userid, status: t.status, send_time: t.sendTime })),
    nextCursor: p.nextCursor,
  };
}

export function listGroupMsgResults(state: FakeWecomState, input: { msgid?: string; userid?: string; limit?: number; cursor?: string }) {
  const msg = readableMassMessage(state, input.msgid);
  const staff = state.requireStaff(input.userid);
  // Group sends only report what has been sent.
  const rows = msg.results.filter((r) => lower(r.userid) === lower(staff.userid) && (msg.chatType === "single" || r.status !== 0));
  const p = page(`result:${msg.msgid}:${lower(staff.userid)}`, rows, input.cursor, taskLimit(input.limit));
  return {
    list: p.items.map((r) => {
      const out: Record<string, unknown> = {};
      if (r.externalUserId !== undefined) out.external_userid = r.externalUserId;
      if (r.chatId !== undefined) out.chat_id = r.chatId;
      out.userid = r.userid;
      out.status = r.status;
      if (r.sendTime !== undefined) out.send_time = r.sendTime;
      return out;
    }),
    nextCursor: p.nextCursor,
  };
}

export function remindGroupMsg(state: FakeWecomState, msgid: string | undefined): void {
  if (msgid === undefined || msgid === "") fail(41046);
  const msg = state.massMessages.get(msgid!) ?? fail(41047, msgid);
  if (msg.cancelled) fail(41093);
  msg.remindCount++;
}

export function cancelGroupMsg(state: FakeWecomState, msgid: string | undefined): void {
  if (msgid === undefined || msgid === "") fail(41046);
  const msg = state.massMessages.get(msgid!) ?? fail(41047, msgid);
  msg.cancelled = true;
}

/** How many mass messages `recipient` already received in the current cap period. */
export function receivedInPeriod(state: FakeWecomState, recipient: string): number {
  const { per } = state.settings.massMessageCap;
  const current = periodKey(per, state.nowMs());
  return (state.massReceipts.get(recipient) ?? []).filter((ms) => periodKey(per, ms) === current).length;
}

/** Record that `recipient` received a mass message now (also usable to seed "already got one today"). */
export function recordReceipt(state: FakeWecomState, recipient: string, atMs = state.nowMs()): void {
  const list = state.massReceipts.get(recipient) ?? [];
  list.push(atMs);
  state.massReceipts.set(recipient, list);
}

/**
 * The staff member taps "send" in the client. `only` limits a single-chat send to some recipients
 * (allow_select); the rest stay status 0. Applies the per-recipient cap: over-cap → status 3.
 */
export function confirmMassMessage(state: FakeWecomState, msgid: string, userid: string, only?: string[]): FakeSendResult[] {
  const msg = state.massMessages.get(msgid) ?? controlFail(`unknown mass message ${msgid}`);
  if (msg.cancelled) controlFail(`mass message ${msgid} was cancelled`);
  const task = msg.tasks.find((t) => lower(t.userid) === lower(userid)) ?? controlFail(`${userid} has no task in ${msgid}`);
  if (task.status === 2) controlFail(`${userid} already sent ${msgid}`);
  const now = state.nowSec();
  const pick = only ? new Set(only) : undefined;
  const rows = msg.results.filter((r) => lower(r.userid) === lower(userid) && r.status === 0 && (!pick || pick.has(r.externalUserId ?? r.chatId ?? "")));
  for (const r of rows) {
    const recipient = r.externalUserId ?? r.chatId!;
    const follow = r.externalUserId ? state.follow(r.externalUserId, userid) : undefined;
    if (r.externalUserId && (!follow || follow.deletedByCustomer)) r.status = 2;
    else if (r.chatId && state.groupChats.get(r.chatId)?.dismissed !== false) r.status = 2;
    else if (receivedInPeriod(state, recipient) >= state.settings.massMessageCap.count) r.status = 3;
    else {
      r.status = 1;
      r.sendTime = now;
      recordReceipt(state, recipient);
    }
  }
  task.status = 2;
  task.sendTime = now;
  return rows;
}
