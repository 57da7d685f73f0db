import { randomBytes } from "node:crypto";
import { encrypt as wxEncrypt, getSignature } from "@wecom/crypto";

/** Credentials of a test WeCom app (the corp's callback config). */
export interface TestWecomApp {
  corpId: string;
  agentId: number;
  secret: string;
  callbackToken: string;
  encodingAesKey: string;
}

export function testWecomApp(): TestWecomApp {
  const alnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  const key = Array.from(randomBytes(43), (b) => alnum[b % alnum.length]).join("");
  return { corpId: `ww${randomBytes(8).toString("hex")}`, agentId: 1000002, secret: `secret-${randomBytes(8).toString("hex")}`, callbackToken: `Tok${randomBytes(6).toString("hex")}`, encodingAesKey: key };
}

/**
 * A callback request as WeCom sends it, built with the official @wecom/crypto (independent of our
 * own implementation). `corpId` can differ from the app's to test the receive-id check.
 */
export function signedCallback(app: TestWecomApp, plaintext: string, opts: { timestamp?: number; nonce?: string; corpId?: string; tamper?: boolean } = {}) {
  const timestamp = String(opts.timestamp ?? Math.floor(Date.now() / 1000));
  const nonce = opts.nonce ?? String(Math.floor(Math.random() * 1e9));
  let enc = wxEncrypt(app.encodingAesKey, plaintext, opts.corpId ?? app.corpId);
  if (opts.tamper) {
    const raw = Buffer.from(enc, "base64");
    raw[raw.length - 5]! ^= 0x55;
    enc = raw.toString("base64");
  }
  const signature = getSignature(app.callbackToken, timestamp, nonce, enc);
  const query = `msg_signature=${signature}&timestamp=${timestamp}&nonce=${nonce}`;
  const body = `<xml><ToUserName><![CDATA[${app.corpId}]]></ToUserName><AgentID><![CDATA[${app.agentId}]]></AgentID><Encrypt><![CDATA[${enc}]]></Encrypt></xml>`;
  return { query, body, encrypt: enc, signature, timestamp, nonce };
}

export function urlVerification(app: TestWecomApp, echo: string, opts: { timestamp?: number } = {}) {
  const timestamp = String(opts.timestamp ?? Math.floor(Date.now() / 1000));
  const nonce = String(Math.floor(Math.random() * 1e9));
  const enc = wxEncrypt(app.encodingAesKey, echo, app.corpId);
  const signature = getSignature(app.callbackToken, timestamp, nonce, enc);
  return { query: `msg_signature=${signature}&timestamp=${timestamp}&nonce=${nonce}&echostr=${encodeURIComponent(enc)}`, encrypt: enc };
}

const c = (v: string) => `<![CDATA[${v}]]>`;

/** Plaintext of a change_external_contact event, as WeCom formats it. */
export function contactEventXml(corpId: string, changeType: string, f: { userId: string; externalUserId: string; state?: string; welcomeCode?: string; createTime?: number; source?: string; failReason?: string }): string {
  return (
    `<xml><ToUserName>${c(corpId)}</ToUserName><FromUserName>${c("sys")}</FromUserName><CreateTime>${f.createTime ?? Math.floor(Date.now() / 1000)}</CreateTime>` +
    `<MsgType>${c("event")}</MsgType><Event>${c("change_external_contact")}</Event><ChangeType>${c(changeType)}</ChangeType>` +
    `<UserID>${c(f.userId)}</UserID><ExternalUserID>${c(f.externalUserId)}</ExternalUserID>` +
    (f.state ? `<State>${c(f.state)}</State>` : "") +
    (f.welcomeCode ? `<WelcomeCode>${c(f.welcomeCode)}</WelcomeCode>` : "") +
    (f.source ? `<Source>${c(f.source)}</Source>` : "") +
    (f.failReason ? `<FailReason>${c(f.failReason)}</FailReason>` : "") +
    `</xml>`
  );
}

export function chatEventXml(corpId: string, f: { chatId: string; changeType: string; updateDetail?: string; joinScene?: number; quitScene?: number; members?: string[]; createTime?: number; curMemVer?: string }): string {
  return (
    `<xml><ToUserName>${c(corpId)}</ToUserName><FromUserName>${c("sys")}</FromUserName><CreateTime>${f.createTime ?? Math.floor(Date.now() / 1000)}</CreateTime>` +
    `<MsgType>${c("event")}</MsgType><Event>${c("change_external_chat")}</Event><ChatId>${c(f.chatId)}</ChatId><ChangeType>${c(f.changeType)}</ChangeType>` +
    (f.updateDetail ? `<UpdateDetail>${c(f.updateDetail)}</UpdateDetail>` : "") +
    (f.joinScene !== undefined ? `<JoinScene>${f.joinScene}</JoinScene>` : "") +
    (f.quitScene !== undefined ? `<QuitScene>${f.quitScene}</QuitScene>` : "") +
    (f.members ? `<MemChangeCnt>${f.members.length}</MemChangeCnt><MemChangeList>${f.members.map((m) => `<Item>${c(m)}</Item>`).join("")}</MemChangeList>` : "") +
    (f.curMemVer ? `<LastMemVer>${c("v0")}</LastMemVer><CurMemVer>${c(f.curMemVer)}</CurMemVer>` : "") +
    `</xml>`
  );
}
