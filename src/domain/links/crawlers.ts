/**
 * Link-preview fetchers and other robots that open a tracked link without a person behind it:
 * chat apps unfurling a URL, search engines, scanners, scripts. WeChat and WeCom themselves only
 * fetch a URL for a card preview or a safety scan; their in-app browser (MicroMessenger, wxwork)
 * is a person and counts. A robot still gets the redirect (previews keep working) but its request
 * is not a click and makes no article_read event. Heuristic by User-Agent: a robot that poses as
 * a phone browser is counted; the double-click window then limits it to one click a minute.
 */
const ROBOT_RE = new RegExp(
  [
    "bot\\b", "bot/", "spider", "crawl", "slurp", "preview", "scanner", "facebookexternalhit", "embedly", "vkshare",
    "whatsapp", "telegram", "skypeuripreview", "discord", "slack", "twitterbot", "linkedinbot", "applebot", "bingpreview",
    "baiduspider", "bytespider", "yisouspider", "sogou", "360spider", "petalbot", "headlesschrome", "phantomjs", "lighthouse",
    "curl/", "wget/", "python-requests", "python-urllib", "aiohttp", "httpx", "go-http-client", "okhttp", "java/", "apache-httpclient",
    "libwww", "axios/", "node-fetch", "undici", "got \\(", "scrapy", "postmanruntime", "insomnia", "feedfetcher", "mediapartners",
  ].join("|"),
  "i",
);

/** True for requests that should not count as a person's click (HEAD, no User-Agent, a known robot). */
export function isRobotRequest(method: string, userAgent: string | undefined | null): boolean {
  if (method.toUpperCase() === "HEAD") return true;
  const ua = (userAgent ?? "").trim();
  if (ua.length < 10) return true;
  return ROBOT_RE.test(ua);
}
