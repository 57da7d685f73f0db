import { Converter } from "opencc-js/t2cn";

/**
 * The one normalisation pipeline shared by terms, allow entries and the text being checked, so an
 * evasion is undone the same way on both sides. Each input code point folds, on its own, to zero or
 * more output code units:
 * 1. NFKC (full/half width, circled and parenthesised digits, Kangxi radicals, math letters);
 * 2. Greek/Cyrillic look-alikes to Latin (capitals by their capital shape, then lower case);
 * 3. lower case;
 * 4. traditional -> simplified Han, one character to one character (OpenCC's t, hk and tw tables);
 * 5. Chinese numerals -> ASCII digits (十 and 拾 -> "10"), flagged "soft" so the alphanumeric
 *    boundary rule can tell 仅需零元 from 2680元; 百千万亿 stay but are soft too, so 第一百 is no 第一;
 * 6. dropped: whitespace, punctuation, symbols, marks, emoji, control/format/private-use code points
 *    (ZWSP, ZWJ, WJ, BOM, soft hyphen, variation selectors, skin tones) and Hangul fillers, but `%`
 *    stays so 100% never shrinks to 100.
 * Then, over the output stream: runs of the same Han or a-z letter collapse to one (最最最好 -> 最好),
 * and a run of o between written digits becomes 0 (1oo% -> 100%).
 *
 * Folding is per code point, so results never depend on neighbours (except the two stream rules) and
 * every output unit keeps the original UTF-16 span it came from. The per-code-point fold is
 * precomputed once into a 64K table for the BMP; astral code points go through a small cache.
 */

/** A folded unit: code unit in the low 16 bits, SOFT when it came from a Chinese numeral. */
const SOFT = 0x10000;
const DROP = -1;

/** Han characters that are Chinese numerals, after traditional -> simplified folding. */
const NUMERALS: Record<string, string> = {
  零: "0", 〇: "0", 一: "1", 二: "2", 三: "3", 四: "4", 五: "5", 六: "6", 七: "7", 八: "8", 九: "9", 十: "10",
  壹: "1", 贰: "2", 叁: "3", 肆: "4", 伍: "5", 陆: "6", 柒: "7", 捌: "8", 玖: "9", 拾: "10",
};
/** Multipliers: kept as they are, but soft, so a Chinese number read as a whole is one "word". */
const SOFT_HAN = new Set([..."百千万亿佰仟"]);

/** Capital Greek/Cyrillic letters that look like Latin capitals, folded before lower-casing (Η is H, η is n). */
const UPPER_LOOKALIKE: Record<string, string> = {
  Α: "a", Β: "b", Ε: "e", Ζ: "z", Η: "h", Ι: "i", Κ: "k", Μ: "m", Ν: "n", Ο: "o", Ρ: "p", Τ: "t", Υ: "y", Χ: "x",
  А: "a", В: "b", Е: "e", Ѕ: "s", І: "i", Ј: "j", К: "k", М: "m", Н: "h", О: "o", Р: "p", С: "c", Т: "t", Х: "x", У: "y", Ү: "y", Ԛ: "q", Ԝ: "w", Ӏ: "i",
};
/** Lower-case look-alikes. Only shapes a reader takes for the Latin letter; в, м, н, η, μ are left alone. */
const LOWER_LOOKALIKE: Record<string, string> = {
  α: "a", ε: "e", ι: "i", κ: "k", ν: "v", ο: "o", ρ: "p", τ: "t", υ: "u", χ: "x",
  а: "a", е: "e", ё: "e", і: "i", ї: "i", ј: "j", к: "k", о: "o", р: "p", с: "c", у: "y", х: "x", ѕ: "s", ԁ: "d", һ: "h", ԛ: "q", ԝ: "w", ӏ: "l",
};
/** Dingbat and negative circled digits NFKC leaves alone (❶, ➀, ⓫ …). */
function dingbatDigits(cp: number): string | undefined {
  if (cp >= 0x2776 && cp <= 0x277f) return String(cp - 0x2776 + 1);
  if (cp >= 0x2780 && cp <= 0x2789) return String(cp - 0x2780 + 1);
  if (cp >= 0x278a && cp <= 0x2793) return String(cp - 0x278a + 1);
  if (cp >= 0x24eb && cp <= 0x24f4) return String(cp - 0x24eb + 11);
  if (cp >= 0x24f5 && cp <= 0x24fe) return String(cp - 0x24f5 + 1);
  if (cp === 0x24ff) return "0";
  return undefined;
}

