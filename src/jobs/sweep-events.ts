import { jobId, QUEUES, type JobPayload, type QueueName } from "../queue/catalog";
import type { ServiceDeps } from "../services/context";
import { findUnprocessedEvents } from "../services/events/find-unprocessed";
import { eventJobs } from "../services/events/ingest";
import { findUnprocessedCallbacks } from "../services/wecom/find-unprocessed";
import { findUndelivered } from "../services/notifications/notify";

export interface SweepResult {
  found: number;
  enqueued: number;
  retried: number;
}

type Requeue =
  | { queue: QueueName; job: "process-events"; payload: JobPayload<"process-events">; id: string }
  | { queue: QueueName; job: "process-wecom-callback"; payload: JobPayload<"process-wecom-callback">; id: string }
  | { queue: QueueName; job: "staff-notify"; payload: JobPayload<"staff-notify">; id: string };

/**
 * Re-enqueue events and WeCom callbacks that were stored but not processed in time: Redis lost its data, a producer
 * could not reach it, or a job exhausted its attempts. Jobs keep their deterministic ids, so an
 * event still waiting in the queue is not queued twice.
 */
export async function handleSweepEvents(deps: ServiceDeps, opts: { graceSeconds: number; limit?: number }): Promise<SweepResult> {
  const olderThan = new Date(deps.now().getTime() - opts.graceSeconds * 1000);
  const limit = opts.limit ?? 5000;
  const staleEvents = await findUnprocessedEvents(deps.db, { olderThan, limit });
  const staleCallbacks = await findUnprocessedCallbacks(deps.db, { olderThan, limit });
  const staleNotes = await findUndelivered(deps.db, { olderThan, limit });
  const stale: Requeue[] = [
    ...eventBatches(staleEvents).map((j) => ({ queue: QUEUES.events, job: "process-events" as const, payload: j.payload, id: j.jobId })),
    ...staleCallbacks.map((c) => ({ queue: QUEUES.wecom, job: "process-wecom-callback" as const, payload: { tenantId: c.tenantId, callbackId: c.id }, id: jobId("wc", c.id) })),
    ...staleNotes.map((n) => ({ queue: QUEUES.wecom, job: "staff-notify" as const, payload: { tenantId: n.tenantId, notificationId: n.id }, id: jobId("notify", n.id) })),
  ];
  // found counts events and callbacks; enqueued and retried count jobs (events go EVENT_BATCH per job).
  const result: SweepResult = { found: staleEvents.length + staleCallbacks.length + staleNotes.length, enqueued: 0, retried: 0 };
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
    if (e.job === "process-events") await deps.producer.enqueue("process-events", e.payload, { jobId: id });
    else if (e.job === "process-wecom-callback") await deps.producer.enqueue("process-wecom-callback", e.payload, { jobId: id });
    else await deps.producer.enqueue("staff-notify", e.payload, { jobId: id });
    result.enqueued++;
  }
  if (result.found) deps.logger.info(result, "sweeper re-enqueued unprocessed events");
  return result;
}

/** Stale events as batch jobs, per tenant. */
function eventBatches(rows: { tenantId: string; id: string }[]) {
  const byTenant = new Map<string, string[]>();
  for (const r of rows) {
    const ids = byTenant.get(r.tenantId);
    if (ids) ids.push(r.id);
    else byTenant.set(r.tenantId, [r.id]);
  }
  return [...byTenant].flatMap(([tenantId, ids]) => eventJobs(tenantId, ids));
}
