import { UnrecoverableError } from "bullmq";
import { JOBS } from "../queue/catalog";
import { systemCtx, type ServiceDeps } from "../services/context";
import { processEvents, recordEventFailure, type ProcessResult } from "../services/events/process";

/**
 * Handler of `process-events`: parse the payload first (a malformed payload is never retried), then
 * apply the batch in one transaction. When the batch fails, its events are applied one by one so a
 * single bad event cannot hold back the rest; the failures are recorded on their rows and the job
 * throws, to be retried with backoff for just those (the others are processed by then).
 */
export async function handleProcessEvents(deps: ServiceDeps, data: unknown, meta: { jobId?: string | undefined }): Promise<ProcessResult> {
  const parsed = JOBS["process-events"].payload.safeParse(data);
  if (!parsed.success) throw new UnrecoverableError(`bad process-events payload: ${parsed.error.message}`);
  const { tenantId, eventIds } = parsed.data;
  const ctx = { ...systemCtx(deps, tenantId, "events-worker", meta.jobId), logger: deps.logger.child({ jobId: meta.jobId, tenantId, events: eventIds.length }) };
  try {
    return await processEvents({ ctx, eventIds });
  } catch (err) {
    if (eventIds.length === 1) {
      await recordEventFailure({ ctx, eventIds, error: reason(err) }).catch(() => {});
      throw err;
    }
    ctx.logger.warn({ err: reason(err) }, "event batch failed; applying its events one by one");
  }
  const total: ProcessResult = { processed: 0, skipped: 0 };
  let firstError: Error | null = null;
  for (const id of eventIds) {
    try {
      const r = await processEvents({ ctx, eventIds: [id] });
      total.processed += r.processed;
      total.skipped += r.skipped;
    } catch (err) {
      firstError ??= err as Error;
      await recordEventFailure({ ctx, eventIds: [id], error: reason(err) }).catch(() => {});
    }
  }
  if (firstError) throw firstError;
  return total;
}

/** The database's own words when a query failed (drizzle wraps them with the whole statement and its parameters). */
function reason(err: unknown): string {
  const e = err as Error & { cause?: unknown };
  return e.cause instanceof Error ? e.cause.message : e.message;
}