const DROPPED = /^[\p{White_Space}\p{Z}\p{P}\p{S}\p{M}\p{Cc}\p{Cf}\p{Co}\p{Cs}\p{Extended_Pictographic}]$/u;
/** Invisible letters (Hangul fillers) used as separators; \p{L} so the class above misses them. */
const INVISIBLE = new Set([0x115f, 0x1160, 0x3164, 0xffa0]);

export function isHanCode(cp: number): boolean {
  return (cp >= 0x4e00 && cp <= 0x9fff) || (cp >= 0x3400 && cp <= 0x4dbf) || (cp >= 0xf900 && cp <= 0xfaff) || (cp >= 0x20000 && cp <= 0x3134f);
}

let t2s: Map<number, number> | undefined;
/** Traditional -> simplified, one BMP character to one BMP character, built once from OpenCC. */
function simplifiedTable(): Map<number, number> {
  if (t2s) return t2s;
  const codes: number[] = [];
  for (let c = 0x3400; c <= 0x9fff; c++) if (c < 0x4dc0 || c >= 0x4e00) codes.push(c);
  // One call per table on newline-joined characters: OpenCC's phrase trie cannot span the newlines,
  // so each character converts on its own, fifty times faster than 27k separate calls.
  const joined = codes.map((c) => String.fromCharCode(c)).join("\n");
  const tables = (["t", "hk", "tw"] as const).map((from) => Converter({ from, to: "cn" })(joined).split("\n"));
  const map = new Map<number, number>();
  codes.forEach((c, i) => {
    for (const table of tables) {
      const out = table[i];
      if (out === undefined || out.length !== 1 || out.charCodeAt(0) === c) continue;
      map.set(c, out.charCodeAt(0));
      break;
    }
  });
  t2s = map;
  return map;
}

/** Fold one code point to its units (see the module comment); the slow path behind the tables. */
function foldCodePoint(cp: number): number[] {
  if (INVISIBLE.has(cp)) return [];
  const dingbat = dingbatDigits(cp);
  const nfkc = dingbat ?? String.fromCodePoint(cp).normalize("NFKC");
  const out: number[] = [];
  for (const ch of nfkc) {
    const folded = UPPER_LOOKALIKE[ch] ?? [...ch.toLowerCase()].map((l) => LOWER_LOOKALIKE[l] ?? l).join("");
    for (const f of folded) {
      let c = f.codePointAt(0)!;
      if (INVISIBLE.has(c) || DROPPED.test(f)) {
        if (c !== 0x25) continue;
      }
      c = simplifiedTable().get(c) ?? c;
      const s = String.fromCodePoint(c);
      const digits = NUMERALS[s];
      if (digits !== undefined) {
        for (const d of digits) out.push(d.charCodeAt(0) | SOFT);
      } else if (SOFT_HAN.has(s)) out.push(c | SOFT);
      else if (c > 0xffff) out.push(0xd800 + ((c - 0x10000) >> 10), 0xdc00 + ((c - 0x10000) & 0x3ff));
      else out.push(c);
    }
  }
  return out;
}

interface Tables {
  /** BMP code unit -> folded unit, DROP, or -(2 + index) into `expansions` for several units. */
  bmp: Int32Array;
  expansions: number[][];
  maxExpansion: number;
}
let tables: Tables | undefined;

function foldTables(): Tables {
  if (tables) return tables;
  const bmp = new Int32Array(0x10000);
  const expansions: number[][] = [];
  const index = new Map<string, number>();
  let maxExpansion = 1;
  for (let c = 0; c < 0x10000; c++) {
    if (c >= 0xd800 && c <= 0xdfff) {
      bmp[c] = DROP; // lone surrogates; pairs are decoded before the lookup
      continue;
    }
    const units = foldCodePoint(c);
    if (units.length === 0) bmp[c] = DROP;
    else if (units.length === 1) bmp[c] = units[0]!;
    else {
      const key = units.join(",");
      let at = index.get(key);
      if (at === undefined) {
        at = expansions.push(units) - 1;
        index.set(key, at);
      }
      bmp[c] = -2 - at;
      maxExpansion = Math.max(maxExpansion, units.length);
    }
  }
  tables = { bmp, expansions, maxExpansion };
  return tables;
}

const astral = new Map<number, number[]>();
const ASTRAL_CACHE_MAX = 4096;
function foldAstral(cp: number): number[] {
  const hit = astral.get(cp);
  if (hit) return hit;
  const units = foldCodePoint(cp);
  if (astral.size < ASTRAL_CACHE_MAX) astral.set(cp, units);
  return units;
}

/**
 * The normalised form of a text in reusable typed arrays: `codes[k]` is a UTF-16 unit, `soft[k]` is 1
 * for a Chinese numeral, `starts[k]`/`ends[k]` its original span. Only the first `length` entries are
 * valid, and the next call overwrites them: callers copy what they keep.
 */
