import { OFFICIAL_V2_PLAINTEXT } from "../fixtures/wecom-vectors";
import { describe, expect, it } from "vitest";
import {
  CallbackParseError,
  WecomCallbackEvent,
  aesKeyFromEncodingAesKey,
  buildPostEnvelope,
  buildReplyEnvelope,
  callbackDedupeKey,
  cdata,
  parseCallbackEnvelope,
  parseCallbackXml,
  signAndEncrypt,
  verifyAndDecrypt,
} from "../../src/wecom/callback";

const CORP = "ww0123456789abcdef";

/** A customer-contact event plaintext the way WeCom writes it: strings in CDATA, numbers bare. */
function eventXml(event: string, changeType: string | undefined, fields: Record<string, string | number | string[]>, createTime = 1700000000): string {
  const body = Object.entries(fields)
    .map(([name, value]) => {
      if (Array.isArray(value)) return `<${name}>${value.map((v) => `<Item><![CDATA[${v}]]></Item>`).join("")}</${name}>`;
      return typeof value === "number" ? `<${name}>${value}</${name}>` : `<${name}><![CDATA[${value}]]></${name}>`;
    })
    .join("");
  const change = changeType === undefined ? "" : `<ChangeType><![CDATA[${changeType}]]></ChangeType>`;
  return (
    `<xml><ToUserName><![CDATA[${CORP}]]></ToUserName><FromUserName><![CDATA[sys]]></FromUserName>` +
    `<CreateTime>${createTime}</CreateTime><MsgType><![CDATA[event]]></MsgType>` +
    `<Event><![CDATA[${event}]]></Event>${change}${body}</xml>`
  );
}

/** The error a parse throws (fails when it does not throw a CallbackParseError). */
function parseError(fn: () => unknown): CallbackParseError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(CallbackParseError);
    return e as CallbackParseError;
  }
  throw new Error("expected a CallbackParseError, got a result");
}

// shared/wecom-protocol.md section 5.2.
const PLAINTEXT_5_2 =
  "<xml><ToUserName><![CDATA[ww0123456789abcdef]]></ToUserName><FromUserName><![CDATA[sys]]></FromUserName><CreateTime>1700000000</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[change_external_contact]]></Event><ChangeType><![CDATA[add_external_contact]]></ChangeType><UserID><![CDATA[zhangsan]]></UserID><ExternalUserID><![CDATA[wmAbCdEfGhIjKlMnOpQrStUvWxYz0123]]></ExternalUserID><State><![CDATA[clinic_a_poster_01]]></State><WelcomeCode><![CDATA[WELCOMECODE_TEST_欢迎]]></WelcomeCode></xml>";

const V2_PLAINTEXT = OFFICIAL_V2_PLAINTEXT;

// The official customer-group update sample (section 2.2), indented as in the docs.
const OFFICIAL_GROUP_SAMPLE = `<xml>
  <ToUserName><![CDATA[toUser]]></ToUserName>
  <FromUserName><![CDATA[sys]]></FromUserName>
  <CreateTime>1403610513</CreateTime>
  <MsgType><![CDATA[event]]></MsgType>
  <Event><![CDATA[change_external_chat]]></Event>
  <ChatId><![CDATA[wrx7HUARsKwGRaQBVKPBTcEyzdHA4HrQ]]></ChatId>
  <ChangeType><![CDATA[update]]></ChangeType>
  <UpdateDetail><![CDATA[add_member]]></UpdateDetail>
  <JoinScene>1</JoinScene>
  <QuitScene>0</QuitScene>
  <MemChangeCnt>10</MemChangeCnt>
  <MemChangeList>
    <Item>Jack</Item>
    <Item>Rose</Item>
  </MemChangeList>
  <LastMemVer>9c3f97c2ada667dfb5f6d03308d963e1</LastMemVer>
  <CurMemVer>71217227bbd112ecfe3a49c482195cb4</CurMemVer>
</xml>`;

