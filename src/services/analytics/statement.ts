import { sql } from "drizzle-orm";
import type { DbOrTx } from "../../db/client";
import type { Ctx } from "../context";

/**
 * Run one read of the dashboards (metrics, attribution, calendar reports) in its own short
 * transaction, with settings for index-driven aggregates over tens or hundreds of thousands of rows
 * (one round trip, set_config with is_local: as SET LOCAL):
 * - JIT and parallel workers off: compiling costs more than it saves, and a request's statements
 *   already run side by side on their own connections;
 * - work_mem 64 MB: a quarter's facts grouped by day, and the hashes of joined rows, fit in memory
 *   instead of spilling to disk;
 * - random_page_cost 1.1: the tables are hot in memory, so a few thousand rows probe an index
 *   instead of hashing a whole table;
 * - `hashJoins`: no nested loops or merge joins, for statements over CTEs the planner has no
 *   statistics for (it guesses 200 rows and probes indexes once per row).
 * In a caller's transaction (`ctx.tx`) it runs there as it is: settings would outlast the statement.
 */
export async function analyticsStatement<R>(ctx: Ctx, f: (tx: DbOrTx) => Promise<R>, opts: { hashJoins?: boolean } = {}): Promise<R> {
  if (ctx.tx) return f(ctx.tx);
  return ctx.deps.db.transaction(async (tx) => {
    await tx.execute(sql`select set_config('jit', 'off', true), set_config('max_parallel_workers_per_gather', '0', true),
      set_config('work_mem', '64MB', true), set_config('random_page_cost', '1.1', true),
      set_config('enable_nestloop', ${opts.hashJoins ? "off" : "on"}, true), set_config('enable_mergejoin', ${opts.hashJoins ? "off" : "on"}, true)`);
    return f(tx);
  });
}
