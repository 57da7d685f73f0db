import { sql } from "drizzle-orm";
import type { Ctx } from "../context";
import { listContacts } from "./list";
import type { ContactView } from "./schemas";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * The contacts with these ids that the caller may see (consultants: their own; phones masked per
 * role), in one query: e.g. the sample contacts of a tag rule dry run. Unknown ids are left out.
 */
export async function contactsByIds({ ctx, ids }: { ctx: Ctx; ids: string[] }): Promise<Map<string, ContactView>> {
  const wanted = [...new Set(ids.filter((id) => UUID.test(id)))].slice(0, 200);
  if (!wanted.length) return new Map();
  const page = await listContacts({ ctx, input: { limit: wanted.length }, where: sql`c.id in (${sql.join(wanted.map((id) => sql`${id}::uuid`), sql`, `)})` });
  return new Map(page.items.map((c) => [c.id, c]));
}