describe("customer-contact events (section 2.1)", () => {
  it("parses the 5.2 plaintext: state and a Chinese WelcomeCode", () => {
    expect(parseCallbackXml(PLAINTEXT_5_2)).toEqual({
      kind: "external_contact",
      event: "change_external_contact",
      changeType: "add_external_contact",
      toUserName: CORP,
      fromUserName: "sys",
      createTime: 1700000000,
      userId: "zhangsan",
      externalUserId: "wmAbCdEfGhIjKlMnOpQrStUvWxYz0123",
      state: "clinic_a_poster_01",
      welcomeCode: "WELCOMECODE_TEST_欢迎",
    });
  });

  it.each([
    ["add_external_contact", { State: "s1", WelcomeCode: "wc1" }, { state: "s1", welcomeCode: "wc1" }],
    ["add_external_contact", {}, {}],
    ["edit_external_contact", {}, {}],
    ["add_half_external_contact", { State: "s2", WelcomeCode: "wc2" }, { state: "s2", welcomeCode: "wc2" }],
    ["del_external_contact", { Source: "DELETE_BY_TRANSFER" }, { source: "DELETE_BY_TRANSFER" }],
    ["del_follow_user", {}, {}],
    ["transfer_fail", { FailReason: "customer_refused" }, { failReason: "customer_refused" }],
    ["transfer_fail", { FailReason: "customer_limit_exceed" }, { failReason: "customer_limit_exceed" }],
  ])("%s %j", (changeType, extra, expected) => {
    const e = parseCallbackXml(eventXml("change_external_contact", changeType, { UserID: "lisi", ExternalUserID: "wmX", ...extra }));
    expect(e).toEqual({
      kind: "external_contact",
      event: "change_external_contact",
      changeType,
      toUserName: CORP,
      fromUserName: "sys",
      createTime: 1700000000,
      userId: "lisi",
      externalUserId: "wmX",
      ...expected,
    });
    expect(WecomCallbackEvent.parse(e)).toEqual(e);
  });

  it("treats an empty CDATA State as absent", () => {
    const e = parseCallbackXml(eventXml("change_external_contact", "add_external_contact", { UserID: "u", ExternalUserID: "wm1", State: "" }));
    expect(e.kind === "external_contact" && e.state).toBe(undefined);
  });
});

describe("customer-group events (section 2.2)", () => {
  it("parses the official update sample: integer scenes (unknown JoinScene 1 accepted), two Items", () => {
    expect(parseCallbackXml(OFFICIAL_GROUP_SAMPLE)).toEqual({
      kind: "external_chat",
      event: "change_external_chat",
      changeType: "update",
      toUserName: "toUser",
      fromUserName: "sys",
      createTime: 1403610513,
      chatId: "wrx7HUARsKwGRaQBVKPBTcEyzdHA4HrQ",
      updateDetail: "add_member",
      joinScene: 1,
      quitScene: 0,
      memChangeCnt: 10,
      memChangeList: ["Jack", "Rose"],
      lastMemVer: "9c3f97c2ada667dfb5f6d03308d963e1",
      curMemVer: "71217227bbd112ecfe3a49c482195cb4",
    });
  });

  it("normalises a single-Item MemChangeList to an array", () => {
    const e = parseCallbackXml(
      eventXml("change_external_chat", "update", { ChatId: "wr1", UpdateDetail: "del_member", QuitScene: 1, MemChangeCnt: 1, MemChangeList: ["wmOnly"] }),
    );
    expect(e).toMatchObject({ kind: "external_chat", updateDetail: "del_member", quitScene: 1, memChangeCnt: 1, memChangeList: ["wmOnly"] });
  });

  it.each(["create", "dismiss"])("%s carries just the ChatId; the member list defaults to []", (changeType) => {
    expect(parseCallbackXml(eventXml("change_external_chat", changeType, { ChatId: "wr2" }))).toEqual({
      kind: "external_chat",
      event: "change_external_chat",
      changeType,
      toUserName: CORP,
      fromUserName: "sys",
      createTime: 1700000000,
      chatId: "wr2",
      memChangeList: [],
    });
  });

  it.each(["change_owner", "change_name", "change_notice", "change_something_new"])("accepts UpdateDetail %s", (detail) => {
    expect(parseCallbackXml(eventXml("change_external_chat", "update", { ChatId: "wr3", UpdateDetail: detail }))).toMatchObject({
      updateDetail: detail,
    });
  });

  it("accepts a JoinScene value not in the table (3 = QR, 7 = unknown)", () => {
    for (const scene of [3, 7]) {
      expect(parseCallbackXml(eventXml("change_external_chat", "update", { ChatId: "wr4", UpdateDetail: "add_member", JoinScene: scene }))).toMatchObject({
        joinScene: scene,
      });
    }
  });
});

