/**
 * Decrypted callback plaintext -> typed, zod-validated events (shared/wecom-protocol.md section 2)
 * and the dedupe key of section 1.5. Known customer-contact events must be complete; an unknown
 * Event or ChangeType becomes kind "other" so a new WeCom event type never blocks the inbox.
 */
import { createHash } from "node:crypto";
import { z } from "zod";
import { CallbackParseError, childText, readXmlRoot, type XmlElement, type XmlReadOptions } from "./envelope";

const text = z.string().min(1);
/** CreateTime, scenes and counts arrive bare in the XML and are parsed as integers. */
const int = z.int();

const common = {
  /** CorpID. */
  toUserName: text,
  /** "sys" for customer-contact events; the sender's userid for messages. */
  fromUserName: text.optional(),
  /** Unix seconds. */
  createTime: int.nonnegative(),
  /** The receiving app, when WeCom includes it. */
  agentId: text.optional(),
};

export const ExternalContactChangeType = z.enum([
  "add_external_contact",
  "edit_external_contact",
  "add_half_external_contact",
  "del_external_contact",
  "del_follow_user",
  "transfer_fail",
]);
export type ExternalContactChangeType = z.infer<typeof ExternalContactChangeType>;

/** Event change_external_contact (section 2.1). */
export const ExternalContactEvent = z.object({
  kind: z.literal("external_contact"),
  event: z.literal("change_external_contact"),
  changeType: ExternalContactChangeType,
  ...common,
  /** Staff userid; for transfer_fail the takeover staff. */
  userId: text,
  externalUserId: text,
  /** 「联系我」/获客链接 state (add_external_contact, add_half_external_contact). */
  state: text.optional(),
  /** Single use, valid 20 s (send_welcome_msg). */
  welcomeCode: text.optional(),
  /** del_external_contact: DELETE_BY_TRANSFER when removed by 在职继承. */
  source: text.optional(),
  /** transfer_fail: customer_refused | customer_limit_exceed. */
  failReason: text.optional(),
});
export type ExternalContactEvent = z.infer<typeof ExternalContactEvent>;

export const ExternalChatChangeType = z.enum(["create", "update", "dismiss"]);
export type ExternalChatChangeType = z.infer<typeof ExternalChatChangeType>;

/** UpdateDetail values documented today; others are accepted as plain strings. */
export const KNOWN_CHAT_UPDATE_DETAILS = [
  "add_member",
  "del_member",
  "change_owner",
  "change_name",
  "change_notice",
] as const;

/** Event change_external_chat, customer groups (section 2.2). */
export const ExternalChatEvent = z.object({
  kind: z.literal("external_chat"),
  event: z.literal("change_external_chat"),
  changeType: ExternalChatChangeType,
  ...common,
  chatId: text,
  /** For update: one of KNOWN_CHAT_UPDATE_DETAILS, or a newer value. */
  updateDetail: text.optional(),
  /** add_member: 0 invited, 3 scanned QR; other values (the official sample has 1) accepted. */
  joinScene: int.optional(),
  /** del_member: 0 left, 1 removed; other values accepted. */
  quitScene: int.optional(),
  memChangeCnt: int.optional(),
  /** userids / external_userids from <MemChangeList><Item>; [] when absent. */
  memChangeList: z.array(text),
  lastMemVer: text.optional(),
  curMemVer: text.optional(),
});
export type ExternalChatEvent = z.infer<typeof ExternalChatEvent>;

export const ExternalTagChangeType = z.enum(["create", "update", "delete", "shuffle"]);
export type ExternalTagChangeType = z.infer<typeof ExternalTagChangeType>;

/** Event change_external_tag (section 2.3); re-read the tag list on any of these. */
export const ExternalTagEvent = z.object({
  kind: z.literal("external_tag"),
  event: z.literal("change_external_tag"),
  changeType: ExternalTagChangeType,
  ...common,
  /** Tag or tag-group id. */
  id: text,
  /** Absent on shuffle. */
  tagType: z.enum(["tag", "tag_group"]).optional(),
  strategyId: text.optional(),
});
export type ExternalTagEvent = z.infer<typeof ExternalTagEvent>;

/** A plain message to the app (MsgType other than "event"), e.g. text. */
export const MessageEvent = z.object({
  kind: z.literal("message"),
  msgType: text,
  ...common,
  /** Sender userid. */
  fromUserName: text,
  /** Official dedupe key for messages; a digit string beyond 2^53, so kept as a string. */
  msgId: text,
  content: text.optional(),
  mediaId: text.optional(),
  picUrl: text.optional(),
});
export type MessageEvent = z.infer<typeof MessageEvent>;

