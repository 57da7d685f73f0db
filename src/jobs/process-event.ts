import { UnrecoverableError } from "bullmq";
import { JOBS } from "../queue/catalog";
import { systemCtx, type ServiceDeps } from "../services/context";
import { processEvent, recordEventFailure } from "../services/events/process";

/** Handler of `process-event`: parse the payload first; a malformed payload is never retried. */
export async function handleProcessEvent(deps: ServiceDeps, data: unknown, meta: { jobId?: string | undefined; attemptsMade: number; attempts: number }) {
  const parsed = JOBS["process-event"].payload.safeParse(data);
  if (!parsed.success) throw new UnrecoverableError(`bad process-event payload: ${parsed.error.message}`);
  const { tenantId, eventId } = parsed.data;
  const ctx = { ...systemCtx(deps, tenantId, "events-worker", meta.jobId), logger: deps.logger.child({ jobId: meta.jobId, tenantId, eventId }) };
  try {
    return await processEvent({ ctx, eventId });
  } catch (err) {
    await recordEventFailure({ ctx, eventId, error: (err as Error).message }).catch(() => {});
    throw err;
  }
}