describe("tag events (section 2.3)", () => {
  it.each([
    ["create", { Id: "etA", TagType: "tag" }, { id: "etA", tagType: "tag" }],
    ["update", { Id: "etG", TagType: "tag_group" }, { id: "etG", tagType: "tag_group" }],
    ["delete", { Id: "etB", TagType: "tag", StrategyId: 12 }, { id: "etB", tagType: "tag", strategyId: "12" }],
    ["shuffle", { Id: "etG" }, { id: "etG" }],
  ])("%s", (changeType, fields, expected) => {
    expect(parseCallbackXml(eventXml("change_external_tag", changeType, fields))).toEqual({
      kind: "external_tag",
      event: "change_external_tag",
      changeType,
      toUserName: CORP,
      fromUserName: "sys",
      createTime: 1700000000,
      ...expected,
    });
  });

  it("rejects a TagType outside tag | tag_group, naming it", () => {
    const err = parseError(() => parseCallbackXml(eventXml("change_external_tag", "create", { Id: "et1", TagType: "label" })));
    expect(err.field).toBe("TagType");
    expect(err.message).toMatch(/TagType/);
  });
});

describe("messages and unknown events", () => {
  it("parses the official V2 text message; MsgId stays an exact string", () => {
    expect(parseCallbackXml(V2_PLAINTEXT)).toEqual({
      kind: "message",
      msgType: "text",
      toUserName: "wx5823bf96d3bd56c7",
      fromUserName: "mycreate",
      createTime: 1409659813,
      agentId: "218",
      msgId: "4561255354251345929",
      content: "hello",
    });
  });

  it("accepts an unknown event as kind other, with every scalar field", () => {
    const e = parseCallbackXml(eventXml("change_external_moment", "publish", { MomentId: "mom1", UserID: "u1" }));
    expect(e).toEqual({
      kind: "other",
      event: "change_external_moment",
      changeType: "publish",
      toUserName: CORP,
      fromUserName: "sys",
      createTime: 1700000000,
      fields: {
        ToUserName: CORP,
        FromUserName: "sys",
        CreateTime: "1700000000",
        MsgType: "event",
        Event: "change_external_moment",
        ChangeType: "publish",
        MomentId: "mom1",
        UserID: "u1",
      },
    });
  });

  it("accepts a known Event with a new ChangeType, and an app event without ChangeType, as other", () => {
    expect(parseCallbackXml(eventXml("change_external_contact", "brand_new_change", { UserID: "u" }))).toMatchObject({
      kind: "other",
      event: "change_external_contact",
      changeType: "brand_new_change",
    });
    const enter = parseCallbackXml(eventXml("enter_agent", undefined, { EventKey: "" }));
    expect(enter).toMatchObject({ kind: "other", event: "enter_agent" });
    expect(enter.kind === "other" && enter.changeType).toBe(undefined);
  });
});

describe("CDATA and text edge cases", () => {
  it("keeps Chinese, emoji, whitespace and ]] inside CDATA, joins split CDATA sections", () => {
    const xml =
      `<xml><ToUserName>${CORP}</ToUserName><FromUserName>zhangsan</FromUserName><CreateTime>1700000000</CreateTime>` +
      `<MsgType>text</MsgType><MsgId>1</MsgId><Content>${cdata("  你好 ]] a]]>b 😀 &amp; <tag> \n")}</Content></xml>`;
    expect(xml).toContain("]]]]><![CDATA[>");
    expect(parseCallbackXml(xml)).toMatchObject({ content: "  你好 ]] a]]>b 😀 &amp; <tag> \n" });
  });

  it("decodes predefined entities and character references outside CDATA, nothing else", () => {
    const xml =
      `<xml><ToUserName>${CORP}</ToUserName><FromUserName>u</FromUserName><CreateTime>1700000000</CreateTime>` +
      `<MsgType>text</MsgType><MsgId>2</MsgId><Content>a&lt;b&gt;&amp;&quot;&apos;&#20320;&#x597D; &nbsp; &foo;</Content></xml>`;
    expect(parseCallbackXml(xml)).toMatchObject({ content: `a<b>&"'你好 &nbsp; &foo;` });
  });

  it("accepts an XML declaration, a BOM and comments", () => {
    const xml = `\uFEFF<?xml version="1.0" encoding="UTF-8"?><!-- hi -->${PLAINTEXT_5_2}`;
    expect(parseCallbackXml(xml)).toMatchObject({ kind: "external_contact", userId: "zhangsan" });
  });
});

