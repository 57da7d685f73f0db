import { fail } from "./errors";

// WeCom maps the JSON body onto a typed request and "parses what it can": an unparsable body or a
// field of the wrong type is dropped and the response's errmsg gets "Warning: wrong json format."
// appended. JsonBody reproduces that: readers return undefined for a wrong-typed field and raise the
// shared warning flag; the dispatcher appends the warning to whatever the handler answers.

interface WarnFlag {
  warned: boolean;
}

export class JsonBody {
  private constructor(
    private readonly data: Record<string, unknown>,
    private readonly flag: WarnFlag,
  ) {}

  /** Parse a raw request body. Empty → {}; invalid JSON or a non-object → {} with the warning raised. */
  static parse(raw: string): JsonBody {
    const flag: WarnFlag = { warned: false };
    if (raw.trim() === "") return new JsonBody({}, flag);
    try {
      const parsed: unknown = JSON.parse(raw);
      if (isRecord(parsed)) return new JsonBody(parsed, flag);
    } catch {
      // fall through
    }
    flag.warned = true;
    return new JsonBody({}, flag);
  }

  static of(data: Record<string, unknown>): JsonBody {
    return new JsonBody(data, { warned: false });
  }

  get warned(): boolean {
    return this.flag.warned;
  }

  has(key: string): boolean {
    return this.data[key] !== undefined && this.data[key] !== null;
  }

  raw(key: string): unknown {
    return this.data[key];
  }

  toJSON(): Record<string, unknown> {
    return this.data;
  }

  private warn(): undefined {
    this.flag.warned = true;
    return undefined;
  }

  /** Strings; numbers are accepted and stringified (agentid, party ids travel either way). */
  str(key: string): string | undefined {
    const v = this.data[key];
    if (v === undefined || v === null) return undefined;
    if (typeof v === "string") return v;
    if (typeof v === "number") return String(v);
    return this.warn();
  }

  /** Integers; numeric strings are accepted. */
  int(key: string): number | undefined {
    const v = this.data[key];
    if (v === undefined || v === null) return undefined;
    if (typeof v === "number" && Number.isInteger(v)) return v;
    if (typeof v === "string" && /^-?\d+$/.test(v.trim())) return Number(v);
    if (typeof v === "boolean") return v ? 1 : 0;
    return this.warn();
  }

  bool(key: string): boolean | undefined {
    const v = this.data[key];
    if (v === undefined || v === null) return undefined;
    if (typeof v === "boolean") return v;
    if (v === 0 || v === 1) return v === 1;
    if (v === "true" || v === "false") return v === "true";
    return this.warn();
  }

  strList(key: string): string[] | undefined {
    const v = this.data[key];
    if (v === undefined || v === null) return undefined;
    if (!Array.isArray(v)) return this.warn();
    const out: string[] = [];
    for (const item of v) {
      if (typeof item === "string") out.push(item);
      else if (typeof item === "number") out.push(String(item));
      else this.warn();
    }
    return out;
  }

  intList(key: string): number[] | undefined {
    const v = this.data[key];
    if (v === undefined || v === null) return undefined;
    if (!Array.isArray(v)) return this.warn();
    const out: number[] = [];
    for (const item of v) {
      if (typeof item === "number" && Number.isInteger(item)) out.push(item);
      else if (typeof item === "string" && /^\d+$/.test(item)) out.push(Number(item));
      else this.warn();
    }
    return out;
  }

  obj(key: string): JsonBody | undefined {
    const v = this.data[key];
    if (v === undefined || v === null) return undefined;
    if (!isRecord(v)) return this.warn();
    return new JsonBody(v, this.flag);
  }

  objList(key: string): JsonBody[] | undefined {
    const v = this.data[key];
    if (v === undefined || v === null) return undefined;
    if (!Array.isArray(v)) return this.warn();
    const out: JsonBody[] = [];
    for (const item of v) {
      if (isRecord(item)) out.push(new JsonBody(item, this.flag));
      else this.warn();
    }
    return out;
  }

  /** A required non-empty string, else `errcode` (40058 unless the API has a dedicated "missing" code). */
  requireStr(key: string, errcode = 40058): string {
    const v = this.str(key);
    if (v === undefined || v === "") return fail(errcode, `${key} missing`);
    return v;
  }
}

export function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

export const utf8Bytes = (s: string): number => Buffer.byteLength(s, "utf8");
/** Characters as WeCom counts them for "≤ 30 chars" rules (code points, so 汉字 count as one). */
export const charCount = (s: string): number => [...s].length;
