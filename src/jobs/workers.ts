import { Worker, type Job } from "bullmq";
import cron from "node-cron";
import { createRedis } from "../queue/connection";
import { jobId, JOBS, QUEUES, type QueueName } from "../queue/catalog";
import { runWecomSync } from "../services/wecom/sync";
import { pushContactTags } from "../services/wecom/push-tags";
import { startAllWecomSyncs } from "../services/wecom/sync-all";
import { allTenantIds, runNightlyTagging } from "../services/tagging/nightly";
import { snapshotSegments } from "../services/segments/segments";
import { runSetBased } from "../services/tagging/set-based";
import { forgetActiveRules } from "../services/tagging/rule-set";
import { systemCtx } from "../services/context";
import { jobDuration, jobsProcessed } from "../metrics";
import type { ServiceDeps } from "../services/context";
import { handleProcessEvents } from "./process-events";
import { handleProcessWecomCallback } from "./process-wecom-callback";
import { handleSweepEvents } from "./sweep-events";
import { deliverNotification } from "../services/notifications/notify";
import { runWecomTransfers, tenantsWithOpenTransfers } from "../services/leads/transfers";
import { regradeFadingLeads } from "../services/leads/regrade";
import { sweepSegmentEnrollments, tenantsWithSegmentEnrollment } from "../services/calendars/triggers";
import { breachSla, remindSla, sweepSla } from "../services/leads/sla";
import { dueDigests, sendDailyDigest } from "../services/leads/sop";
import { localDate } from "../domain/leads/sop";
import { deliverBatch } from "../services/delivery/deliver";
import { pollAndRearm } from "../services/delivery/results";
import { sweepDelivery } from "../services/delivery/sweep";
import { evaluateAlerts, tenantsWithAlertRules } from "../services/alerts/evaluate";

export const WORKER_NAMES = ["events", "wecom", "maintenance", "leads", "delivery", "scheduler"] as const;
export type WorkerName = (typeof WORKER_NAMES)[number];

export interface RunningWorker {
  name: WorkerName;
  close(): Promise<void>;
}