describe("invalid plaintexts", () => {
  it("names a missing required field (add_external_contact without ExternalUserID)", () => {
    const err = parseError(() => parseCallbackXml(eventXml("change_external_contact", "add_external_contact", { UserID: "u" })));
    expect(err.field).toBe("ExternalUserID");
    expect(err.message).toMatch(/missing required field ExternalUserID/);
  });

  it.each([
    ["ChatId", eventXml("change_external_chat", "update", { UpdateDetail: "add_member" })],
    ["Id", eventXml("change_external_tag", "create", { TagType: "tag" })],
    ["UserID", eventXml("change_external_contact", "del_follow_user", { ExternalUserID: "wm" })],
    ["ChangeType", eventXml("change_external_chat", undefined, { ChatId: "wr" })],
    ["MsgId", V2_PLAINTEXT.replace("<MsgId>4561255354251345929</MsgId>", "")],
    ["MsgType", V2_PLAINTEXT.replace("<MsgType><![CDATA[text]]></MsgType>", "")],
    ["Event", PLAINTEXT_5_2.replace("<Event><![CDATA[change_external_contact]]></Event>", "")],
    ["ToUserName", PLAINTEXT_5_2.replace("<ToUserName><![CDATA[ww0123456789abcdef]]></ToUserName>", "")],
    ["CreateTime", PLAINTEXT_5_2.replace("<CreateTime>1700000000</CreateTime>", "")],
  ])("missing %s", (field, xml) => {
    const err = parseError(() => parseCallbackXml(xml));
    expect(err.field).toBe(field);
    expect(err.message).toContain(field);
  });

  it.each([
    ["CreateTime", PLAINTEXT_5_2.replace("<CreateTime>1700000000</CreateTime>", "<CreateTime>soon</CreateTime>")],
    ["CreateTime", PLAINTEXT_5_2.replace("<CreateTime>1700000000</CreateTime>", "<CreateTime>1.5</CreateTime>")],
    ["JoinScene", eventXml("change_external_chat", "update", { ChatId: "wr", JoinScene: "three" })],
    ["UserID", PLAINTEXT_5_2.replace("<UserID><![CDATA[zhangsan]]></UserID>", "<UserID>a</UserID><UserID>b</UserID>")],
    ["UserID", PLAINTEXT_5_2.replace("<UserID><![CDATA[zhangsan]]></UserID>", "<UserID><x>a</x></UserID>")],
  ])("invalid %s", (field, xml) => {
    const err = parseError(() => parseCallbackXml(xml));
    expect(err.field).toBe(field);
    expect(err.message).toContain(field);
  });

  it.each([
    ["mismatched tags", "<xml><ToUserName>a</FromUserName></xml>"],
    ["unclosed root", "<xml><ToUserName>a</ToUserName>"],
    ["not XML", "hello"],
    ["empty", ""],
    ["two roots", `${PLAINTEXT_5_2}<xml></xml>`],
    ["another root", PLAINTEXT_5_2.replaceAll("xml>", "root>")],
    ["a reserved element name", PLAINTEXT_5_2.replace("</xml>", "<__proto__>x</__proto__></xml>")],
  ])("refuses malformed XML: %s", (_name, xml) => {
    parseError(() => parseCallbackXml(xml));
  });

  it("refuses DOCTYPE/ENTITY (billion laughs) before parsing, in any case, without expanding", () => {
    const laughs =
      '<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY lol "lol">' +
      Array.from({ length: 9 }, (_, i) => `<!ENTITY lol${i + 1} "${`&lol${i === 0 ? "" : i};`.repeat(10)}">`).join("") +
      ']><xml><ToUserName>&lol9;</ToUserName></xml>';
    const started = performance.now();
    expect(parseError(() => parseCallbackXml(laughs)).message).toMatch(/DOCTYPE|ENTITY/);
    expect(performance.now() - started).toBeLessThan(100);
    parseError(() => parseCallbackXml(`<!doctype xml><xml></xml>`));
    parseError(() => parseCallbackXml(`<xml><!EnTiTy x "y"></xml>`));
  });

  it("refuses input over the size limit (default 64 KiB, or as passed)", () => {
    const big = PLAINTEXT_5_2.replace("zhangsan", "z".repeat(70 * 1024));
    expect(parseError(() => parseCallbackXml(big)).message).toMatch(/limit/);
    expect(parseError(() => parseCallbackXml(PLAINTEXT_5_2, { maxBytes: 100 })).message).toMatch(/limit/);
    expect(parseCallbackXml(PLAINTEXT_5_2, { maxBytes: 509 }).kind).toBe("external_contact");
  });
});