/** Any other event, accepted as is: `fields` holds every top-level scalar element by XML name. */
export const OtherEvent = z.object({
  kind: z.literal("other"),
  event: text,
  changeType: text.optional(),
  ...common,
  fields: z.record(z.string(), z.string()),
});
export type OtherEvent = z.infer<typeof OtherEvent>;

export const WecomCallbackEvent = z.discriminatedUnion("kind", [
  ExternalContactEvent,
  ExternalChatEvent,
  ExternalTagEvent,
  MessageEvent,
  OtherEvent,
]);
export type WecomCallbackEvent = z.infer<typeof WecomCallbackEvent>;

/** camelCase field -> XML element, for error messages that name what WeCom sent. */
const XML_NAME: Record<string, string> = {
  toUserName: "ToUserName",
  fromUserName: "FromUserName",
  createTime: "CreateTime",
  agentId: "AgentID",
  msgType: "MsgType",
  event: "Event",
  changeType: "ChangeType",
  userId: "UserID",
  externalUserId: "ExternalUserID",
  state: "State",
  welcomeCode: "WelcomeCode",
  source: "Source",
  failReason: "FailReason",
  chatId: "ChatId",
  updateDetail: "UpdateDetail",
  joinScene: "JoinScene",
  quitScene: "QuitScene",
  memChangeCnt: "MemChangeCnt",
  memChangeList: "MemChangeList",
  lastMemVer: "LastMemVer",
  curMemVer: "CurMemVer",
  id: "Id",
  tagType: "TagType",
  strategyId: "StrategyId",
  msgId: "MsgId",
  content: "Content",
  mediaId: "MediaId",
  picUrl: "PicUrl",
};

/** Digits stay as the number they spell; anything else is left for zod to reject by name. */
function intField(value: string | undefined): number | string | undefined {
  return value !== undefined && /^-?\d{1,16}$/.test(value) ? Number(value) : value;
}

function itemList(root: XmlElement, name: string): string[] {
  const lists = root.children.filter((c) => c.name === name);
  if (lists.length > 1) {
    throw new CallbackParseError(`field ${name} appears ${lists.length} times`, { field: name });
  }
  const items = lists[0]?.children.filter((c) => c.name === "Item") ?? [];
  return items.map((item) => {
    if (item.children.length > 0) {
      throw new CallbackParseError(`field ${name} has an Item with nested elements`, { field: name });
    }
    return item.text;
  });
}

/** Every non-empty top-level text element; a repeated one has its values joined by "\n". */
function scalarFields(root: XmlElement): Record<string, string> {
  const out = new Map<string, string>();
  for (const child of root.children) {
    if (child.children.length > 0 || child.text === "") continue;
    const seen = out.get(child.name);
    out.set(child.name, seen === undefined ? child.text : `${seen}\n${child.text}`);
  }
  return Object.fromEntries(out);
}

function validate<S extends z.ZodType>(schema: S, candidate: Record<string, unknown>, what: string): z.infer<S> {
  const result = schema.safeParse(candidate);
  if (result.success) return result.data;
  const issue = result.error.issues[0]!;
  const key = String(issue.path[0] ?? "");
  const field = XML_NAME[key] ?? key;
  if (candidate[key] === undefined) {
    throw new CallbackParseError(`${what}: missing required field ${field}`, { field });
  }
  // Values are not echoed: some fields (Content) carry patient text.
  const reason = issue.code === "invalid_type" && issue.expected === "number" ? "expected an integer" : issue.message;
  throw new CallbackParseError(`${what}: invalid field ${field}: ${reason}`, { field });
}

/**
 * Parse a decrypted callback plaintext. Same guards as the envelope (size, no DTD, well-formed,
 * single <xml> root). Throws CallbackParseError naming the missing or invalid XML field.
 */
