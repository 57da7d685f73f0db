import { z } from "zod";
import { NotFoundError, ValidationError, zodIssues } from "../../errors";
import { QUEUES } from "../../queue/catalog";
import { failedJobsOf, queueCounts, retryFailedJob, type FailedJob, type QueueCounts } from "../../queue/inspect";
import { audit, requirePermission, withTransaction, type Ctx } from "../context";
import { eventStats, type EventStats } from "../events/stats";

export interface QueueDashboard {
  /** Per queue and state, for the whole deployment (the queues are shared by every tenant). */
  queues: QueueCounts[];
  /** This tenant's event pipeline, from PostgreSQL. */
  events: EventStats;
  /** This tenant's failed jobs, newest first. */
  failed: FailedJob[];
}

/** The queue dashboard of an admin: queue depths, the tenant's event pipeline and its failed jobs with their errors. */
export async function queueDashboard({ ctx, limit = 30 }: { ctx: Ctx; limit?: number }): Promise<QueueDashboard> {
  requirePermission(ctx, "queues:read");
  const [queues, events, failed] = await Promise.all([queueCounts(ctx.deps.producer), eventStats({ ctx }), failedJobsOf(ctx.deps.producer, ctx.tenantId, { limit })]);
  return { queues, events, failed };
}

export const RetryJobInput = z.object({
  queue: z.enum(Object.values(QUEUES) as [string, ...string[]]),
  jobId: z.string().min(1).max(300),
});

/**
 * Retry one of the tenant's failed jobs (its attempts start over). Only admins read the queues
 * (queues:read), and retrying re-runs work that already failed: it is audited. A job that is no
 * longer failed (retried meanwhile, or removed) is a ValidationError on `jobId`.
 */
export async function retryQueueJob({ ctx, input }: { ctx: Ctx; input: unknown }): Promise<FailedJob> {
  requirePermission(ctx, "queues:read");
  const p = RetryJobInput.safeParse(input);
  if (!p.success) throw new ValidationError(zodIssues(p.error.issues));
  const queue = p.data.queue as (typeof QUEUES)[keyof typeof QUEUES];
  const r = await retryFailedJob(ctx.deps.producer, queue, p.data.jobId, ctx.tenantId);
  if (r.outcome === "missing") throw new NotFoundError("failed job");
  if (r.outcome === "not-failed") throw new ValidationError([{ field: "jobId", message: `is ${r.state}, not failed` }]);
  await withTransaction(ctx, (tx, ctx) =>
    audit(tx, ctx, { action: "queue.retry", entityType: "job", entityId: `${queue}/${r.job.id}`.slice(0, 128), before: { failedReason: r.job.failedReason.slice(0, 500), attemptsMade: r.job.attemptsMade }, after: { name: r.job.name } }),
  );
  return r.job;
}
