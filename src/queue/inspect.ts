import type { Job } from "bullmq";
import { QUEUES, type QueueName } from "./catalog";
import type { Producer } from "./producer";

/**
 * A read of the BullMQ queues for the queue dashboard: counts per state, the failed jobs of one
 * tenant (payloads carry `tenantId`), and a retry of one of them. Counts are queue-wide (every
 * tenant of the deployment shares the queues); jobs are only ever shown and retried per tenant.
 */
export const JOB_STATES = ["waiting", "active", "delayed", "failed", "completed"] as const;
export type JobState = (typeof JOB_STATES)[number];

export interface QueueCounts {
  queue: QueueName;
  counts: Record<JobState, number>;
}

export async function queueCounts(producer: Producer): Promise<QueueCounts[]> {
  return Promise.all(
    Object.values(QUEUES).map(async (queue) => {
      const c = await producer.queue(queue).getJobCounts("waiting", "prioritized", "active", "delayed", "failed", "completed");
      // Prioritized jobs wait too (BullMQ keeps them in a set of their own).
      return { queue, counts: { waiting: (c.waiting ?? 0) + (c.prioritized ?? 0), active: c.active ?? 0, delayed: c.delayed ?? 0, failed: c.failed ?? 0, completed: c.completed ?? 0 } };
    }),
  );
}

export interface FailedJob {
  queue: QueueName;
  id: string;
  name: string;
  failedReason: string;
  attemptsMade: number;
  attempts: number;
  failedAt: Date | null;
  createdAt: Date;
}

const tenantOf = (job: Job): string | undefined => {
  const data = job.data as { tenantId?: unknown } | undefined;
  return typeof data?.tenantId === "string" ? data.tenantId : undefined;
};

function failedView(queue: QueueName, job: Job): FailedJob {
  return {
    queue,
    id: String(job.id),
    name: job.name,
    failedReason: job.failedReason ?? "",
    attemptsMade: job.attemptsMade,
    attempts: job.opts.attempts ?? 1,
    failedAt: job.finishedOn ? new Date(job.finishedOn) : null,
    createdAt: new Date(job.timestamp),
  };
}

/**
 * The newest failed jobs of one tenant across every queue. Reads at most `scan` failed jobs per
 * queue (newest first; BullMQ keeps failed jobs a week), so a flood of another tenant's failures
 * can hide older ones of this tenant, never show them.
 */
export async function failedJobsOf(producer: Producer, tenantId: string, opts: { scan?: number; limit?: number } = {}): Promise<FailedJob[]> {
  const scan = opts.scan ?? 500;
  const all = await Promise.all(
    Object.values(QUEUES).map(async (queue) => {
      const jobs = await producer.queue(queue).getFailed(0, scan - 1);
      return jobs.filter((j): j is Job => Boolean(j) && tenantOf(j) === tenantId).map((j) => failedView(queue, j));
    }),
  );
  return all
    .flat()
    .sort((a, b) => (b.failedAt?.getTime() ?? 0) - (a.failedAt?.getTime() ?? 0))
    .slice(0, opts.limit ?? 50);
}

export type RetryOutcome = { outcome: "retried"; job: FailedJob } | { outcome: "missing" } | { outcome: "not-failed"; state: string };

/** Move one failed job of the tenant back to waiting (its attempts start over). Another tenant's job is "missing". */
export async function retryFailedJob(producer: Producer, queue: QueueName, jobId: string, tenantId: string): Promise<RetryOutcome> {
  const job = await producer.queue(queue).getJob(jobId);
  if (!job || tenantOf(job) !== tenantId) return { outcome: "missing" };
  const state = await job.getState();
  if (state !== "failed") return { outcome: "not-failed", state };
  const view = failedView(queue, job);
  await job.retry("failed");
  return { outcome: "retried", job: view };
}