/** Dispatch a job of `queue` to its handler from the catalog. */
async function dispatch(deps: ServiceDeps, queue: QueueName, job: Job): Promise<unknown> {
  const meta = { jobId: job.id, attemptsMade: job.attemptsMade, attempts: job.opts.attempts ?? 1 };
  switch (job.name) {
    case "process-events":
      return handleProcessEvents(deps, job.data, meta);
    case "process-wecom-callback":
      return handleProcessWecomCallback(deps, job.data);
    case "wecom-push-tags":
      return pushContactTags({ deps, ...JOBS["wecom-push-tags"].payload.parse(job.data) });
    case "wecom-sync": {
      const p = JOBS["wecom-sync"].payload.parse(job.data);
      return runWecomSync({ deps, ...p });
    }
    case "wecom-sync-all":
      return startAllWecomSyncs(deps);
    case "tagging-nightly-all": {
      // One job per tenant and day: a retried or doubled tick does not run a tenant twice.
      const { day } = JOBS["tagging-nightly-all"].payload.parse(job.data);
      const ids = await allTenantIds(deps);
      await deps.producer.enqueueMany("tagging-nightly", ids.map((tenantId) => ({ payload: { tenantId, day }, jobId: jobId("tag-nightly", tenantId, day) })));
      return ids.length;
    }
    case "tagging-nightly": {
      const { tenantId } = JOBS["tagging-nightly"].payload.parse(job.data);
      const r = await runNightlyTagging({ deps, tenantId });
      // Lead grades follow: recency fades for leads nobody signalled lately.
      await regradeFadingLeads(deps, tenantId);
      return r;
    }
    case "tagging-backfill": {
      const { tenantId } = JOBS["tagging-backfill"].payload.parse(job.data);
      forgetActiveRules(tenantId); // this process may hold the previous version for a few seconds
      return runSetBased({ ctx: systemCtx(deps, tenantId, "tagging-backfill"), mode: "backfill" });
    }
    case "segments-snapshot": {
      const { day } = JOBS["segments-snapshot"].payload.parse(job.data);
      let n = 0;
      for (const tenantId of await allTenantIds(deps)) n += await snapshotSegments({ ctx: systemCtx(deps, tenantId, "segments-snapshot"), day });
      return n;
    }
    case "wecom-transfers": {
      const { tenantId } = JOBS["wecom-transfers"].payload.parse(job.data);
      const ids = tenantId ? [tenantId] : await tenantsWithOpenTransfers(deps);
      let n = 0;
      for (const id of ids) n += (await runWecomTransfers(deps, id)).refreshed;
      return n;
    }
    case "staff-notify": {
      const { tenantId, notificationId } = JOBS["staff-notify"].payload.parse(job.data);
      return deliverNotification(deps, tenantId, notificationId);
    }
    case "calendar-enroll-sweep": {
      let n = 0;
      for (const tenantId of await tenantsWithSegmentEnrollment(deps)) {
        const r = await sweepSegmentEnrollments(deps, tenantId);
        n += r.enrolled + r.ended;
      }
      return n;
    }
    case "sweep-events":
      return handleSweepEvents(deps, { graceSeconds: deps.config.SWEEP_AFTER_SECONDS });
    case "lead-sla-remind": {
      const p = JOBS["lead-sla-remind"].payload.parse(job.data);
      return remindSla(deps, { tenantId: p.tenantId, leadId: p.leadId, dueAt: new Date(p.dueAt) });
    }
    case "lead-sla-breach": {
      const p = JOBS["lead-sla-breach"].payload.parse(job.data);
      return breachSla(deps, { tenantId: p.tenantId, leadId: p.leadId, dueAt: new Date(p.dueAt) });
    }
    case "lead-sla-sweep": {
      const { reason } = JOBS["lead-sla-sweep"].payload.parse(job.data);
      return sweepSla(deps, { rearm: reason === "schedule" ? "near" : "all" });
    }
    case "lead-digest-all": {
      // One job per tenant and local day: ticks, retries and extra schedulers add none.
      const due = await dueDigests(deps);
      await deps.producer.enqueueMany("lead-digest", due.map(({ tenantId, day }) => ({ payload: { tenantId, day }, jobId: jobId("lead-digest", tenantId, day) })));
      return due.length;
    }
    case "lead-digest":
      return sendDailyDigest({ deps, ...JOBS["lead-digest"].payload.parse(job.data) });
    case "delivery-batch": {
      const p = JOBS["delivery-batch"].payload.parse(job.data);
      const r = await deliverBatch(deps, { tenantId: p.tenantId, postId: p.postId, senderStaffId: p.senderStaffId, minute: new Date(p.minute) });
      // WeCom said "later" (rate limits): the sends are planned again; BullMQ's backoff retries the batch.
      if (r.outcome === "retry") throw new Error("WeCom asked to retry later; the batch's sends are planned again");
      return r;
    }
    case "delivery-poll":
      return pollAndRearm(deps, JOBS["delivery-poll"].payload.parse(job.data));
    case "delivery-sweep": {
      const { reason } = JOBS["delivery-sweep"].payload.parse(job.data);
      return sweepDelivery(deps, { reason });
    }
    case "alerts-evaluate-all": {
      // One job per tenant and tick: retries and extra schedulers add none.
      const { at } = JOBS["alerts-evaluate-all"].payload.parse(job.data);
      const ids = await tenantsWithAlertRules(deps);
      await deps.producer.enqueueMany("alerts-evaluate", ids.map((tenantId) => ({ payload: { tenantId, at }, jobId: jobId("alerts", tenantId, at) })));
      return ids.length;
    }
    case "alerts-evaluate": {
      const { tenantId } = JOBS["alerts-evaluate"].payload.parse(job.data);
      return evaluateAlerts({ deps, tenantId });
    }
    default:
      throw new Error(`queue ${queue} has no handler for job ${job.name}`);
  }
}

