import { serve, type ServerType } from "@hono/node-server";
import { sql } from "drizzle-orm";
import type { Runtime } from "./bootstrap";
import { createApp, type AppOptions } from "./http/app";
import type { HttpDeps } from "./http/types";
import { queueDepth } from "./metrics";
import { QUEUES } from "./queue/catalog";

/** HTTP dependencies backed by a runtime: readiness probes and queue counts. */
export function httpDeps(rt: Runtime): HttpDeps {
  const queueCounts = async () => {
    const out: Record<string, Record<string, number>> = {};
    for (const name of Object.values(QUEUES)) {
      out[name] = await rt.deps.producer.queue(name).getJobCounts("waiting", "active", "delayed", "failed", "completed", "prioritized");
    }
    return out;
  };
  return {
    services: rt.deps,
    checkReady: async () => {
      const probe = async (fn: () => Promise<unknown>) => {
        try {
          await Promise.race([fn(), new Promise((_, rej) => setTimeout(() => rej(new Error("timed out after 2 s")), 2000))]);
          return { ok: true };
        } catch (err) {
          return { ok: false, error: (err as Error).message };
        }
      };
      const [db, redis] = await Promise.all([probe(() => rt.database.db.execute(sql`select 1`)), probe(() => rt.redis.ping())]);
      return { database: db, redis };
    },
    sampleMetrics: async () => {
      const counts = await queueCounts();
      for (const [q, states] of Object.entries(counts)) for (const [state, n] of Object.entries(states)) queueDepth.set({ queue: q, state }, n);
    },
  };
}

export async function startHttpServer(rt: Runtime, opts: AppOptions = {}): Promise<{ server: ServerType; port: number; close: () => Promise<void> }> {
  const app = createApp(httpDeps(rt), opts);
  const server = await new Promise<ServerType>((resolve, reject) => {
    const s = serve({ fetch: app.fetch, port: rt.config.PORT, hostname: rt.config.HOST }, () => resolve(s));
    s.once("error", reject);
  });
  const addr = server.address();
  const port = typeof addr === "object" && addr ? addr.port : rt.config.PORT;
  return {
    server,
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        // Idle keep-alive sockets would hold close() open; in-flight requests still finish.
        (server as unknown as { closeIdleConnections?: () => void }).closeIdleConnections?.();
      }),
  };
}
