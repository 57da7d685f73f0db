/**
 * The console's message catalogue: Simplified Chinese (the default) and English. Every string the
 * console shows goes through `translator(locale)`; templates use the `{{t "key"}}` helper.
 * `{name}` placeholders are filled from the params. `en` must have exactly the keys of `zh`
 * (checked by the type); a unit test checks that every key a template uses exists.
 */
import * as core from "./messages/core";
import * as marketing from "./messages/marketing";
import * as content from "./messages/content";
import * as consultant from "./messages/consultant";
import * as admin from "./messages/admin";
import * as sidebar from "./messages/sidebar";

export const LOCALES = ["zh-CN", "en"] as const;
export type Locale = (typeof LOCALES)[number];
export const DEFAULT_LOCALE: Locale = "zh-CN";
export const LANG_COOKIE = "siyu_lang";

const AREAS = [core, marketing, content, consultant, admin, sidebar];
// The areas' keys never overlap: a spread would silently keep only the last.
for (const [i, a] of AREAS.entries()) {
  for (const key of Object.keys(a.zh)) {
    const other = AREAS.findIndex((b, j) => j !== i && Object.hasOwn(b.zh, key));
    if (other >= 0) throw new Error(`console message "${key}" is defined in two catalogues`);
  }
}

const zh = { ...core.zh, ...marketing.zh, ...content.zh, ...consultant.zh, ...admin.zh, ...sidebar.zh };

export type MessageKey = keyof typeof zh;
export type Messages = Record<MessageKey, string>;

const en: Messages = { ...core.en, ...marketing.en, ...content.en, ...consultant.en, ...admin.en, ...sidebar.en };

const CATALOGUES: Record<Locale, Messages> = { "zh-CN": zh, en };

export type Translate = (key: MessageKey, params?: Record<string, unknown>) => string;

export function isLocale(v: unknown): v is Locale {
  return typeof v === "string" && (LOCALES as readonly string[]).includes(v);
}

export function hasMessage(key: string): key is MessageKey {
  return Object.hasOwn(zh, key);
}

export function translator(locale: Locale): Translate {
  const m = CATALOGUES[locale];
  return (key, params) => {
    const text = m[key] ?? key;
    if (!params) return text;
    return text.replace(/\{(\w+)\}/g, (all, name: string) => (params[name] === undefined || params[name] === null ? all : String(params[name])));
  };
}