export function startQueueWorker(deps: ServiceDeps, redisUrl: string, queue: QueueName, concurrency: number): RunningWorker {
  const connection = createRedis(redisUrl, "worker");
  const worker = new Worker(
    queue,
    async (job) => {
      const end = jobDuration.startTimer({ queue, job: job.name });
      try {
        const out = await dispatch(deps, queue, job);
        jobsProcessed.inc({ queue, job: job.name, outcome: "completed" });
        return out;
      } catch (err) {
        jobsProcessed.inc({ queue, job: job.name, outcome: "failed" });
        deps.logger.warn({ queue, job: job.name, jobId: job.id, attempt: job.attemptsMade + 1, err: (err as Error).message }, "job failed");
        throw err;
      } finally {
        end();
      }
    },
    { connection, prefix: deps.config.QUEUE_PREFIX, concurrency, autorun: true },
  );
  worker.on("error", (err) => deps.logger.error({ queue, err: err.message }, "worker error"));
  return {
    name: queue,
    close: async () => {
      await worker.close();
      await connection.quit().catch(() => connection.disconnect());
    },
  };
}

/**
 * Cron ticks only enqueue, with a time-bucketed job id, so any number of scheduler processes
 * produce one job per tick. Sweeps also run at start so a restart recovers stragglers at once; the
 * lead SLA sweep at start re-arms every first-contact timer from PostgreSQL.
 */