describe("dedupe keys (section 1.5)", () => {
  const groupUpdate = (detail: string, ver: string, second = 1700000000) =>
    eventXml("change_external_chat", "update", { ChatId: "wr1", UpdateDetail: detail, CurMemVer: ver }, second);

  it("gives the documented shapes", () => {
    expect(callbackDedupeKey(parseCallbackXml(V2_PLAINTEXT))).toBe("msg-4561255354251345929");
    expect(callbackDedupeKey(parseCallbackXml(PLAINTEXT_5_2))).toBe(
      "change_external_contact-add_external_contact-zhangsan-wmAbCdEfGhIjKlMnOpQrStUvWxYz0123-1700000000",
    );
    expect(callbackDedupeKey(parseCallbackXml(OFFICIAL_GROUP_SAMPLE))).toBe(
      "change_external_chat-update--wrx7HUARsKwGRaQBVKPBTcEyzdHA4HrQ-1403610513-add_member-71217227bbd112ecfe3a49c482195cb4",
    );
    expect(callbackDedupeKey(parseCallbackXml(eventXml("change_external_tag", "shuffle", { Id: "etG" })))).toBe(
      "change_external_tag-shuffle--etG-1700000000",
    );
  });

  it("is equal for the same plaintext (a retry) and different for different events", () => {
    const samples = [
      PLAINTEXT_5_2,
      V2_PLAINTEXT,
      OFFICIAL_GROUP_SAMPLE,
      PLAINTEXT_5_2.replace("add_external_contact", "del_follow_user"),
      PLAINTEXT_5_2.replace("wmAbCdEfGhIjKlMnOpQrStUvWxYz0123", "wmOther"),
      PLAINTEXT_5_2.replace("1700000000", "1700000001"),
      groupUpdate("add_member", "v1"),
      groupUpdate("add_member", "v2"),
      groupUpdate("del_member", "v2"),
      eventXml("change_external_chat", "update", { ChatId: "wr1", UpdateDetail: "add_member", MemChangeList: ["a"] }),
      eventXml("change_external_chat", "update", { ChatId: "wr1", UpdateDetail: "add_member", MemChangeList: ["b"] }),
      eventXml("change_external_chat", "create", { ChatId: "wr1" }),
      eventXml("change_external_tag", "create", { Id: "et1", TagType: "tag" }),
      eventXml("change_external_tag", "delete", { Id: "et1", TagType: "tag" }),
      eventXml("change_external_moment", "publish", { MomentId: "m1" }),
      eventXml("change_external_moment", "publish", { MomentId: "m2" }),
    ];
    const keys = samples.map((xml) => callbackDedupeKey(parseCallbackXml(xml)));
    expect(samples.map((xml) => callbackDedupeKey(parseCallbackXml(xml)))).toEqual(keys);
    expect(new Set(keys).size).toBe(samples.length);
    for (const key of keys) {
      expect(key).not.toContain(":");
      expect(key.length).toBeLessThanOrEqual(200);
    }
  });

  it("never contains ':' and stays within 200 chars for odd ids", () => {
    const colon = parseCallbackXml(eventXml("change_external_contact", "edit_external_contact", { UserID: "a:b", ExternalUserID: "wm:1" }));
    expect(callbackDedupeKey(colon)).toBe("change_external_contact-edit_external_contact-a-b-wm-1-1700000000");
    const long = (id: string) =>
      callbackDedupeKey(parseCallbackXml(eventXml("change_external_contact", "edit_external_contact", { UserID: "u", ExternalUserID: id })));
    const a = long(`wm${"x".repeat(300)}A`);
    const b = long(`wm${"x".repeat(300)}B`);
    expect(a.length).toBeLessThanOrEqual(200);
    expect(a).not.toBe(b);
    expect(long(`wm${"欢".repeat(150)}😀${"欢".repeat(150)}`).length).toBeLessThanOrEqual(200);
  });
});

