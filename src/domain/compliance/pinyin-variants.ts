import { pinyin } from "pinyin-pro";
import { hanSkeleton, isHanCode } from "./normalize";

/**
 * Mixed spellings of a term, as evaders write them (zui好, 根zhi, 最gao级): one Han character, or for
 * terms of three or more up to two, replaced by its toneless pinyin syllable. At least one character
 * always stays literal, because a fully romanised term (zuihao) is an ordinary word in pinyin chat and
 * would flag too much. Only characters with a single toneless reading are replaced (行 xing/hang is
 * skipped), so a variant never stands for a reading the term does not have. Terms of 2–6 Han
 * characters only: longer phrases are rarely respelled and would multiply the pattern count.
 *
 * The returned strings are raw; the caller normalises them with the same pipeline as everything else.
 */
export function syllableVariants(term: string, syllable: (han: string) => string | undefined): string[] {
  const chars = [...hanSkeleton(term)];
  const han = chars.flatMap((ch, i) => (isHanCode(ch.codePointAt(0)!) ? [i] : []));
  if (han.length < 2 || han.length > 6) return [];
  const replaceable = han.filter((i) => syllable(chars[i]!) !== undefined);
  const out: string[] = [];
  const spell = (swap: number[]) => chars.map((ch, i) => (swap.includes(i) ? syllable(ch)! : ch)).join("");
  for (const [x, i] of replaceable.entries()) {
    out.push(spell([i]));
    if (han.length < 3) continue;
    for (const j of replaceable.slice(x + 1)) out.push(spell([i, j]));
  }
  return out;
}

/**
 * The first letters of a term of four or more Han characters (全国第一 -> qgdy), or undefined when the
 * term has anything but Han characters or a character whose readings start with different letters.
 * Shorter initials (gz for 根治) are ordinary abbreviations and would flag too much.
 */
export function initialsOf(term: string, initial: (han: string) => string | undefined): string | undefined {
  const chars = [...hanSkeleton(term)].filter((ch) => !/^[\p{White_Space}\p{P}\p{S}]$/u.test(ch));
  if (chars.length < 4 || !chars.every((ch) => isHanCode(ch.codePointAt(0)!))) return undefined;
  let out = "";
  for (const ch of chars) {
    const i = initial(ch);
    if (i === undefined) return undefined;
    out += i;
  }
  return out;
}

/** pinyin-pro lookups, memoised per build: the toneless syllable when unique, else undefined. */
export function pinyinLookups(): { syllable: (han: string) => string | undefined; initial: (han: string) => string | undefined } {
  const syllables = new Map<string, string | undefined>();
  const initials = new Map<string, string | undefined>();
  const unique = (list: string[]) => {
    const set = new Set(list.filter((s) => /^[a-z]+$/.test(s)));
    return set.size === 1 ? [...set][0] : undefined;
  };
  return {
    syllable(han) {
      if (!syllables.has(han)) syllables.set(han, unique(pinyin(han, { toneType: "none", multiple: true, type: "array" }).map((s) => s.replace(/ü/g, "v"))));
      return syllables.get(han);
    },
    initial(han) {
      if (!initials.has(han)) initials.set(han, unique(pinyin(han, { toneType: "none", multiple: true, type: "array" }).map((s) => s.charAt(0))));
      return initials.get(han);
    },
  };
}
