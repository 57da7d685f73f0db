import { describe, expect, it } from "vitest";
import { isRobotRequest } from "../../src/domain/links/crawlers";
import { findUrls, replaceUrls } from "../../src/domain/links/urls";

const urls = (text: string) => findUrls(text).map((f) => f.url);

describe("findUrls", () => {
  it.each([
    ["详情见https://clinic.example.cn/a/1，欢迎咨询", ["https://clinic.example.cn/a/1"]],
    ["看这里：http://x.cn/p?id=3&t=祛痘。", ["http://x.cn/p?id=3&t="]],
    ["链接（https://x.cn/a）", ["https://x.cn/a"]],
    ["see https://x.cn/a.", ["https://x.cn/a"]],
    ["(see https://x.cn/a)", ["https://x.cn/a"]],
    ["https://en.wikipedia.org/wiki/Acne_(disease) ok", ["https://en.wikipedia.org/wiki/Acne_(disease)"]],
    ["两个：https://a.cn/1、https://b.cn/2！", ["https://a.cn/1", "https://b.cn/2"]],
    ["https://mp.weixin.qq.com/s/AbC-123_x#rd】", ["https://mp.weixin.qq.com/s/AbC-123_x#rd"]],
    ["HTTPS://X.CN/A,", ["HTTPS://X.CN/A"]],
    ["no scheme www.x.cn or ftp://x.cn or https:// alone", []],
    ["「https://x.cn/a?b=1」", ["https://x.cn/a?b=1"]],
  ])("%s", (text, want) => {
    expect(urls(text)).toEqual(want);
  });

  it("replaces each URL in place and keeps the text around it", () => {
    const text = "新文章https://a.cn/1，再看https://b.cn/2。";
    expect(replaceUrls(text, findUrls(text), (u) => `<${u.slice(-1)}>`)).toBe("新文章<1>，再看<2>。");
  });
});

describe("isRobotRequest", () => {
  it.each([
    ["GET", "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 MicroMessenger/8.0.47(0x18002f2f) NetType/WIFI Language/zh_CN", false],
    ["GET", "Mozilla/5.0 (Linux; Android 13) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/116.0 Mobile Safari/537.36 wxwork/4.1.20 MicroMessenger/7.0.1", false],
    ["HEAD", "Mozilla/5.0 (iPhone) MicroMessenger/8.0", true],
    ["GET", "", true],
    ["GET", undefined, true],
    ["GET", "facebookexternalhit/1.1", true],
    ["GET", "Mozilla/5.0 (compatible; Bytespider; spider-feedback@bytedance.com)", true],
    ["GET", "Mozilla/5.0 (compatible; Baiduspider/2.0; +http://www.baidu.com/search/spider.html)", true],
    ["GET", "TelegramBot (like TwitterBot)", true],
    ["GET", "curl/8.4.0", true],
    ["GET", "python-requests/2.31.0", true],
    ["GET", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/120.0 Safari/537.36", true],
  ])("%s %s", (method, ua, robot) => {
    expect(isRobotRequest(method, ua)).toBe(robot);
  });
});
