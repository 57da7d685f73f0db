import { sql, type SQL } from "drizzle-orm";
import type { SegmentAst, SegmentOp } from "../../domain/segments/parse";
import { tagBit } from "../tagging/tag-state";

const OPS: Record<SegmentOp, string> = { "=": "=", "!=": "<>", ">": ">", ">=": ">=", "<": "<", "<=": "<=" };

/** A tag term's key in the resolved maps (ids, ordinals): "group:name". */
const tagKey = (t: Extract<SegmentAst, { kind: "tag" }>) => `${t.group}:${t.name}`;

/**
 * A segment AST as a SQL condition over `contacts c` (tenant filtering is the caller's). Tags are
 * resolved to ids first (`tagIds`: "group:name" -> id), so each tag term is a probe of
 * contact_tags' primary key rather than a lookup through tag names. It reads contact_tags, not the
 * tag bits: it also runs inside the transaction that just wrote a contact's tags (calendar
 * triggers), before that contact's bits are rewritten.
 */
export function segmentWhere(ast: SegmentAst, nowIso: string, tagIds: ReadonlyMap<string, string> = new Map(), cid: SQL = sql`c.id`): SQL {
  const now = sql`${nowIso}::timestamptz`;
  const sub = (a: SegmentAst) => segmentWhere(a, nowIso, tagIds, cid);
  const events = (type: string) => sql`from events e where e.tenant_id = c.tenant_id and e.contact_id = c.id and e.type = ${type} and e.occurred_at <= ${now}`;
  switch (ast.kind) {
    case "and":
      return sql`(${sub(ast.left)} and ${sub(ast.right)})`;
    case "or":
      return sql`(${sub(ast.left)} or ${sub(ast.right)})`;
    case "not":
      return sql`(not ${sub(ast.expr)})`;
    case "tag": {
      // A probe of contact_tags' primary key (contact_id, tag_id): microseconds per contact.
      const id = tagIds.get(tagKey(ast));
      if (id) return sql`exists (select 1 from contact_tags ct where ct.contact_id = ${cid} and ct.tag_id = ${id}::uuid)`;
      return sql`exists (select 1 from contact_tags ct join tags t on t.id = ct.tag_id join tag_groups g on g.id = t.group_id where ct.contact_id = ${cid} and g.key = ${ast.group} and t.name = ${ast.name})`;
    }
    case "cmp": {
      if (typeof ast.value === "string") {
        const col = sql.raw({ source: "c.source", gender: "c.gender", state: "c.source_state" }[ast.field as "source" | "gender" | "state"]);
        return ast.op === "=" ? sql`coalesce(${col} = ${ast.value}, false)` : sql`(${col} is distinct from ${ast.value})`;
      }
      const value: SQL = {
        spend_12m: sql`(select coalesce(sum(case when jsonb_typeof(e.payload -> 'amount') = 'number' then (e.payload ->> 'amount')::float8 end), 0) ${events("purchase")} and e.occurred_at > ${now} - interval '365 days')`,
        visits: sql`(select count(*)::float8 ${events("visit")})`,
        purchases: sql`(select count(*)::float8 ${events("purchase")})`,
        days_since_visit: sql`(select floor(extract(epoch from (${now} - max(e.occurred_at))) / 86400)::float8 ${events("visit")})`,
        days_since_added: sql`floor(extract(epoch from (${now} - c.created_at)) / 86400)::float8`,
        source: sql`null`,
        gender: sql`null`,
        state: sql`null`,
      }[ast.field];
      return sql`coalesce(${value} ${sql.raw(OPS[ast.op])} ${ast.value}::float8, false)`;
    }
  }
}

/** The terms of a top-level conjunction (`a AND b AND NOT c` -> [a, b, NOT c]). */
function conjuncts(ast: SegmentAst): SegmentAst[] {
  return ast.kind === "and" ? [...conjuncts(ast.left), ...conjuncts(ast.right)] : [ast];
}

function usesFields(ast: SegmentAst): boolean {
  switch (ast.kind) {
    case "and":
    case "or":
      return usesFields(ast.left) || usesFields(ast.right);
    case "not":
      return usesFields(ast.expr);
    case "tag":
      return false;
    case "cmp":
      return true;
  }
}

/**
 * The count of a segment as one SQL statement, for expressions the bits alone cannot count (field
 * terms, or tags from the 64th on). When the expression is a conjunction with a tag term, the
 * count starts from that tag's members instead of reading every contact of the tenant:
 * - a tag without a bit (the rarest, by `size`): its members walked index-only in the tag index,
 *   which holds exactly those tags' rows, every other term probed per member;
 * - else the tags with bits: one scan of contact_tag_state testing the bits of every such term
 *   (`a AND NOT b`: a required and a forbidden mask), every other term probed per contact left.
 * Deleted contacts are excluded by a probe of the small partial index of deleted contacts, unless
 * field terms need the contact row anyway.
 */
