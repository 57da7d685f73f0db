import { Queue, type JobsOptions } from "bullmq";
import type { Redis } from "ioredis";
import { JOBS, QUEUES, type JobName, type JobPayload, type QueueName } from "./catalog";

export interface EnqueueOptions {
  jobId?: string;
  delayMs?: number;
  /** Throttle: further jobs with this id within ttlMs are dropped (the queued one covers them). */
  dedupe?: { id: string; ttlMs: number };
}

/** Typed producer over every queue of the catalog. */
export class Producer {
  private readonly queues = new Map<QueueName, Queue>();

  constructor(
    private readonly connection: Redis,
    readonly prefix: string,
  ) {
    for (const name of Object.values(QUEUES)) {
      const q = new Queue(name, { connection, prefix });
      q.on("error", () => {});
      this.queues.set(name, q);
    }
  }

  queue(name: QueueName): Queue {
    const q = this.queues.get(name);
    if (!q) throw new Error(`unknown queue ${name}`);
    return q;
  }

  private options<N extends JobName>(name: N, o: EnqueueOptions = {}): JobsOptions {
    const def = JOBS[name];
    return {
      attempts: def.attempts,
      backoff: { type: "exponential", delay: def.backoffMs },
      removeOnComplete: { age: 3600, count: 10_000 },
      removeOnFail: { age: 7 * 24 * 3600 },
      ...(o.jobId ? { jobId: o.jobId } : {}),
      ...(o.delayMs ? { delay: o.delayMs } : {}),
      ...(o.dedupe ? { deduplication: { id: o.dedupe.id, ttl: o.dedupe.ttlMs } } : {}),
    };
  }

  async enqueue<N extends JobName>(name: N, payload: JobPayload<N>, o: EnqueueOptions = {}): Promise<void> {
    const def = JOBS[name];
    await this.queue(def.queue).add(name, def.payload.parse(payload), this.options(name, o));
  }

  async enqueueMany<N extends JobName>(name: N, items: ({ payload: JobPayload<N> } & EnqueueOptions)[]): Promise<void> {
    if (items.length === 0) return;
    const def = JOBS[name];
    await this.queue(def.queue).addBulk(
      items.map((i) => ({
        name,
        data: def.payload.parse(i.payload),
        opts: this.options(name, i),
      })),
    );
  }

  async close(): Promise<void> {
    await Promise.allSettled([...this.queues.values()].map((q) => q.close()));
  }
}
