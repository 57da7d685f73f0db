import { describe, expect, it } from "vitest";
import { isOptOutRequest } from "../../src/domain/consent/opt-out";

describe("isOptOutRequest: messages that ask to stop marketing", () => {
  it.each([
    "退订",
    "TD",
    "td",
    "Ｔ Ｄ",
    "退订。",
    "退订！！！",
    "回复TD",
    "我要退订",
    "退订，谢谢",
    "请退订",
    "麻烦帮我退订一下",
    "取消订阅",
    "取消消息推送",
    "拒收",
    "不要再发了",
    "别发了",
    "别再发了！",
    "别再给我发广告了",
    "以后不要再给我发消息了",
    "不想再收到你们的广告了，谢谢",
    "不需要，别发了",
    "不感兴趣，退订",
    "怎么退订？",
    "請不要再發了",
    "退订 🙏",
    "STOP",
    "别打扰我了",
    "不要广告",
    "退订退订",
  ])("%s", (text) => {
    expect(isOptOutRequest(text)).toBe(true);
  });
});

describe("isOptOutRequest: conversations that mention the words but do not ask to stop", () => {
  it.each([
    "不退订",
    "我不要退订",
    "不用退订",
    "没有退订",
    "为什么要退订",
    "退订会员卡怎么办?",
    "退订的话会员卡还能用吗",
    "取消",
    "取消预约",
    "我想取消明天的预约",
    "别发了我自己过来",
    "不要再发价格了我已经知道了？",
    "你好，想咨询祛痘",
    "不要",
    "不需要",
    "好的",
    "t",
    "发",
    "发一下价格",
    "",
    "   ",
    "退订".padEnd(80, "。") + "另外想问下祛痘多少钱",
  ])("%j", (text) => {
    expect(isOptOutRequest(text)).toBe(false);
  });

  it("ignores long messages whatever they contain", () => {
    expect(isOptOutRequest(`你好，${"我想了解一下祛痘的疗程和价格，".repeat(5)}退订`)).toBe(false);
  });
});
