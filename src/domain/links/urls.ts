/**
 * Finding links in WeCom copy. Chinese copy puts URLs right against Han characters and full-width
 * punctuation (「详情见https://x.cn/a，欢迎咨询」), so a URL is a run of ASCII URL characters only:
 * anything outside ASCII ends it. Trailing ASCII punctuation that ends a sentence (. , ; : ! ? ' ")
 * is left out, and a closing bracket only belongs to the URL when the URL opened it (Wikipedia-style
 * paths), as linkifiers do. URLs whose path holds raw non-ASCII characters are cut at the first
 * one; percent-encode them in copy.
 */

export interface FoundUrl {
  url: string;
  /** Offsets in the text: text.slice(start, end) === url. */
  start: number;
  end: number;
}

// Scheme, then at least one host character, then the RFC 3986 characters (ASCII only).
const URL_RE = /\bhttps?:\/\/[A-Za-z0-9\-._~:/?#[\]@!$&'()*+,;=%]+/gi;
const TRAILING = new Set([".", ",", ";", ":", "!", "?", "'", "\"", "*"]);
const PAIRS: Record<string, string> = { ")": "(", "]": "[" };

function count(s: string, ch: string): number {
  let n = 0;
  for (const c of s) if (c === ch) n++;
  return n;
}

function trimEnd(url: string): string {
  let u = url;
  for (;;) {
    const last = u.at(-1);
    if (last === undefined) return u;
    if (TRAILING.has(last)) {
      u = u.slice(0, -1);
      continue;
    }
    const open = PAIRS[last];
    if (open !== undefined && count(u, last) > count(u, open)) {
      u = u.slice(0, -1);
      continue;
    }
    return u;
  }
}

/** Every http(s) URL in the text, in order (duplicates included). */
export function findUrls(text: string): FoundUrl[] {
  const out: FoundUrl[] = [];
  for (const m of text.matchAll(URL_RE)) {
    const url = trimEnd(m[0]);
    // Needs a host: "https://" alone or "https://." is not a link.
    if (!/^https?:\/\/[A-Za-z0-9[]/i.test(url)) continue;
    out.push({ url, start: m.index, end: m.index + url.length });
  }
  return out;
}

/** The text with each found URL replaced by replace(url). */
export function replaceUrls(text: string, found: readonly FoundUrl[], replace: (url: string) => string): string {
  let out = "";
  let at = 0;
  for (const f of found) {
    out += text.slice(at, f.start) + replace(f.url);
    at = f.end;
  }
  return out + text.slice(at);
}
