import { normalizeForMatch } from "../compliance/normalize";

/**
 * Does a patient's message ask to stop marketing messages (退订)? Conservative on purpose: the
 * whole message, once normalised like the compliance checker does (full/half width, case,
 * traditional characters, spaces, punctuation and emoji dropped, repeats collapsed) and once
 * courtesy words are set aside (请, 麻烦, 谢谢, 了, 吧, 我, 你们 …), must consist of opt-out
 * phrases: 退订, TD, 取消订阅, 拒收, 不要再发了, 别发了, 不想再收到广告, 怎么退订 … optionally with
 * a refusal such as 不需要 or 不感兴趣. Anything else in the message keeps it a conversation for
 * the consultant: 不退订 (a negation), 退订会员卡怎么办 (an object that is not our messages),
 * 取消 alone (an appointment), 别发了我自己过来. Staff can always mark a contact by hand.
 */

const norm = (s: string) => normalizeForMatch(s).text;
const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
/** Alternatives, normalised the same way as the message, longest first so the regex prefers them. */
const alt = (words: readonly string[]) => `(?:${[...new Set(words.map(norm))].sort((a, b) => b.length - a.length).map(esc).join("|")})`;

/** Courtesy and filler: set aside before matching (never negations such as 不 or 没). */
const FILLER = [
  "请", "麻烦", "麻烦你", "帮我", "帮忙", "谢谢", "谢了", "多谢", "感谢", "了", "啦", "吧", "呢", "哈", "呀", "啊", "哦", "噢", "喔", "嗯", "好吗", "好吧", "可以吗", "行吗",
  "以后", "今后", "之后", "再也", "都", "你们", "你", "您", "我", "给我", "这边", "的", "这种", "这些", "这类", "此类", "任何", "所有", "一下", "直接", "就",
];
const MESSAGES = ["消息", "信息", "短信", "广告", "推送", "推广", "营销", "活动", "通知", "资讯", "东西", "内容", "订阅"];
const SEND = ["发", "发送", "推送", "推", "给发", "发来", "骚扰", "打扰"];
const RECEIVE = ["收到", "接收", "收", "接到", "看到"];
const STOP_WORDS = ["不要", "别", "不用", "勿", "停止", "无需", "不必", "不许", "不准"];
const WANT_NOT = ["不想", "不愿意", "不愿", "不需要", "不要", "拒绝"];
const REFUSAL = ["不需要", "不用", "不感兴趣", "没兴趣", "没有兴趣", "不要", "算", "好", "ok"];

const msg = `${alt(MESSAGES)}*`;
const OPT_OUT = [
  // 退订 / TD / 回复TD / 我要退订 / 怎么退订 / 退订消息
  `(?:回复|回)?(?:td|unsubscribe|stop)`,
  `(?:要|想|申请|怎么|怎样|如何|怎幺)?${alt(["退订", "拒收", "取消订阅", "取消关注", "取消推送", "停止推送", "屏蔽"])}${msg}`,
  // 取消消息推送: the normaliser collapses 消消, so the phrase is listed whole.
  `${alt(["取消消息", "取消消息推送"])}${msg}`,
  // 取消(所有)消息推送
  `${alt(["取消", "关闭", "停止"])}${alt(MESSAGES)}+`,
  // 不要再发了 / 别再给我发广告 / 不用再推送
  `${alt(STOP_WORDS)}再?${alt(SEND)}${msg}`,
  // 不想再收到广告
  `${alt(WANT_NOT)}再?${alt(RECEIVE)}${msg}`,
  // 不要广告 / 拒绝推销
  `${alt(["不要", "拒绝", "不需要"])}${alt(["广告", "推销", "推广", "营销"])}${msg}`,
].join("|");

/** A negation right before the verb: 不退订, 不要退订, 没退订, 不用取消订阅. */
const NEGATED_RE = new RegExp(`${alt(["不", "没", "没有", "别", "勿", "无需", "未", "不要", "不用", "不需要", "不想", "不必"])}${alt(["退订", "拒收", "取消订阅", "td"])}`);
const FILLER_RE = new RegExp(alt(FILLER), "g");
const WHOLE_RE = new RegExp(`^(?:${alt(REFUSAL)}|${OPT_OUT})*$`);
const ANY_RE = new RegExp(`(?:${OPT_OUT})`);

/** Longer messages are conversations, whatever they contain. */
const MAX_CHARS = 60;

export function isOptOutRequest(text: string): boolean {
  if (text.length > MAX_CHARS * 4) return false;
  const n = norm(text);
  if (!n || n.length > MAX_CHARS) return false;
  const core = n.replace(FILLER_RE, "");
  if (!core || NEGATED_RE.test(core)) return false;
  return WHOLE_RE.test(core) && ANY_RE.test(core);
}
