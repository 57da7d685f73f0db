import { controlFail, fail } from "../errors";
import { ids } from "../ids";
import { page } from "../paging";
import { lower, type FakeGroupChat, type FakeGroupMember, type FakeWecomState } from "../state";

// Customer groups (doc §2.2, §3.9). member_version changes on every member change; the callback's
// LastMemVer/CurMemVer are the versions before and after it.

/**
 * How a member joined. groupchat/get and the callback use different scales:
 * invite → join_scene 1 / JoinScene 0, link → 2 / 0, qr → 3 / 3.
 */
export type JoinHow = "invite" | "link" | "qr";
const JOIN_SCENE: Record<JoinHow, { api: number; callback: number }> = {
  invite: { api: 1, callback: 0 },
  link: { api: 2, callback: 0 },
  qr: { api: 3, callback: 3 },
};

function newMember(state: FakeWecomState, id: string, how: JoinHow, invitor: string | undefined, memberState: string | undefined): FakeGroupMember {
  const staff = state.findStaff(id);
  const contact = staff ? undefined : state.contacts.get(id);
  if (!staff && !contact) return controlFail(`unknown staff or contact ${id}`);
  const m: FakeGroupMember = {
    userid: staff ? staff.userid : id,
    type: staff ? 1 : 2,
    joinTime: state.nowSec(),
    joinScene: JOIN_SCENE[how].api,
    groupNickname: "",
    name: staff ? staff.name : contact!.name,
  };
  if (contact?.unionid !== undefined) m.unionid = contact.unionid;
  if (invitor !== undefined) m.invitor = invitor;
  if (memberState !== undefined && memberState !== "") m.state = memberState;
  return m;
}

export interface CreateGroupChatInput {
  chatId?: string;
  name?: string;
  owner: string;
  notice?: string;
  /** Staff userids and/or external_userids besides the owner. */
  members?: string[];
  adminList?: string[];
}

export function createGroupChat(state: FakeWecomState, input: CreateGroupChatInput): FakeGroupChat {
  const owner = state.findStaff(input.owner) ?? controlFail(`unknown staff ${input.owner}`);
  const chatId = input.chatId ?? ids.chatId();
  if (state.groupChats.has(chatId)) controlFail(`group ${chatId} already exists`);
  const chat: FakeGroupChat = {
    chatId,
    name: input.name ?? "",
    owner: owner.userid,
    createTime: state.nowSec(),
    notice: input.notice ?? "",
    members: [newMember(state, owner.userid, "invite", undefined, undefined)],
    adminList: (input.adminList ?? []).map((u) => (state.findStaff(u) ?? controlFail(`unknown staff ${u}`)).userid),
    memberVersion: ids.memberVersion(),
    status: 0,
    dismissed: false,
  };
  for (const id of input.members ?? []) {
    if (chat.members.some((m) => sameMember(m.userid, id))) continue;
    chat.members.push(newMember(state, id, "invite", owner.userid, undefined));
  }
  state.groupChats.set(chatId, chat);
  return chat;
}

const sameMember = (a: string, b: string) => a === b || lower(a) === lower(b);

export function liveChat(state: FakeWecomState, chatId: string): FakeGroupChat {
  const chat = state.groupChats.get(chatId);
  if (!chat || chat.dismissed) return controlFail(`unknown or dismissed group ${chatId}`);
  return chat;
}

export interface MemberChange {
  chat: FakeGroupChat;
  members: string[];
  lastMemVer: string;
  curMemVer: string;
}

export function addGroupMembers(
  state: FakeWecomState,
  chatId: string,
  input: { members: string[]; how?: JoinHow; invitor?: string; state?: string },
): MemberChange & { joinScene: number } {
  const chat = liveChat(state, chatId);
  const how = input.how ?? "invite";
  const invitor = input.invitor ?? (how === "qr" ? undefined : chat.owner);
  const added: string[] = [];
  for (const id of input.members) {
    if (chat.members.some((m) => sameMember(m.userid, id))) controlFail(`${id} is already in ${chatId}`);
    const m = newMember(state, id, how, invitor, input.state);
    chat.members.push(m);
    added.push(m.userid);
  }
  if (added.length === 0) controlFail("no members given");
  const lastMemVer = chat.memberVersion;
  chat.memberVersion = ids.memberVersion();
  return { chat, members: added, lastMemVer, curMemVer: chat.memberVersion, joinScene: JOIN_SCENE[how].callback };
}

