/**
 * Segment expressions: boolean combinations of tags and contact facts, e.g.
 *   visit:复诊 AND need:祛痘 AND NOT engagement:低
 *   (need:抗衰 OR need:美白) AND spend_12m >= 5000 AND source = "wecom"
 * AND binds tighter than OR; NOT applies to what follows; parentheses group. Keywords are
 * case-insensitive. Errors give the position (0-based UTF-16 offset) of the offending token.
 */

export const SEGMENT_FIELDS = {
  /** Sum of purchases over the last 365 days, yuan. */
  spend_12m: "number",
  /** Number of visits (到诊), ever. */
  visits: "number",
  /** Number of purchases, ever. */
  purchases: "number",
  /** Days since the last visit (contacts who never visited do not match any comparison). */
  days_since_visit: "number",
  /** Days since the contact was added. */
  days_since_added: "number",
  source: "string",
  gender: "string",
  state: "string",
} as const;
export type SegmentField = keyof typeof SEGMENT_FIELDS;

export type SegmentOp = "=" | "!=" | ">" | ">=" | "<" | "<=";

export type SegmentAst =
  | { kind: "and" | "or"; left: SegmentAst; right: SegmentAst }
  | { kind: "not"; expr: SegmentAst }
  | { kind: "tag"; group: string; name: string }
  | { kind: "cmp"; field: SegmentField; op: SegmentOp; value: number | string };

export class SegmentSyntaxError extends Error {
  constructor(
    message: string,
    readonly position: number,
  ) {
    super(`${message} (at position ${position})`);
    this.name = "SegmentSyntaxError";
  }
}

type Tok = { t: "(" | ")" | "and" | "or" | "not" | "op" | "str" | "word"; v: string; pos: number };

function tokenize(src: string): Tok[] {
  const out: Tok[] = [];
  let i = 0;
  while (i < src.length) {
    const ch = src[i]!;
    if (/\s/.test(ch)) {
      i++;
      continue;
    }
    if (ch === "(" || ch === ")") {
      out.push({ t: ch, v: ch, pos: i });
      i++;
      continue;
    }
    const op = /^(>=|<=|!=|=|>|<)/.exec(src.slice(i));
    if (op) {
      out.push({ t: "op", v: op[1]!, pos: i });
      i += op[1]!.length;
      continue;
    }
    if (ch === '"' || ch === "'") {
      const end = src.indexOf(ch, i + 1);
      if (end < 0) throw new SegmentSyntaxError("unterminated string", i);
      out.push({ t: "str", v: src.slice(i + 1, end), pos: i });
      i = end + 1;
      continue;
    }
    const m = /^[^\s()<>=!"']+/.exec(src.slice(i));
    if (!m) throw new SegmentSyntaxError(`unexpected character ${JSON.stringify(ch)}`, i);
    const word = m[0];
    const kw = word.toLowerCase();
    out.push({ t: kw === "and" || kw === "or" || kw === "not" ? kw : "word", v: word, pos: i });
    i += word.length;
  }
  return out;
}

export function parseSegment(src: string): SegmentAst {
  if (!src.trim()) throw new SegmentSyntaxError("the expression is empty", 0);
  if (src.length > 2000) throw new SegmentSyntaxError("the expression is longer than 2000 characters", 2000);
  const toks = tokenize(src);
  let k = 0;
  const peek = () => toks[k];
  const endPos = src.length;
  const expect = (what: string): never => {
    const tok = peek();
    throw new SegmentSyntaxError(`expected ${what}${tok ? `, found ${JSON.stringify(tok.v)}` : ", found the end"}`, tok?.pos ?? endPos);
  };

  const parseOr = (depth: number): SegmentAst => {
    let left = parseAnd(depth);
    while (peek()?.t === "or") {
      k++;
      left = { kind: "or", left, right: parseAnd(depth) };
    }
    return left;
  };
  const parseAnd = (depth: number): SegmentAst => {
    let left = parseUnary(depth);
    while (peek()?.t === "and") {
      k++;
      left = { kind: "and", left, right: parseUnary(depth) };
    }
    return left;
  };
  const parseUnary = (depth: number): SegmentAst => {
    if (peek()?.t === "not") {
      k++;
      return { kind: "not", expr: parseUnary(depth) };
    }
    return parsePrimary(depth);
  };
  const parsePrimary = (depth: number): SegmentAst => {
    const tok = peek();
    if (!tok) return expect("a tag like visit:复诊, a comparison like spend_12m >= 5000, or (");
    if (depth > 50) throw new SegmentSyntaxError("nested too deeply", tok.pos);
    if (tok.t === "(") {
      k++;
      const inner = parseOr(depth + 1);
      if (peek()?.t !== ")") expect(")");
      k++;
      return inner;
    }
    if (tok.t !== "word") return expect("a tag like visit:复诊, a comparison like spend_12m >= 5000, or (");
    k++;
    const colon = tok.v.indexOf(":");
    if (colon > 0) {
      const group = tok.v.slice(0, colon);
      const name = tok.v.slice(colon + 1);
      if (!/^[a-z0-9][a-z0-9_-]*$/.test(group)) throw new SegmentSyntaxError(`"${group}" is not a tag group key`, tok.pos);
      if (!name) throw new SegmentSyntaxError(`a tag name is missing after "${group}:"`, tok.pos + colon + 1);
      return { kind: "tag", group, name };
    }
    const field = tok.v.toLowerCase();
    if (!(field in SEGMENT_FIELDS)) {
      throw new SegmentSyntaxError(`unknown field "${tok.v}" (fields: ${Object.keys(SEGMENT_FIELDS).join(", ")}; tags are written group:name)`, tok.pos);
    }
    const opTok = peek();
    if (opTok?.t !== "op") return expect(`a comparison operator after ${tok.v} (=, !=, >, >=, <, <=)`);
    k++;
    const valTok = peek();
    if (!valTok || (valTok.t !== "word" && valTok.t !== "str")) return expect("a value");
    k++;
    const kind = SEGMENT_FIELDS[field as SegmentField];
    if (kind === "number") {
      const n = Number(valTok.v);
      if (valTok.t === "str" || !Number.isFinite(n)) throw new SegmentSyntaxError(`${field} compares with a number`, valTok.pos);
      return { kind: "cmp", field: field as SegmentField, op: opTok.v as SegmentOp, value: n };
    }
    if (opTok.v !== "=" && opTok.v !== "!=") throw new SegmentSyntaxError(`${field} can only be compared with = or !=`, opTok.pos);
    return { kind: "cmp", field: field as SegmentField, op: opTok.v as SegmentOp, value: valTok.v };
  };

  const ast = parseOr(0);
  if (k < toks.length) expect("AND, OR or the end");
  return ast;
}

/** Tag groups and names an expression refers to (to check they exist). */
export function tagRefs(ast: SegmentAst): { group: string; name: string }[] {
  switch (ast.kind) {
    case "and":
    case "or":
      return [...tagRefs(ast.left), ...tagRefs(ast.right)];
    case "not":
      return tagRefs(ast.expr);
    case "tag":
      return [{ group: ast.group, name: ast.name }];
    default:
      return [];
  }
}
