import { spawn, type ChildProcess } from "node:child_process";
import { and, eq, isNull } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { events } from "../../src/db/schema/index";
import { createTestTenant, type TestTenant } from "../helpers/factories";
import { createTestRuntime, type TestRuntime } from "../helpers/runtime";
import { waitFor } from "../helpers/wait";

/** Real processes: `siyu serve` accepts events and is killed -9; `siyu worker all` processes them. */
let t: TestRuntime;
let tenant: TestTenant;
const children: ChildProcess[] = [];

beforeAll(async () => {
  t = await createTestRuntime();
  tenant = await createTestTenant(t.rt.deps);
});
afterAll(async () => {
  for (const c of children) if (c.exitCode === null) c.kill("SIGKILL");
  await t?.close();
});

function siyu(args: string[], env: Record<string, string>): { child: ChildProcess; output: () => string; exited: Promise<number | null> } {
  const child = spawn(process.execPath, ["bin/siyu.js", ...args], { env: { PATH: process.env.PATH ?? "", ...t.env, LOG_LEVEL: "info", ...env }, stdio: ["ignore", "pipe", "pipe"] });
  children.push(child);
  let out = "";
  child.stdout!.on("data", (d) => (out += d));
  child.stderr!.on("data", (d) => (out += d));
  const exited = new Promise<number | null>((r) => child.once("exit", (code, signal) => r(code ?? (signal === "SIGKILL" ? 137 : null))));
  return { child, output: () => out, exited };
}

describe("crash and restart", () => {
  it("loses no accepted event when the API process is killed -9 right after answering", async () => {
    const api = siyu(["serve"], { PORT: "0" });
    const url = await waitFor(async () => /running at (http:\/\/localhost:\d+)/.exec(api.output())?.[1], { what: "siyu serve to listen", timeoutMs: 30_000 });
    const body = { events: Array.from({ length: 25 }, (_, i) => ({ type: "message_received", externalUserId: `wm_crash_${i % 5}`, occurredAt: new Date().toISOString(), idempotencyKey: `crash-${i}`, data: { text: "在吗" } })) };
    const res = await fetch(`${url}/v1/events`, { method: "POST", headers: { authorization: `Bearer ${tenant.tokens.admin}`, "content-type": "application/json" }, body: JSON.stringify(body) });
    expect(res.status).toBe(202);
    expect(((await res.json()) as { accepted: number }).accepted).toBe(25);
    api.child.kill("SIGKILL");
    expect(await api.exited).toBe(137);

    // Redis also lost the queue (worst case): the worker's startup sweep must find them in PostgreSQL.
    const keys = await t.rt.redis.keys(`${t.env.QUEUE_PREFIX}:*`);
    if (keys.length) await t.rt.redis.del(...keys);
    await new Promise((r) => setTimeout(r, 1100));
    const worker = siyu(["worker", "all"], { SWEEP_AFTER_SECONDS: "1" });
    await waitFor(
      async () => (await t.rt.deps.db.select({ id: events.id }).from(events).where(and(eq(events.tenantId, tenant.id), isNull(events.processedAt)))).length === 0,
      { what: "every event processed by the restarted worker", timeoutMs: 30_000 },
    );
    const rows = await t.rt.deps.db.select().from(events).where(eq(events.tenantId, tenant.id));
    expect(rows).toHaveLength(25);
    expect(rows.every((r) => r.attempts === 1)).toBe(true);

    // SIGTERM: graceful shutdown, exit code 128 + 15.
    worker.child.kill("SIGTERM");
    expect(await worker.exited).toBe(143);
  }, 90_000);
});
