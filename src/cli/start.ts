import { and, asc, eq } from "drizzle-orm";
import { bootstrap } from "../bootstrap";
import type { Config } from "../config/env";
import { staff, tenants } from "../db/schema/index";
import { createLogger } from "../logger";
import { applyEnvWecomSettings, connectSandbox, startSandboxWecom, writeSandboxInfo } from "./sandbox";
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
  // Sandbox mode: the fake WeCom runs inside `siyu start`. Processes run apart talk to a real WeCom
  // (or a fake started on its own: `tsx src/wecom/fake/main.ts`) through WECOM_API_BASE.
  const logger = createLogger({ level: config.LOG_LEVEL });
  const fake = config.WECOM_MODE === "sandbox" && !split ? await startSandboxWecom(config, logger) : null;
  const rt = await bootstrap(config, { migrate: opts.migrate, logger, ...(fake ? { wecomBaseUrl: fake.url } : {}) });
  const shutdown = new ShutdownManager(rt.logger, config.SHUTDOWN_TIMEOUT_MS);
  shutdown.register("runtime", () => rt.close());
  if (fake) shutdown.register("sandbox-wecom", () => fake.close());
  shutdown.listen();
  let demoHint: string | undefined;
  if (opts.seed) {
    const seeded = await seedDemo({ deps: rt.deps, slug: config.TENANT_SLUG, password: config.DEMO_PASSWORD });
    if (seeded.created) rt.logger.info({ contacts: seeded.contacts, events: seeded.events }, "seeded the demo clinic");
  }
  // The first tenant (TENANT_SLUG) gets ADMIN_TOKEN and the WECOM_* settings at every start, seeded or not.
  const [first] = await rt.deps.db.select({ id: tenants.id }).from(tenants).where(eq(tenants.slug, config.TENANT_SLUG));
  if (first && opts.http) {
    await applyEnvWecomSettings(rt.deps, first.id);
    const [admin] = await rt.deps.db
      .select({ id: staff.id, email: staff.email })
      .from(staff)
      .where(and(eq(staff.tenantId, first.id), eq(staff.role, "admin"), eq(staff.active, true)))
      .orderBy(asc(staff.createdAt))
      .limit(1);
    if (admin && config.ADMIN_TOKEN) {
      await ensureNamedToken({ ctx: systemCtx(rt.deps, first.id, "start"), staffId: admin.id, name: "ADMIN_TOKEN", token: config.ADMIN_TOKEN });
    }
    if (admin && opts.seed) demoHint = `演示账号：机构代码 ${config.TENANT_SLUG}，${admin.email}（或 ${DEMO_STAFF.filter((s) => s.role !== "admin").map((s) => s.email.split("@")[0]).join(" / ")} @demo.siyu.local），密码 ${config.DEMO_PASSWORD}`;
  }
  if (opts.workers.length) {
    const workers = startWorkers(rt.deps, rt.redisUrl, opts.workers);
    for (const w of workers) shutdown.register(`worker:${w.name}`, () => w.close());
  }
  if (opts.http) {
    const http = await startHttpServer(rt, { demoHint });
    shutdown.register("http", () => http.close());
    const url = config.PUBLIC_URL ?? `http://localhost:${http.port}`;
    if (fake) {
      const [tenant] = await rt.deps.db.select({ id: tenants.id }).from(tenants).where(eq(tenants.slug, config.TENANT_SLUG));
      if (tenant) {
        await connectSandbox(rt.deps, fake, { tenantId: tenant.id, slug: config.TENANT_SLUG, callbackBase: `http://127.0.0.1:${http.port}` });
        writeSandboxInfo(config.DATA_DIR, { fakeUrl: fake.url, siyuUrl: url, tenant: config.TENANT_SLUG });
      }
    }
    const lines = [
      "",
      `  Siyu is running at ${url}   (database: ${rt.database.kind}${rt.privateRedis ? ", private redis" : ""}; workers: ${opts.workers.join(", ") || "none"})`,
      `  Console   ${url}/login`,
      demoHint ? `            clinic "${config.TENANT_SLUG}", admin@demo.siyu.local / ${config.DEMO_PASSWORD}` : "",
      `  API docs  ${url}/docs`,
      fake ? `  WeCom     sandbox (fake WeCom at ${fake.url}); try: npx siyu wecom simulate add-contact --staff zhangmin` : `  WeCom     ${config.WECOM_MODE}`,
      config.ADMIN_TOKEN ? `  API       curl -H "Authorization: Bearer $ADMIN_TOKEN" ${url}/v1/contacts` : "",
      "  Stop with Ctrl+C.",
      "",
    ];
    process.stdout.write(lines.filter((l) => l !== "").join("\n") + "\n\n");
  } else {
    rt.logger.info({ workers: opts.workers }, "workers running");
  }
}