describe("POST envelope (section 1.4)", () => {
  it("parses the documented body with whitespace and without AgentID", () => {
    const body = `<xml>
   <ToUserName><![CDATA[ww0123456789abcdef]]></ToUserName>
   <AgentID><![CDATA[1000002]]></AgentID>
   <Encrypt><![CDATA[abc+/=]]></Encrypt>
</xml>`;
    expect(parseCallbackEnvelope(body)).toEqual({ toUserName: CORP, agentId: "1000002", encrypt: "abc+/=" });
    expect(parseCallbackEnvelope(new TextEncoder().encode(body))).toEqual({ toUserName: CORP, agentId: "1000002", encrypt: "abc+/=" });
    expect(parseCallbackEnvelope(`<xml><ToUserName>${CORP}</ToUserName><Encrypt>e</Encrypt></xml>`)).toEqual({ toUserName: CORP, encrypt: "e" });
  });

  it("round-trips buildPostEnvelope and formats the passive reply", () => {
    const env = { toUserName: CORP, agentId: "1000002", encrypt: "Q3st+/==" };
    const xml = buildPostEnvelope(env);
    expect(xml).toBe(
      "<xml><ToUserName><![CDATA[ww0123456789abcdef]]></ToUserName><AgentID><![CDATA[1000002]]></AgentID><Encrypt><![CDATA[Q3st+/==]]></Encrypt></xml>",
    );
    expect(parseCallbackEnvelope(xml)).toEqual(env);
    expect(buildReplyEnvelope("ENC", "SIG", "1700000001", "n1")).toBe(
      "<xml><Encrypt><![CDATA[ENC]]></Encrypt><MsgSignature><![CDATA[SIG]]></MsgSignature><TimeStamp>1700000001</TimeStamp><Nonce><![CDATA[n1]]></Nonce></xml>",
    );
  });

  it.each([
    ["Encrypt", `<xml><ToUserName>${CORP}</ToUserName></xml>`],
    ["Encrypt", `<xml><ToUserName>${CORP}</ToUserName><Encrypt></Encrypt></xml>`],
    ["Encrypt", `<xml><ToUserName>${CORP}</ToUserName><Encrypt>a</Encrypt><Encrypt>b</Encrypt></xml>`],
    ["ToUserName", "<xml><Encrypt>e</Encrypt></xml>"],
  ])("names the bad field %s", (field, body) => {
    expect(parseError(() => parseCallbackEnvelope(body)).field).toBe(field);
  });

  it("applies the same guards: DOCTYPE, size, malformed, invalid UTF-8", () => {
    parseError(() => parseCallbackEnvelope(`<!DOCTYPE x [<!ENTITY e "e">]><xml><ToUserName>&e;</ToUserName><Encrypt>e</Encrypt></xml>`));
    parseError(() => parseCallbackEnvelope(buildPostEnvelope({ toUserName: CORP, encrypt: "A".repeat(65 * 1024) })));
    parseError(() => parseCallbackEnvelope(buildPostEnvelope({ toUserName: CORP, encrypt: "A".repeat(200) }), { maxBytes: 128 }));
    parseError(() => parseCallbackEnvelope("<xml><Encrypt>e</xml>"));
    parseError(() => parseCallbackEnvelope(new Uint8Array([0x3c, 0x78, 0x6d, 0x6c, 0x3e, 0xff, 0x3c, 0x2f, 0x78, 0x6d, 0x6c, 0x3e])));
  });

  it("end to end: fake-server envelope -> verify + decrypt -> typed event -> dedupe key", () => {
    const creds = { token: "ClinicFakeToken01", aesKey: aesKeyFromEncodingAesKey("abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"), receiveId: CORP };
    const sealed = signAndEncrypt(creds, { message: PLAINTEXT_5_2, timestamp: "1700000000", nonce: "1938476521" });
    const envelope = parseCallbackEnvelope(buildPostEnvelope({ toUserName: CORP, agentId: "1000002", encrypt: sealed.encrypt }));
    const plain = verifyAndDecrypt(creds, { timestamp: sealed.timestamp, nonce: sealed.nonce, signature: sealed.signature, encrypt: envelope.encrypt });
    const event = parseCallbackXml(plain.message);
    expect(event).toMatchObject({ kind: "external_contact", state: "clinic_a_poster_01", welcomeCode: "WELCOMECODE_TEST_欢迎" });
    // A retry: fresh ciphertext, same plaintext, same key.
    const retry = signAndEncrypt(creds, { message: PLAINTEXT_5_2, timestamp: "1700000005", nonce: "1" });
    expect(retry.encrypt).not.toBe(sealed.encrypt);
    expect(callbackDedupeKey(parseCallbackXml(verifyAndDecrypt(creds, retry).message))).toBe(callbackDedupeKey(event));
  });
});
