// A separate process that opens leads for the given contacts through the lead service, eight at a
// time, on its own connections: tests run several of these at once against one database.
// Usage: node tests/helpers/lead-signals.mjs (env: SIYU_ENV_JSON, TENANT_ID, CONTACT_IDS comma-separated)
import { register } from "tsx/esm/api";

register();
const { bootstrap } = await import("../../src/bootstrap.ts");
const { loadConfig } = await import("../../src/config/env.ts");
const { createLogger } = await import("../../src/logger.ts");
const { systemCtx } = await import("../../src/services/context.ts");
const { signalLead } = await import("../../src/services/leads/leads.ts");

const config = loadConfig(JSON.parse(process.env.SIYU_ENV_JSON));
const rt = await bootstrap(config, { logger: createLogger({ level: "silent" }) });
const ids = process.env.CONTACT_IDS.split(",");
const ctx = systemCtx(rt.deps, process.env.TENANT_ID, "lead-signals");
let next = 0;
const failures = [];
await Promise.all(
  Array.from({ length: 8 }, async () => {
    while (next < ids.length) {
      const contactId = ids[next++];
      try {
        await signalLead({ ctx, input: { contactId, source: "api", score: 10 } });
      } catch (err) {
        failures.push(`${contactId}: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
  }),
);
await rt.close();
process.stdout.write(JSON.stringify({ done: ids.length, failures }) + "\n");
