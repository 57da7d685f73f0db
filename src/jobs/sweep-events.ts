import { jobId, QUEUES, type JobPayload, type QueueName } from "../queue/catalog";
import type { ServiceDeps } from "../services/context";
import { findUnprocessedEvents } from "../services/events/find-unprocessed";
import { findUnprocessedCallbacks } from "../services/wecom/find-unprocessed";

export interface SweepResult {
  found: number;
  enqueued: number;
  retried: number;
}

type Requeue = { queue: QueueName; job: "process-event"; payload: JobPayload<"process-event">; id: string } | { queue: QueueName; job: "process-wecom-callback"; payload: JobPayload<"process-wecom-callback">; id: string };

/**
 * Re-enqueue events and WeCom callbacks that were stored but not processed in time: Redis lost its data, a producer
 * could not reach it, or a job exhausted its attempts. Jobs keep their deterministic ids, so an
 * event still waiting in the queue is not queued twice.
 */
export async function handleSweepEvents(deps: ServiceDeps, opts: { graceSeconds: number; limit?: number }): Promise<SweepResult> {
  const olderThan = new Date(deps.now().getTime() - opts.graceSeconds * 1000);
  const limit = opts.limit ?? 5000;
  const stale: Requeue[] = [
    ...(await findUnprocessedEvents(deps.db, { olderThan, limit })).map((e) => ({ queue: QUEUES.events, job: "process-event" as const, payload: { tenantId: e.tenantId, eventId: e.id }, id: jobId("ev", e.id) })),
    ...(await findUnprocessedCallbacks(deps.db, { olderThan, limit })).map((c) => ({ queue: QUEUES.wecom, job: "process-wecom-callback" as const, payload: { tenantId: c.tenantId, callbackId: c.id }, id: jobId("wc", c.id) })),
  ];
  const result: SweepResult = { found: stale.length, enqueued: 0, retried: 0 };
  for (const e of stale) {
    const id = e.id;
    const job = await deps.producer.queue(e.queue).getJob(id);
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
    if (e.job === "process-event") await deps.producer.enqueue("process-event", e.payload, { jobId: id });
    else await deps.producer.enqueue("process-wecom-callback", e.payload, { jobId: id });
    result.enqueued++;
  }
  if (result.found) deps.logger.info(result, "sweeper re-enqueued unprocessed events");
  return result;
}