export interface Normalized {
  length: number;
  codes: Uint16Array;
  soft: Uint8Array;
  starts: Int32Array;
  ends: Int32Array;
}

const buf: Normalized = { length: 0, codes: new Uint16Array(1024), soft: new Uint8Array(1024), starts: new Int32Array(1024), ends: new Int32Array(1024) };

function ensure(capacity: number): void {
  if (buf.codes.length >= capacity) return;
  const size = Math.max(capacity, buf.codes.length * 2);
  const grow = <T extends Uint16Array | Uint8Array | Int32Array>(old: T, next: T): T => {
    next.set(old);
    return next;
  };
  buf.codes = grow(buf.codes, new Uint16Array(size));
  buf.soft = grow(buf.soft, new Uint8Array(size));
  buf.starts = grow(buf.starts, new Int32Array(size));
  buf.ends = grow(buf.ends, new Int32Array(size));
}

/** Whether a run of this unit collapses to one: Han (BMP) and a-z. */
function collapses(c: number): boolean {
  return (c >= 0x61 && c <= 0x7a) || (c >= 0x4e00 && c <= 0x9fff) || (c >= 0x3400 && c <= 0x4dbf);
}

/**
 * Normalise into the shared buffer (the hot path: no allocation per character). The returned object
 * is reused by the next call.
 */
export function normalizeInto(text: string): Normalized {
  const { bmp, expansions, maxExpansion } = foldTables();
  const n = text.length;
  ensure(n + 16);
  let codes = buf.codes;
  let soft = buf.soft;
  let starts = buf.starts;
  let ends = buf.ends;
  let len = 0;
  let last = -1; // last emitted unit with its SOFT bit, -1 at the start
  let oRun = -1; // index where a run of o after a written digit began
  for (let i = 0; i < n; ) {
    const c = text.charCodeAt(i);
    let v: number;
    let units: number[] | undefined;
    let next = i + 1;
    if (c >= 0xd800 && c <= 0xdbff && next < n) {
      const lo = text.charCodeAt(next);
      if (lo >= 0xdc00 && lo <= 0xdfff) {
        next++;
        units = foldAstral(((c - 0xd800) << 10) + (lo - 0xdc00) + 0x10000);
        v = units.length === 0 ? DROP : -2;
      } else v = DROP;
    } else {
      v = bmp[c]!;
      if (v < DROP) units = expansions[-2 - v];
    }
    if (v === DROP) {
      i = next;
      continue;
    }
    let count = 1;
    if (units) {
      count = units.length;
      if (len + count + (n - next) + 16 > codes.length) {
        ensure(len + count + (n - next) + maxExpansion + 16);
        ({ codes, soft, starts, ends } = buf);
      }
    }
    for (let u = 0; u < count; u++) {
      const w = units ? units[u]! : v;
      const code = w & 0xffff;
      if (code === 0x6f && oRun < 0 && last >= 0x30 && last <= 0x39) oRun = len; // "o" right after a written digit
      if (oRun >= 0 && code !== 0x6f) {
        // The o-run ends: between written digits (or before %), it was zeros.
        if ((w >= 0x30 && w <= 0x39) || w === 0x25) for (let k = oRun; k < len; k++) codes[k] = 0x30;
        oRun = -1;
      }
      if (w === last && oRun < 0 && collapses(code)) {
        ends[len - 1] = next;
        continue;
      }
      codes[len] = code;
      soft[len] = w > 0xffff ? 1 : 0;
      starts[len] = i;
      ends[len] = next;
      len++;
      last = w;
    }
    i = next;
  }
  buf.length = len;
  return buf;
}

/** The normalised text and each normalised unit's original span (end exclusive); for tests and list tooling. */
export function normalizeForMatch(text: string): { text: string; starts: number[]; ends: number[] } {
  const r = normalizeInto(text);
  let out = "";
  for (let k = 0; k < r.length; k += 4096) out += String.fromCharCode(...r.codes.subarray(k, Math.min(r.length, k + 4096)));
  return { text: out, starts: Array.from(r.starts.subarray(0, r.length)), ends: Array.from(r.ends.subarray(0, r.length)) };
}

/**
 * A term's characters after the per-character folds but before numerals become digits and before
 * separators drop, for pinyin variants: 全國第一！ -> 全国第一. Build time only.
 */
export function hanSkeleton(term: string): string {
  let out = "";
  for (const ch of term.normalize("NFKC")) {
    const cp = ch.codePointAt(0)!;
    out += isHanCode(cp) ? String.fromCodePoint(simplifiedTable().get(cp) ?? cp) : ch;
  }
  return out;
}
