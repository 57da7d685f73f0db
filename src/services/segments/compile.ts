import { sql, type SQL } from "drizzle-orm";
import type { SegmentAst, SegmentOp } from "../../domain/segments/parse";

const OPS: Record<SegmentOp, string> = { "=": "=", "!=": "<>", ">": ">", ">=": ">=", "<": "<", "<=": "<=" };

/**
 * A segment AST as a SQL condition over `contacts c` (tenant filtering is the caller's). Tags are
 * resolved to ids first (`tagIds`: "group:name" -> id), so each tag term is a semi-join on
 * contact_tags(tag_id) rather than a per-contact lookup through tag names.
 */
export function segmentWhere(ast: SegmentAst, nowIso: string, tagIds: ReadonlyMap<string, string> = new Map()): SQL {
  const now = sql`${nowIso}::timestamptz`;
  const events = (type: string) => sql`from events e where e.tenant_id = c.tenant_id and e.contact_id = c.id and e.type = ${type} and e.occurred_at <= ${now}`;
  switch (ast.kind) {
    case "and":
      return sql`(${segmentWhere(ast.left, nowIso, tagIds)} and ${segmentWhere(ast.right, nowIso, tagIds)})`;
    case "or":
      return sql`(${segmentWhere(ast.left, nowIso, tagIds)} or ${segmentWhere(ast.right, nowIso, tagIds)})`;
    case "not":
      return sql`(not ${segmentWhere(ast.expr, nowIso, tagIds)})`;
    case "tag": {
      const id = tagIds.get(`${ast.group}:${ast.name}`);
      if (id) return sql`c.id in (select ct.contact_id from contact_tags ct where ct.tag_id = ${id}::uuid)`;
      return sql`exists (select 1 from contact_tags ct join tags t on t.id = ct.tag_id join tag_groups g on g.id = t.group_id where ct.contact_id = c.id and g.key = ${ast.group} and t.name = ${ast.name})`;
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