export function segmentCount(
  ast: SegmentAst,
  nowIso: string,
  tagIds: ReadonlyMap<string, string>,
  tenantId: string,
  size: (tagId: string) => number,
  ordinals: ReadonlyMap<string, number> = new Map(),
): { query: SQL; drivenBy: "tag-index" | "tag-bits" | "contacts" } {
  const terms = conjuncts(ast);
  const where = (t: SegmentAst, cid: SQL) => segmentWhere(t, nowIso, tagIds, cid);
  const drivers = terms.flatMap((t, i) => (t.kind === "tag" && tagIds.has(tagKey(t)) && tagBit(ordinals.get(tagKey(t))) === 0n ? [{ i, id: tagIds.get(tagKey(t))! }] : []));
  if (drivers.length) {
    const driver = drivers.reduce((a, b) => (size(b.id) < size(a.id) ? b : a));
    const rest = terms.filter((_, i) => i !== driver.i);
    const fields = rest.some(usesFields);
    const cid = sql`d.contact_id`;
    const conds = rest.map((t) => where(t, cid));
    const from = fields
      ? sql`contact_tags d join contacts c on c.id = d.contact_id and c.tenant_id = ${tenantId}::uuid and c.deleted_at is null`
      : sql`contact_tags d`;
    if (!fields) conds.push(sql`not exists (select 1 from contacts x where x.id = d.contact_id and x.deleted_at is not null)`);
    // The driving tag is looked up among the tenant's tags in the statement itself: its members are
    // that tenant's contacts, read from contact_tags_tag_contact_idx (tag, contact) index-only (a
    // tag without a bit has no row with in_tag_bits, so the partial index holds all of them).
    const query = sql`select count(*)::int as n from ${from} where d.tag_id = (select t.id from tags t where t.id = ${driver.id}::uuid and t.tenant_id = ${tenantId}::uuid) and not d.in_tag_bits${sql.join(
      conds.map((c) => sql` and ${c}`),
      sql``,
    )}`;
    return { query, drivenBy: "tag-index" };
  }
  // Tag terms (tag or NOT tag) with a bit become masks on one scan of contact_tag_state.
  let required = 0n;
  let forbidden = 0n;
  const rest = terms.filter((t) => {
    const tag = t.kind === "tag" ? t : t.kind === "not" && t.expr.kind === "tag" ? t.expr : null;
    const bit = tag ? tagBit(ordinals.get(tagKey(tag))) : 0n;
    if (!tag || !bit) return true;
    if (t.kind === "tag") required |= bit;
    else forbidden |= bit;
    return false;
  });
  if (required || forbidden) {
    const masks = [...(required ? [sql`(s.tag_bits & ${required.toString()}::bigint) = ${required.toString()}::bigint`] : []), ...(forbidden ? [sql`(s.tag_bits & ${forbidden.toString()}::bigint) = 0`] : [])];
    const query = sql`select count(*)::int as n from contact_tag_state s join contacts c on c.id = s.contact_id and c.tenant_id = ${tenantId}::uuid and c.deleted_at is null
      where s.tenant_id = ${tenantId}::uuid and ${sql.join(masks, sql` and `)}${sql.join(
        rest.map((t) => sql` and ${where(t, sql`c.id`)}`),
        sql``,
      )}`;
    return { query, drivenBy: "tag-bits" };
  }
  return { query: sql`select count(*)::int as n from contacts c where c.tenant_id = ${tenantId}::uuid and c.deleted_at is null and ${where(ast, sql`c.id`)}`, drivenBy: "contacts" };
}

/**
 * The count of an expression made only of tags (AND, OR, NOT), as one scan of contact_tag_state:
 * each tag is a bit of the contact's tag_bits (its ordinal), so `visit:复诊 AND need:祛痘 AND NOT
 * spending:高消费` is two bit tests per contact instead of joins over contact_tags. Null when the
 * expression has a field term or a tag without a bit (ordinal 63 or more).
 */
export function segmentBitsCount(ast: SegmentAst, ordinals: ReadonlyMap<string, number>, tenantId: string): SQL | null {
  const pred = (a: SegmentAst): SQL | null => {
    switch (a.kind) {
      case "and":
      case "or": {
        const l = pred(a.left);
        const r = pred(a.right);
        return l && r ? sql`(${l} ${sql.raw(a.kind)} ${r})` : null;
      }
      case "not": {
        const e = pred(a.expr);
        return e ? sql`(not ${e})` : null;
      }
      case "tag": {
        const bit = tagBit(ordinals.get(tagKey(a)));
        return bit ? sql`(s.tag_bits & ${bit.toString()}::bigint) <> 0` : null;
      }
      case "cmp":
        return null;
    }
  };
  const p = pred(ast);
  if (!p) return null;
  return sql`select count(*)::int as n from contact_tag_state s where s.tenant_id = ${tenantId}::uuid and ${p} and not exists (select 1 from contacts x where x.id = s.contact_id and x.deleted_at is not null)`;
}