export function parseCallbackXml(xml: string, options: XmlReadOptions = {}): WecomCallbackEvent {
  const root = readXmlRoot(xml, options);
  const f = (name: string) => childText(root, name);
  const base = {
    toUserName: f("ToUserName"),
    fromUserName: f("FromUserName"),
    createTime: intField(f("CreateTime")),
    agentId: f("AgentID"),
  };
  const msgType = f("MsgType");
  if (msgType === undefined) {
    throw new CallbackParseError("missing required field MsgType", { field: "MsgType" });
  }
  if (msgType !== "event") {
    return validate(
      MessageEvent,
      { kind: "message", msgType, ...base, msgId: f("MsgId"), content: f("Content"), mediaId: f("MediaId"), picUrl: f("PicUrl") },
      `message ${msgType}`,
    );
  }

  const event = f("Event");
  if (event === undefined) {
    throw new CallbackParseError("missing required field Event", { field: "Event" });
  }
  const changeType = f("ChangeType");
  const known = ["change_external_contact", "change_external_chat", "change_external_tag"].includes(event);
  if (known && changeType === undefined) {
    throw new CallbackParseError(`${event}: missing required field ChangeType`, { field: "ChangeType" });
  }
  const what = changeType === undefined ? event : `${event}/${changeType}`;

  if (event === "change_external_contact" && ExternalContactChangeType.safeParse(changeType).success) {
    return validate(
      ExternalContactEvent,
      {
        kind: "external_contact",
        event,
        changeType,
        ...base,
        userId: f("UserID"),
        externalUserId: f("ExternalUserID"),
        state: f("State"),
        welcomeCode: f("WelcomeCode"),
        source: f("Source"),
        failReason: f("FailReason"),
      },
      what,
    );
  }
  if (event === "change_external_chat" && ExternalChatChangeType.safeParse(changeType).success) {
    return validate(
      ExternalChatEvent,
      {
        kind: "external_chat",
        event,
        changeType,
        ...base,
        chatId: f("ChatId"),
        updateDetail: f("UpdateDetail"),
        joinScene: intField(f("JoinScene")),
        quitScene: intField(f("QuitScene")),
        memChangeCnt: intField(f("MemChangeCnt")),
        memChangeList: itemList(root, "MemChangeList"),
        lastMemVer: f("LastMemVer"),
        curMemVer: f("CurMemVer"),
      },
      what,
    );
  }
  if (event === "change_external_tag" && ExternalTagChangeType.safeParse(changeType).success) {
    return validate(
      ExternalTagEvent,
      { kind: "external_tag", event, changeType, ...base, id: f("Id"), tagType: f("TagType"), strategyId: f("StrategyId") },
      what,
    );
  }
  return validate(OtherEvent, { kind: "other", event, changeType, ...base, fields: scalarFields(root) }, what);
}

const MAX_KEY_LENGTH = 200;

function shortHash(value: string): string {
  return createHash("sha256").update(value).digest("hex").slice(0, 16);
}

/**
 * Deterministic dedupe key (section 1.5), usable as a BullMQ jobId: `msg-<MsgId>` for messages,
 * `<Event>-<ChangeType>-<UserID>-<ExternalUserID|ChatId|Id>-<CreateTime>` for events (chat updates
 * add UpdateDetail and CurMemVer). WeCom retries reuse the plaintext, so a retry gets the same key;
 * never key on Encrypt. No ':' (BullMQ), at most 200 chars (longer keys end in a hash). Keys are
 * per corp: prefix the tenant when several share a queue.
 */
export function callbackDedupeKey(e: WecomCallbackEvent): string {
  let key: string;
  switch (e.kind) {
    case "message":
      key = `msg-${e.msgId}`;
      break;
    case "external_contact":
      key = `${e.event}-${e.changeType}-${e.userId}-${e.externalUserId}-${e.createTime}`;
      break;
    case "external_chat": {
      key = `${e.event}-${e.changeType}--${e.chatId}-${e.createTime}`;
      if (e.changeType === "update") {
        // Without CurMemVer (older payloads) the member list still tells two updates apart.
        const version = e.curMemVer ?? (e.memChangeList.length > 0 ? shortHash(e.memChangeList.join("\n")) : "");
        key += `-${e.updateDetail ?? ""}-${version}`;
      }
      break;
    }
    case "external_tag":
      key = `${e.event}-${e.changeType}--${e.id}-${e.createTime}`;
      break;
    case "other": {
      // Unknown shape: the usual parts where present, plus a hash of every field so two different
      // events in the same second never collide while a retry (same plaintext) still does.
      const fields = e.fields;
      const who = fields.UserID ?? e.fromUserName ?? "";
      const what = fields.ExternalUserID ?? fields.ChatId ?? fields.Id ?? "";
      const canonical = JSON.stringify(Object.entries(fields).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
      key = `${e.event}-${e.changeType ?? ""}-${who}-${what}-${e.createTime}-${shortHash(canonical)}`;
      break;
    }
  }
  const clean = key.replaceAll(":", "-");
  if (clean.length <= MAX_KEY_LENGTH) return clean;
  let cut = MAX_KEY_LENGTH - 17;
  if (/[\ud800-\udbff]/.test(clean[cut - 1]!)) cut -= 1; // never split a surrogate pair
  return `${clean.slice(0, cut)}-${shortHash(key)}`;
}
