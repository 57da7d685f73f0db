import { createHash } from "node:crypto";
import { utf8Bytes, type JsonBody } from "../body";
import { fail } from "../errors";
import { ids } from "../ids";
import type { FakeWecomState } from "../state";

// message/send (doc §3.12): touser split by '|', partly invalid still succeeds with invaliduser,
// all invalid → 81013; duplicate check suppresses an identical message within the interval.

const MSGTYPES = new Set(["text", "markdown", "textcard", "image", "voice", "video", "file", "news", "mpnews", "miniprogram_notice", "template_card"]);

function checkBody(body: JsonBody, msgtype: string): void {
  const inner = body.obj(msgtype);
  if (msgtype === "text" || msgtype === "markdown") {
    const content = inner?.str("content");
    if (content === undefined || content === "") fail(44004);
    if (utf8Bytes(content!) > 2048) fail(45002, "content longer than 2048 bytes");
  } else if (msgtype === "textcard") {
    const title = inner?.str("title");
    const description = inner?.str("description");
    if (!title) fail(41016);
    if (!description) fail(41033);
    if (!inner?.str("url")) fail(41010);
    if (utf8Bytes(title!) > 128 || utf8Bytes(description!) > 512) fail(45002, "textcard title ≤ 128 bytes, description ≤ 512 bytes");
  } else if (!inner) {
    fail(40058, `${msgtype} missing`);
  }
}

export function sendAppMessage(state: FakeWecomState, body: JsonBody): Record<string, unknown> {
  const agentid = body.int("agentid");
  if (agentid === undefined) return fail(41011);
  if (agentid !== state.agentId) return fail(40056);
  const msgtype = body.str("msgtype");
  if (msgtype === undefined || !MSGTYPES.has(msgtype)) return fail(40008, msgtype);
  const touser = (body.str("touser") ?? "").split("|").filter((u) => u !== "");
  const toparty = (body.str("toparty") ?? "").split("|").filter((u) => u !== "");
  const totag = (body.str("totag") ?? "").split("|").filter((u) => u !== "");
  if (touser.length === 0 && toparty.length === 0 && totag.length === 0) return fail(40058, "touser, toparty and totag are all empty");
  if (touser.length > 1000) return fail(40032);
  if (toparty.length > 100 || totag.length > 100) return fail(40058, "toparty/totag have more than 100 entries");
  checkBody(body, msgtype);

  const reachable = (u: string) => {
    const s = state.findStaff(u);
    return s !== undefined && s.visible && s.active && !s.resigned;
  };
  const valid: string[] = [];
  const invalid: string[] = [];
  if (touser.includes("@all")) valid.push(...[...state.staff.values()].filter((s) => reachable(s.userid)).map((s) => s.userid));
  else for (const u of touser) (reachable(u) ? valid : invalid).push(u);
  // Departments and tags are not modelled: every party/tag id is reported invalid.
  if (valid.length === 0) return fail(81013);

  const now = state.nowSec();
  const interval = Math.min(body.int("duplicate_check_interval") ?? 1800, 4 * 3600);
  const fingerprint = createHash("sha256").update(JSON.stringify(body.toJSON())).digest("hex");
  const duplicate =
    body.int("enable_duplicate_check") === 1 &&
    state.appMessages.some((m) => !m.duplicate && now - m.sentAt < interval && fingerprintOf(m.body) === fingerprint);
  const msgid = ids.appMsgId();
  state.appMessages.push({
    msgid,
    msgtype,
    delivered: duplicate ? [] : [...new Set(valid.map((u) => state.findStaff(u)!.userid))],
    invalidUsers: invalid,
    body: body.toJSON(),
    sentAt: now,
    duplicate,
  });
  return {
    invaliduser: invalid.join("|"),
    invalidparty: toparty.join("|"),
    invalidtag: totag.join("|"),
    unlicenseduser: "",
    msgid,
  };
}

const fingerprintOf = (body: Record<string, unknown>) => createHash("sha256").update(JSON.stringify(body)).digest("hex");