export function startScheduler(deps: ServiceDeps): RunningWorker {
  // Daily jobs are keyed and dated by the local day (TIMEZONE) their cron fires on.
  const today = () => localDate(new Date(deps.now()), deps.config.TIMEZONE);
  const enqueueSweep = (reason: "schedule" | "startup") => {
    const bucket = new Date(deps.now()).toISOString().slice(0, 16).replace(/[-T:]/g, "");
    return Promise.all([
      deps.producer.enqueue("sweep-events", { reason }, { jobId: jobId("sweep", reason, bucket) }).catch((err: Error) => deps.logger.warn({ err: err.message }, "could not enqueue sweep")),
      deps.producer.enqueue("lead-sla-sweep", { reason }, { jobId: jobId("sla-sweep", reason, bucket) }).catch((err: Error) => deps.logger.warn({ err: err.message }, "could not enqueue the lead SLA sweep")),
      deps.producer.enqueue("delivery-sweep", { reason }, { jobId: jobId("dlv-sweep", reason, bucket) }).catch((err: Error) => deps.logger.warn({ err: err.message }, "could not enqueue the delivery sweep")),
    ]);
  };
  void enqueueSweep("startup");
  const task = cron.schedule("* * * * *", () => void enqueueSweep("schedule"), { timezone: deps.config.TIMEZONE });
  // Contacts entering a calendar's segment are enrolled (and leaving ones ended) every 5 minutes.
  const enrollments = cron.schedule(
    "*/5 * * * *",
    () => {
      const at = new Date(deps.now()).toISOString().slice(0, 16).replace(/[-T:]/g, "");
      void deps.producer.enqueue("calendar-enroll-sweep", { at }, { jobId: jobId("cal-enroll", at) }).catch((err: Error) => deps.logger.warn({ err: err.message }, "could not enqueue the enrollment sweep"));
    },
    { timezone: deps.config.TIMEZONE },
  );
  // Nightly full WeCom sync at 03:00 local time (one job per day, however many schedulers run),
  // and the follow-up of customer transfers (离职继承) WeCom completes 24 h after they start.
  const nightly = cron.schedule(
    "0 3 * * *",
    () => {
      const day = today();
      void deps.producer.enqueue("wecom-sync-all", { reason: "schedule" }, { jobId: jobId("wsync-all", day) }).catch((err: Error) => deps.logger.warn({ err: err.message }, "could not enqueue the nightly WeCom sync"));
      void deps.producer.enqueue("wecom-transfers", {}, { jobId: jobId("wtransfer-all", day) }).catch((err: Error) => deps.logger.warn({ err: err.message }, "could not enqueue the transfer follow-up"));
    },
    { timezone: deps.config.TIMEZONE },
  );
  // Time-based tag rules (沉睡, spending windows, engagement decay) at 02:30 local time.
  const tagging = cron.schedule(
    "30 2 * * *",
    () => {
      const day = today();
      void deps.producer
        .enqueue("tagging-nightly-all", { day }, { jobId: jobId("tag-nightly-all", day) })
        .catch((err: Error) => deps.logger.warn({ err: err.message }, "could not enqueue the nightly tagging pass"));
    },
    { timezone: deps.config.TIMEZONE },
  );
  // Segment sizes after the tagging pass, for trends, dated by the local day they are taken on (in
  // Asia/Shanghai 04:00 is 20:00 UTC the day before: a UTC date would label them a day early).
  const snapshots = cron.schedule(
    "0 4 * * *",
    () => {
      const day = today();
      void deps.producer.enqueue("segments-snapshot", { day }, { jobId: jobId("seg-snap", day) }).catch((err: Error) => deps.logger.warn({ err: err.message }, "could not enqueue segment snapshots"));
    },
    { timezone: deps.config.TIMEZONE },
  );
  // Consultants' daily digest at 08:30 in each tenant's own time zone: a quarter-hourly tick finds
  // the tenants where it is due (every zone's offset is a multiple of 15 minutes).
  const digests = cron.schedule(
    "*/15 * * * *",
    () => {
      const at = new Date(deps.now()).toISOString().slice(0, 16).replace(/[-T:]/g, "");
      void deps.producer.enqueue("lead-digest-all", { at }, { jobId: jobId("lead-digest-all", at) }).catch((err: Error) => deps.logger.warn({ err: err.message }, "could not enqueue the lead digests"));
    },
    { timezone: deps.config.TIMEZONE },
  );
  // Anomaly alerts (数据异常预警) every 15 minutes, per tenant with rules.
  const alerts = cron.schedule(
    "*/15 * * * *",
    () => {
      const at = new Date(deps.now()).toISOString().slice(0, 16).replace(/[-T:]/g, "");
      void deps.producer.enqueue("alerts-evaluate-all", { at }, { jobId: jobId("alerts-all", at) }).catch((err: Error) => deps.logger.warn({ err: err.message }, "could not enqueue the alert evaluation"));
    },
    { timezone: deps.config.TIMEZONE },
  );
  return {
    name: "scheduler",
    close: async () => {
      await task.stop();
      await enrollments.stop();
      await nightly.stop();
      await tagging.stop();
      await snapshots.stop();
      await digests.stop();
      await alerts.stop();
    },
  };
}

/** Start the named workers (all by default) in this process. */
export function startWorkers(deps: ServiceDeps, redisUrl: string, names: readonly WorkerName[] = WORKER_NAMES): RunningWorker[] {
  return names.map((n) =>
    n === "events"
      ? startQueueWorker(deps, redisUrl, QUEUES.events, deps.config.EVENTS_CONCURRENCY)
      : n === "wecom"
        ? startQueueWorker(deps, redisUrl, QUEUES.wecom, 4)
        : n === "maintenance"
          ? startQueueWorker(deps, redisUrl, QUEUES.maintenance, 1)
          : n === "leads"
            ? startQueueWorker(deps, redisUrl, QUEUES.leads, 4)
            : n === "delivery"
              ? startQueueWorker(deps, redisUrl, QUEUES.delivery, 4)
              : startScheduler(deps),
  );
}
