import { eq } from "drizzle-orm";
import { bootstrap } from "../bootstrap";
import type { Config } from "../config/env";
import { staff } from "../db/schema/index";
import { startWorkers, WORKER_NAMES, type WorkerName } from "../jobs/workers";
import { startHttpServer } from "../server";
import { systemCtx } from "../services/context";
import { DEMO_STAFF, seedDemo } from "../services/seed/demo";
import { ensureNamedToken } from "../services/tokens/tokens";
import { ShutdownManager } from "../shutdown";

export interface RunOptions {
  http: boolean;
  workers: readonly WorkerName[];
  migrate: boolean;
  seed: boolean;
}

/** Start what is asked in this process: migrations, the demo seed, the HTTP server and workers. */
export async function run(config: Readonly<Config>, opts: RunOptions): Promise<void> {
  const split = !opts.http || opts.workers.length < WORKER_NAMES.length;
  if (split && (!config.DATABASE_URL || !config.REDIS_URL)) {
    // PGlite lives inside one process and a private redis-server is private: processes run apart
    // must share a real PostgreSQL and Redis.
    throw new Error(
      `running the API and workers as separate processes needs a shared database and Redis: set ${[!config.DATABASE_URL && "DATABASE_URL", !config.REDIS_URL && "REDIS_URL"].filter(Boolean).join(" and ")} (or use \`siyu start\` for everything in one process)`,
    );
  }
  const rt = await bootstrap(config, { migrate: opts.migrate });
  const shutdown = new ShutdownManager(rt.logger, config.SHUTDOWN_TIMEOUT_MS);
  shutdown.register("runtime", () => rt.close());
  shutdown.listen();
  let demoHint: string | undefined;
  if (opts.seed) {
    const seeded = await seedDemo({ deps: rt.deps, slug: config.TENANT_SLUG, password: config.DEMO_PASSWORD });
    if (seeded.created) rt.logger.info({ contacts: seeded.contacts, events: seeded.events }, "seeded the demo clinic");
    if (config.ADMIN_TOKEN && seeded.adminStaffId) {
      await ensureNamedToken({ ctx: systemCtx(rt.deps, seeded.tenantId, "start"), staffId: seeded.adminStaffId, name: "ADMIN_TOKEN", token: config.ADMIN_TOKEN });
    }
    const [admin] = await rt.deps.db.select({ email: staff.email }).from(staff).where(eq(staff.id, seeded.adminStaffId || "00000000-0000-0000-0000-000000000000"));
    if (admin) demoHint = `演示账号：机构代码 ${config.TENANT_SLUG}，${admin.email}（或 ${DEMO_STAFF.filter((s) => s.role !== "admin").map((s) => s.email.split("@")[0]).join(" / ")} @demo.siyu.local），密码 ${config.DEMO_PASSWORD}`;
  }
  if (opts.workers.length) {
    const workers = startWorkers(rt.deps, rt.redisUrl, opts.workers);
    for (const w of workers) shutdown.register(`worker:${w.name}`, () => w.close());
  }
  if (opts.http) {
    const http = await startHttpServer(rt, { demoHint });
    shutdown.register("http", () => http.close());
    const url = config.PUBLIC_URL ?? `http://localhost:${http.port}`;
    const lines = [
      "",
      `  Siyu is running at ${url}   (database: ${rt.database.kind}${rt.privateRedis ? ", private redis" : ""}; workers: ${opts.workers.join(", ") || "none"})`,
      `  Console   ${url}/login`,
      demoHint ? `            clinic "${config.TENANT_SLUG}", admin@demo.siyu.local / ${config.DEMO_PASSWORD}` : "",
      `  API docs  ${url}/docs`,
      config.ADMIN_TOKEN ? `  API       curl -H "Authorization: Bearer $ADMIN_TOKEN" ${url}/v1/contacts` : "",
      "  Stop with Ctrl+C.",
      "",
    ];
    process.stdout.write(lines.filter((l) => l !== "").join("\n") + "\n\n");
  } else {
    rt.logger.info({ workers: opts.workers }, "workers running");
  }
}
