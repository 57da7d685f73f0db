import type { Config } from "./config/env";
import { openDatabase, type Database } from "./db/client";
import { createPiiCipher } from "./domain/pii/crypto";
import { createLogger, type Logger } from "./logger";
import { createRedis } from "./queue/connection";
import { startPrivateRedis, type PrivateRedis } from "./queue/private-redis";
import { Producer } from "./queue/producer";
import type { ServiceDeps } from "./services/context";
import { WecomClient } from "./wecom/api/client";
import type { Redis } from "ioredis";

export interface Runtime {
  config: Readonly<Config>;
  logger: Logger;
  database: Database;
  redisUrl: string;
  /** Client connection for readiness checks and small commands. */
  redis: Redis;
  deps: ServiceDeps;
  privateRedis: PrivateRedis | null;
  close(): Promise<void>;
}

/** Open the database (migrating when asked), Redis (starting a private one when REDIS_URL is unset) and the producer. */
export async function bootstrap(config: Readonly<Config>, opts: { logger?: Logger; migrate?: boolean; now?: () => Date; wecomBaseUrl?: string } = {}): Promise<Runtime> {
  const logger = opts.logger ?? createLogger({ level: config.LOG_LEVEL });
  const database = await openDatabase({ url: config.DATABASE_URL, dataDir: config.DATA_DIR, poolMax: config.DB_POOL_MAX });
  if (opts.migrate) await database.migrate();
  let privateRedis: PrivateRedis | null = null;
  let redisUrl = config.REDIS_URL;
  if (!redisUrl) {
    privateRedis = await startPrivateRedis(config.DATA_DIR);
    redisUrl = privateRedis.url;
    logger.info({ url: redisUrl }, "started a private redis-server (set REDIS_URL to use your own)");
  }
  const producerConn = createRedis(redisUrl, "producer");
  const redis = createRedis(redisUrl, "client");
  // The producer has no offline queue: wait until it is connected so the first enqueue does not fail.
  await waitReady(producerConn, redisUrl);
  const producer = new Producer(producerConn, config.QUEUE_PREFIX);
  // One client per app, so the in-process single flight of token refreshes is shared by all callers.
  const clients = new Map<string, WecomClient>();
  const wecomBaseUrl = opts.wecomBaseUrl ?? config.WECOM_API_BASE;
  const deps: ServiceDeps = {
    db: database.db,
    config,
    logger,
    producer,
    pii: config.piiKey ? createPiiCipher(config.piiKey) : undefined,
    now: opts.now ?? (() => new Date()),
    wecomClient: (app) => {
      const key = `${app.corpId}/${app.agentId}/${app.secret}`;
      let c = clients.get(key);
      if (!c) {
        c = new WecomClient({ baseUrl: wecomBaseUrl, corpId: app.corpId, secret: app.secret, agentId: app.agentId, redis, keyPrefix: config.QUEUE_PREFIX });
        clients.set(key, c);
      }
      return c;
    },
  };
  return {
    config,
    logger,
    database,
    redisUrl,
    redis,
    deps,
    privateRedis,
    close: async () => {
      await producer.close();
      await Promise.allSettled([producerConn.quit(), redis.quit()]);
      await database.close();
      await privateRedis?.stop();
    },
  };
}

function waitReady(conn: Redis, url: string, timeoutMs = 15_000): Promise<void> {
  if (conn.status === "ready") return Promise.resolve();
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`cannot reach Redis at ${url.replace(/\/\/[^@]*@/, "//***@")} within ${timeoutMs} ms`)), timeoutMs);
    conn.once("ready", () => {
      clearTimeout(t);
      resolve();
    });
  });
}
