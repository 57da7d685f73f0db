import { z } from "zod";

/** Queue names (kebab-case). Workers scale out per queue. */
export const QUEUES = {
  events: "events",
  wecom: "wecom",
  maintenance: "maintenance",
  /** Lead timers (first-contact SLA reminders and breaches): short jobs that must not wait behind tag backfills. */
  leads: "leads",
  /** Calendar delivery: WeCom mass messages due now, their results, the minute sweep (network-bound, apart from callbacks and syncs). */
  delivery: "delivery",
} as const;
export type QueueName = (typeof QUEUES)[keyof typeof QUEUES];

/**
 * The job catalog: job name -> queue, payload schema and retry policy. Producers and handlers are
 * typed from this one table. Payloads carry ids only: never names, phones or message text.
 */
export const JOBS = {
  "process-events": {
    queue: QUEUES.events,
    payload: z.object({ tenantId: z.uuid(), eventIds: z.array(z.uuid()).min(1).max(1000) }),
    attempts: 8,
    backoffMs: 1000,
  },
  "process-wecom-callback": {
    queue: QUEUES.wecom,
    payload: z.object({ tenantId: z.uuid(), callbackId: z.uuid() }),
    attempts: 8,
    backoffMs: 2000,
  },
  "wecom-push-tags": {
    queue: QUEUES.wecom,
    payload: z.object({ tenantId: z.uuid(), contactId: z.uuid() }),
    attempts: 5,
    backoffMs: 5000,
  },
  "wecom-sync": {
    queue: QUEUES.wecom,
    payload: z.object({ tenantId: z.uuid(), runId: z.uuid() }),
    attempts: 5,
    backoffMs: 30_000,
  },
  "wecom-sync-all": {
    queue: QUEUES.maintenance,
    payload: z.object({ reason: z.enum(["schedule", "manual"]) }),
    attempts: 1,
    backoffMs: 1000,
  },
  "tagging-nightly-all": {
    queue: QUEUES.maintenance,
    payload: z.object({ day: z.string() }),
    attempts: 1,
    backoffMs: 1000,
  },
  "tagging-nightly": {
    queue: QUEUES.maintenance,
    payload: z.object({ tenantId: z.uuid(), day: z.string() }),
    attempts: 3,
    backoffMs: 60_000,
  },
  "tagging-backfill": {
    queue: QUEUES.maintenance,
    payload: z.object({ tenantId: z.uuid(), version: z.number().int() }),
    attempts: 3,
    backoffMs: 30_000,
  },
  "segments-snapshot": {
    queue: QUEUES.maintenance,
    payload: z.object({ day: z.string() }),
    attempts: 3,
    backoffMs: 60_000,
  },
  "wecom-transfers": {
    queue: QUEUES.wecom,
    /** One tenant's transfers (after an offboarding), or every tenant with transfers open (daily). */
    payload: z.object({ tenantId: z.uuid().optional() }),
    attempts: 5,
    backoffMs: 30_000,
  },
  "staff-notify": {
    queue: QUEUES.wecom,
    payload: z.object({ tenantId: z.uuid(), notificationId: z.uuid() }),
    attempts: 6,
    backoffMs: 5000,
  },
  "lead-sla-remind": {
    queue: QUEUES.leads,
    payload: z.object({ tenantId: z.uuid(), leadId: z.uuid(), dueAt: z.iso.datetime() }),
    attempts: 5,
    backoffMs: 5000,
  },
  "lead-sla-breach": {
    queue: QUEUES.leads,
    payload: z.object({ tenantId: z.uuid(), leadId: z.uuid(), dueAt: z.iso.datetime() }),
    attempts: 8,
    backoffMs: 5000,
  },
  /** Every minute: breach passed deadlines whose job was lost, re-arm near ones; at start: re-arm all. */
  "lead-sla-sweep": {
    queue: QUEUES.leads,
    payload: z.object({ reason: z.enum(["schedule", "startup", "manual"]) }),
    attempts: 3,
    backoffMs: 5000,
  },
  /** Every 15 minutes: enqueue the daily digest of each tenant where it is 08:30-09:15 (one job per tenant and local day). */
  "lead-digest-all": {
    queue: QUEUES.leads,
    payload: z.object({ at: z.string() }),
    attempts: 1,
    backoffMs: 1000,
  },
  "lead-digest": {
    queue: QUEUES.leads,
    payload: z.object({ tenantId: z.uuid(), day: z.iso.date() }),
    attempts: 3,
    backoffMs: 60_000,
  },
  /** Send one (post, sender, minute) batch of calendar sends that is due (delivery/deliver.ts). */
  "delivery-batch": {
    queue: QUEUES.delivery,
    payload: z.object({ tenantId: z.uuid(), postId: z.uuid(), senderStaffId: z.uuid(), minute: z.iso.datetime() }),
    attempts: 5,
    backoffMs: 10_000,
  },
  /** Read a mass message's staff confirmation and per-recipient results from WeCom until final. */
  "delivery-poll": {
    queue: QUEUES.delivery,
    payload: z.object({ tenantId: z.uuid(), msgid: z.string().min(1).max(200) }),
    attempts: 3,
    backoffMs: 30_000,
  },
  /** Every minute: plan approved entries, re-arm due batches, reconcile interrupted sends, poll results; at start: re-arm all. */
  "delivery-sweep": {
    queue: QUEUES.delivery,
    payload: z.object({ reason: z.enum(["schedule", "startup", "manual"]) }),
    attempts: 3,
    backoffMs: 5000,
  },
  "calendar-enroll-sweep": {
    queue: QUEUES.maintenance,
    /** The 5-minute bucket: one sweep per tick however many schedulers run. */
    payload: z.object({ at: z.string() }),
    attempts: 2,
    backoffMs: 30_000,
  },
  /** Every 15 minutes: enqueue alerts-evaluate for each tenant with an enabled alert rule (one job per tenant and tick). */
  "alerts-evaluate-all": {
    queue: QUEUES.maintenance,
    payload: z.object({ at: z.string() }),
    attempts: 1,
    backoffMs: 1000,
  },
  /** Evaluate one tenant's anomaly alert rules: open, keep or close episodes, notify managers once per episode. */
  "alerts-evaluate": {
    queue: QUEUES.maintenance,
    payload: z.object({ tenantId: z.uuid(), at: z.string() }),
    attempts: 2,
    backoffMs: 30_000,
  },
  "sweep-events": {
    queue: QUEUES.maintenance,
    payload: z.object({ reason: z.enum(["schedule", "startup", "manual"]) }),
    attempts: 3,
    backoffMs: 5000,
  },
} as const;

export type JobName = keyof typeof JOBS;
export type JobPayload<N extends JobName> = z.infer<(typeof JOBS)[N]["payload"]>;

/** BullMQ job ids: deterministic from business keys, joined with '-', never ':'. */
export function jobId(...parts: string[]): string {
  return parts.map((p) => p.replace(/:/g, "_")).join("-");
}
