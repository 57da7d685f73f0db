import { Redis, type RedisOptions } from "ioredis";

/**
 * Redis connections by role. Workers block and must retry forever (maxRetriesPerRequest: null);
 * request-path producers fail fast (no offline queue) so the API answers quickly when Redis is down.
 */
export function createRedis(url: string, role: "worker" | "producer" | "client"): Redis {
  const opts: RedisOptions =
    role === "worker"
      ? { maxRetriesPerRequest: null, enableReadyCheck: true }
      : role === "producer"
        ? { maxRetriesPerRequest: 1, enableOfflineQueue: false, connectTimeout: 2000 }
        : { maxRetriesPerRequest: 2, connectTimeout: 2000 };
  const redis = new Redis(url, { ...opts, lazyConnect: false });
  // An unhandled 'error' event would crash the process; connection errors are reported by readiness checks.
  redis.on("error", () => {});
  return redis;
}
