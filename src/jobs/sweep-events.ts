import { jobId, QUEUES } from "../queue/catalog";
import type { ServiceDeps } from "../services/context";
import { findUnprocessedEvents } from "../services/events/find-unprocessed";

export interface SweepResult {
  found: number;
  enqueued: number;
  retried: number;
}

/**
 * Re-enqueue events that were stored but not processed in time: Redis lost its data, a producer
 * could not reach it, or a job exhausted its attempts. Jobs keep their deterministic ids, so an
 * event still waiting in the queue is not queued twice.
 */
export async function handleSweepEvents(deps: ServiceDeps, opts: { graceSeconds: number; limit?: number }): Promise<SweepResult> {
  const eventsQueue = deps.producer.queue(QUEUES.events);
  const olderThan = new Date(deps.now().getTime() - opts.graceSeconds * 1000);
  const stale = await findUnprocessedEvents(deps.db, { olderThan, limit: opts.limit ?? 5000 });
  const result: SweepResult = { found: stale.length, enqueued: 0, retried: 0 };
  for (const e of stale) {
    const id = jobId("ev", e.id);
    const job = await eventsQueue.getJob(id);
    if (job) {
      const state = await job.getState();
      if (state === "failed") {
        await job.retry("failed");
        result.retried++;
        continue;
      }
      if (state !== "completed" && state !== "unknown") continue; // waiting, active or delayed: in hand
      await job.remove().catch(() => {});
    }
    await deps.producer.enqueue("process-event", { tenantId: e.tenantId, eventId: e.id }, { jobId: id });
    result.enqueued++;
  }
  if (result.found) deps.logger.info(result, "sweeper re-enqueued unprocessed events");
  return result;
}
