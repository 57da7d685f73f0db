import type { Logger } from "../logger";
import type { Principal } from "../services/auth/authenticate";
import type { Ctx, ServiceDeps } from "../services/context";

export interface HttpDeps {
  services: ServiceDeps;
  /** Readiness: can we reach the database and Redis right now? */
  checkReady: () => Promise<Record<string, { ok: boolean; error?: string }>>;
  /** Called before /metrics renders, to sample gauges such as queue depth. */
  sampleMetrics?: () => Promise<void>;
}

export interface AppEnv {
  Variables: {
    requestId: string;
    logger: Logger;
    principal: Principal;
    ctx: Ctx;
  };
}