export function removeGroupMembers(
  state: FakeWecomState,
  chatId: string,
  input: { members: string[]; removed?: boolean },
): MemberChange & { quitScene: number } {
  const chat = liveChat(state, chatId);
  const gone: string[] = [];
  for (const id of input.members) {
    const i = chat.members.findIndex((m) => sameMember(m.userid, id));
    if (i < 0) controlFail(`${id} is not in ${chatId}`);
    if (sameMember(chat.members[i]!.userid, chat.owner)) controlFail("the owner cannot leave; dismiss the group instead");
    gone.push(chat.members[i]!.userid);
    chat.members.splice(i, 1);
  }
  if (gone.length === 0) controlFail("no members given");
  const lastMemVer = chat.memberVersion;
  chat.memberVersion = ids.memberVersion();
  return { chat, members: gone, lastMemVer, curMemVer: chat.memberVersion, quitScene: input.removed ? 1 : 0 };
}

export type GroupUpdate = "change_owner" | "change_name" | "change_notice";

export function updateGroupChat(state: FakeWecomState, chatId: string, input: { name?: string; notice?: string; owner?: string }): GroupUpdate[] {
  const chat = liveChat(state, chatId);
  const changes: GroupUpdate[] = [];
  if (input.owner !== undefined) {
    const owner = state.findStaff(input.owner) ?? controlFail(`unknown staff ${input.owner}`);
    // Ownership passes to a staff member already in the group (a join would be its own event).
    if (!chat.members.some((m) => m.type === 1 && sameMember(m.userid, owner.userid))) controlFail(`${owner.userid} is not a member of ${chatId}`);
    chat.owner = owner.userid;
    changes.push("change_owner");
  }
  if (input.name !== undefined) {
    chat.name = input.name;
    changes.push("change_name");
  }
  if (input.notice !== undefined) {
    chat.notice = input.notice;
    changes.push("change_notice");
  }
  return changes;
}

export function dismissGroupChat(state: FakeWecomState, chatId: string): FakeGroupChat {
  const chat = liveChat(state, chatId);
  chat.dismissed = true;
  return chat;
}

export function groupChatJson(chat: FakeGroupChat, needName: boolean): Record<string, unknown> {
  return {
    chat_id: chat.chatId,
    name: chat.name,
    owner: chat.owner,
    create_time: chat.createTime,
    notice: chat.notice,
    member_list: chat.members.map((m) => {
      const out: Record<string, unknown> = { userid: m.userid, type: m.type };
      if (m.unionid !== undefined) out.unionid = m.unionid;
      out.join_time = m.joinTime;
      out.join_scene = m.joinScene;
      if (m.invitor !== undefined) out.invitor = { userid: m.invitor };
      out.group_nickname = m.groupNickname;
      if (needName) out.name = m.name;
      if (m.state !== undefined) out.state = m.state;
      return out;
    }),
    admin_list: chat.adminList.map((userid) => ({ userid })),
    member_version: chat.memberVersion,
  };
}

export function getGroupChat(state: FakeWecomState, chatId: string | undefined): FakeGroupChat {
  if (chatId === undefined || chatId === "") return fail(40058, "chat_id missing");
  const chat = state.groupChats.get(chatId);
  if (!chat || chat.dismissed) return fail(40050, chatId);
  return chat;
}

export function listGroupChats(
  state: FakeWecomState,
  input: { statusFilter?: number; owners?: string[]; cursor?: string; limit?: number },
): { list: Array<{ chat_id: string; status: number }>; nextCursor: string } {
  if (input.limit === undefined || input.limit < 1 || input.limit > 1000) return fail(40058, "limit must be 1-1000");
  if (input.owners && input.owners.length > 100) return fail(40058, "owner_filter.userid_list has more than 100 userids");
  const owners = input.owners && input.owners.length > 0 ? new Set(input.owners.map(lower)) : undefined;
  const status = input.statusFilter ?? 0;
  const chats = [...state.groupChats.values()].filter(
    (c) => !c.dismissed && (owners === undefined || owners.has(lower(c.owner))) && (status === 0 || c.status === status),
  );
  const p = page("groupchat", chats, input.cursor, input.limit);
  return { list: p.items.map((c) => ({ chat_id: c.chatId, status: c.status })), nextCursor: p.nextCursor };
}
