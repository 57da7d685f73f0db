import type { FakeWecomState } from "./state";

// Plaintext event XML exactly as WeCom builds it (doc §2, official samples): strings in CDATA,
// numbers bare, FromUserName `sys`, MsgType `event`, CreateTime in unix seconds. Elements follow the
// official samples' order. One line, like the project's constructed vector (doc §5.2).

export type XmlValue = string | number | { bare: string } | { items: string[] };
export type XmlFields = Array<[name: string, value: XmlValue | undefined]>;

const cdata = (s: string) => `<![CDATA[${s.replaceAll("]]>", "]]]]><![CDATA[>")}]]>`;

function render(name: string, v: XmlValue): string {
  if (typeof v === "number") return `<${name}>${v}</${name}>`;
  if (typeof v === "string") return `<${name}>${cdata(v)}</${name}>`;
  // The official change_external_chat sample writes Item and MemVer values without CDATA.
  if ("bare" in v) return `<${name}>${v.bare}</${name}>`;
  return `<${name}>${v.items.map((i) => `<Item>${i}</Item>`).join("")}</${name}>`;
}

/** `<xml>` with the common header and then `fields` in order (undefined values are left out). */
export function eventXml(state: FakeWecomState, event: string, fields: XmlFields, createTime = state.nowSec()): string {
  const all: XmlFields = [
    ["ToUserName", state.corpId],
    ["FromUserName", "sys"],
    ["CreateTime", createTime],
    ["MsgType", "event"],
    ["Event", event],
    ...fields,
  ];
  return `<xml>${all.map(([n, v]) => (v === undefined ? "" : render(n, v))).join("")}</xml>`;
}

export type ContactChange =
  | "add_external_contact"
  | "add_half_external_contact"
  | "edit_external_contact"
  | "del_external_contact"
  | "del_follow_user"
  | "transfer_fail";

export function contactEvent(
  state: FakeWecomState,
  changeType: ContactChange,
  e: { userid: string; externalUserId: string; state?: string; welcomeCode?: string; source?: string; failReason?: string },
): string {
  return eventXml(state, "change_external_contact", [
    ["ChangeType", changeType],
    ["FailReason", e.failReason],
    ["UserID", e.userid],
    ["ExternalUserID", e.externalUserId],
    ["State", e.state],
    ["WelcomeCode", e.welcomeCode],
    ["Source", e.source],
  ]);
}

export function chatEvent(
  state: FakeWecomState,
  e: {
    chatId: string;
    changeType: "create" | "update" | "dismiss";
    updateDetail?: string;
    joinScene?: number;
    quitScene?: number;
    members?: string[];
    lastMemVer?: string;
    curMemVer?: string;
  },
): string {
  const memberChange = e.members !== undefined;
  return eventXml(state, "change_external_chat", [
    ["ChatId", e.chatId],
    ["ChangeType", e.changeType],
    ["UpdateDetail", e.updateDetail],
    // Like the official sample, a member change carries both scenes (the other one is 0).
    ["JoinScene", memberChange ? (e.joinScene ?? 0) : undefined],
    ["QuitScene", memberChange ? (e.quitScene ?? 0) : undefined],
    ["MemChangeCnt", e.members?.length],
    ["MemChangeList", e.members ? { items: e.members } : undefined],
    ["LastMemVer", e.lastMemVer !== undefined ? { bare: e.lastMemVer } : undefined],
    ["CurMemVer", e.curMemVer !== undefined ? { bare: e.curMemVer } : undefined],
  ]);
}

export function tagEvent(
  state: FakeWecomState,
  e: { id: string; tagType?: "tag" | "tag_group"; changeType: "create" | "update" | "delete" | "shuffle"; strategyId?: number },
): string {
  return eventXml(state, "change_external_tag", [
    ["Id", e.id],
    ["TagType", e.tagType],
    ["ChangeType", e.changeType],
    ["StrategyId", e.strategyId],
  ]);
}
