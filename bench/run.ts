/**
 * `npm run bench`: CSV import, event ingest and WeCom callbacks through the real HTTP API into
 * PostgreSQL and the queue, plus worker throughput and lead assignment; results and the machine go to docs/benchmarks.md.
 * Runs under scripts/bench.sh, which provides throwaway PostgreSQL (durable settings) and Redis.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { serve } from "@hono/node-server";
import { isNull, sql } from "drizzle-orm";
import postgres from "postgres";
import { bootstrap, type Runtime } from "../src/bootstrap";
import { loadConfig } from "../src/config/env";
import { rowsOf } from "../src/db/client";
import { events, leads, wecomCallbacks } from "../src/db/schema/index";
import { createApp } from "../src/http/app";
import { startWorkers } from "../src/jobs/workers";
import { createLogger } from "../src/logger";
import { httpDeps } from "../src/server";
import { systemCtx } from "../src/services/context";
import { createStaff } from "../src/services/staff/create";
import { createTenant } from "../src/services/tenants/create";
import { createToken } from "../src/services/tokens/tokens";
import { benchCompliance } from "./compliance";
import { benchLeads } from "./leads";
import { benchDelivery } from "./delivery";
import { benchMetrics } from "./metrics";
import { startFakeWecom } from "../src/wecom/fake/index";
import { benchTagging, benchTagLatency } from "./tagging";
// The same request builders the tests use (official @wecom/crypto, independent of our own crypto).
import { contactEventXml, signedCallback, testWecomApp } from "../tests/helpers/wecom";

const ROWS = Number(process.env.BENCH_IMPORT_ROWS ?? 100_000);
const EVENTS = Number(process.env.BENCH_EVENTS ?? 50_000);
const BATCH = 500;
const CONCURRENCY = 4;
const CALLBACKS = Number(process.env.BENCH_CALLBACKS ?? 20_000);
const CALLBACK_CONCURRENCY = 8;
const LEADS = Number(process.env.BENCH_LEADS ?? 5_000);
const LEAD_CONCURRENCY = 8;
const DELIVERY_RECIPIENTS = Number(process.env.BENCH_DELIVERY_RECIPIENTS ?? 100_000);
const DELIVERY_PERSONAL = Number(process.env.BENCH_DELIVERY_PERSONAL ?? 5_000);
const METRICS_CONTACTS = Number(process.env.BENCH_METRICS_CONTACTS ?? 1_000_000);

/** BENCH_ONLY=events,tagging runs just those parts (import, events, tagging, latency, compliance, wecom, leads, delivery, metrics) and updates only their rows of docs/benchmarks.md. */
const ONLY = process.env.BENCH_ONLY ? new Set(process.env.BENCH_ONLY.split(",").map((s) => s.trim())) : null;
const part = (name: string) => !ONLY || ONLY.has(name);

const results: { name: string; value: string; detail: string }[] = [];
const log = (s: string) => process.stderr.write(`[bench] ${s}\n`);

async function freshRuntime(name: string, env: Record<string, string | undefined>, opts: { wecomBaseUrl?: string } = {}): Promise<Runtime> {
  const config = loadConfig({ NODE_ENV: "production", PII_KEY: Buffer.alloc(32, 3).toString("base64"), LOG_LEVEL: "warn", QUEUE_PREFIX: `bench-${name}-${Date.now()}`, REDIS_URL: process.env.REDIS_URL, ...env });
  return bootstrap(config, { migrate: true, logger: createLogger({ level: "warn" }), ...opts });
}

async function adminToken(rt: Runtime): Promise<string> {
  return (await benchTenant(rt)).token;
}

/** A tenant with an admin and five consultants; the admin's API token and the tenant's slug. */
async function benchTenant(rt: Runtime): Promise<{ token: string; slug: string }> {
  const slug = `bench-${Date.now()}`;
  const t = await createTenant({ deps: rt.deps, input: { slug, name: "Bench clinic" } });
  const ctx = systemCtx(rt.deps, t.id, "bench");
  const admin = await createStaff({ ctx, input: { name: "Bench admin", email: "admin@bench.test", role: "admin" } });
  for (let i = 0; i < 5; i++) await createStaff({ ctx, input: { name: `顾问${i}`, email: `c${i}@bench.test`, role: "consultant", wecomUserId: `c${i}` } });
  return { token: (await createToken({ ctx, input: { staffId: admin.id, name: "bench" } })).token, slug };
}

function csvFile(dir: string, rows: number): string {
  const file = path.join(dir, `contacts-${rows}.csv`);
  const lines = ["姓名,手机号,external_user_id,来源,归属顾问,性别,会员等级"];
  for (let i = 0; i < rows; i++) {
    lines.push(`客户${i},1${["38", "39", "58", "86"][i % 4]}${String(i).padStart(8, "0")},wm_bench_${i},${["wecom", "import", "livestream"][i % 3]},${i % 3 === 0 ? "" : `c${i % 5}`},${i % 7 === 0 ? "男" : "女"},${["金卡", "银卡", ""][i % 3]}`);
  }
  writeFileSync(file, lines.join("\n") + "\n");
  return file;
}

function runCli(args: string[], env: Record<string, string>): Promise<{ code: number | null; ms: number; out: string }> {
  const started = performance.now();
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ["bin/siyu.js", ...args], { env: { PATH: process.env.PATH ?? "", ...env }, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (d) => (out += d));
    child.stderr.on("data", () => {});
    child.on("exit", (code) => resolve({ code, ms: performance.now() - started, out }));
  });
}

async function withServer<T>(rt: Runtime, fn: (url: string) => Promise<T>): Promise<T> {
  const app = createApp(httpDeps(rt));
  const server = await new Promise<ReturnType<typeof serve>>((resolve) => {
    const s = serve({ fetch: app.fetch, port: 0, hostname: "127.0.0.1" }, () => resolve(s));
  });
  const port = (server.address() as { port: number }).port;
  try {
    return await fn(`http://127.0.0.1:${port}`);
  } finally {
    await new Promise<void>((r) => server.close(() => r()));
  }
}

async function benchImport(label: string, rt: Runtime, file: string) {
  const token = await adminToken(rt);
  await withServer(rt, async (url) => {
    log(`${label}: importing ${ROWS} rows through siyu import-contacts`);
    const r = await runCli(["import-contacts", file, "--url", url, "--token", token, "--batch", "5000"], {});
    if (r.code !== 0) throw new Error(`import failed (${r.code}): ${r.out}`);
    const secs = r.ms / 1000;
    results.push({ name: `CSV import, ${label}`, value: `${ROWS.toLocaleString("en")} rows in ${secs.toFixed(1)} s`, detail: `${Math.round(ROWS / secs).toLocaleString("en")} rows/s; \`siyu import-contacts\` end to end (CLI process, HTTP, dedupe lookups, AES-GCM + HMAC per phone, audit rows), 5,000 rows per request` });
    log(`${label}: ${r.out.trim()}`);
  });
}

/**
 * The events path twice: `tagging`, where messages ask about a need (tags move, no lead opens), and
 * `leads`, where they ask for prices, so each of the 5,000 contacts opens a lead on its first one
 * (graded, routed under the tenant's lead lock, SOP tasks): that run is bounded by lead routing.
 */
async function benchEvents(rt: Runtime, mode: "tagging" | "leads") {
  const token = await adminToken(rt);
  const text = mode === "tagging" ? "想了解一下祛痘有哪些项目" : "请问祛痘多少钱";
  const batches = Math.ceil(EVENTS / BATCH);
  await withServer(rt, async (url) => {
    log(`ingest: ${EVENTS} events in batches of ${BATCH}, ${CONCURRENCY} concurrent requests`);
    let next = 0;
    const latencies: number[] = [];
    const started = performance.now();
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        while (next < batches) {
          const b = next++;
          const body = {
            events: Array.from({ length: BATCH }, (_, i) => {
              const n = b * BATCH + i;
              return { type: n % 3 ? "article_read" : "message_received", externalUserId: `wm_ev_${mode}_${n % 5000}`, occurredAt: new Date(Date.now() - n * 1000).toISOString(), idempotencyKey: `bench-${mode}-${n}`, data: n % 3 ? { articleId: `a${n % 100}`, topic: "祛痘", dwellSeconds: n % 300 } : { text } };
            }),
          };
          const t0 = performance.now();
          const res = await fetch(`${url}/v1/events`, { method: "POST", headers: { authorization: `Bearer ${token}`, "content-type": "application/json" }, body: JSON.stringify(body) });
          if (res.status !== 202) throw new Error(`ingest answered ${res.status}: ${await res.text()}`);
          await res.arrayBuffer();
          latencies.push(performance.now() - t0);
        }
      }),
    );
    const secs = (performance.now() - started) / 1000;
    latencies.sort((a, b) => a - b);
    const p = (q: number) => percentile(latencies, q);
    if (mode === "tagging") results.push({ name: "Event ingest (API -> PostgreSQL + queue)", value: `${Math.round(EVENTS / secs).toLocaleString("en")} events/s`, detail: `${EVENTS.toLocaleString("en")} events, ${BATCH} per request, ${CONCURRENCY} concurrent; request latency p50 ${p(0.5)} ms, p95 ${p(0.95)} ms; each event stored (idempotency key checked) before the 202, then enqueued` });
  });
  log("worker: processing the queued events");
  const started = performance.now();
  const workers = startWorkers(rt.deps, rt.redisUrl, ["events"]);
  for (;;) {
    const [row] = await rt.deps.db.select({ n: sql<number>`count(*)::int` }).from(events).where(isNull(events.processedAt));
    if (row!.n === 0) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  const secs = (performance.now() - started) / 1000;
  await Promise.all(workers.map((w) => w.close()));
  const [leadRow] = await rt.deps.db.select({ n: sql<number>`count(*)::int` }).from(leads).where(sql`${leads.sourceRef} like 'rule:lead-intent-message:%'`);
  const common = `one worker process, concurrency ${rt.config.EVENTS_CONCURRENCY}; one job per 200 events (ingest requests of ${BATCH} split in jobs of 200), each job one transaction: contact state, tag rules (the default set), tag writes with history; ${EVENTS.toLocaleString("en")} events over 5,000 contacts, two thirds article reads, a third messages`;
  if (mode === "tagging") results.push({ name: "Events worker (queue -> processed)", value: `${Math.round(EVENTS / secs).toLocaleString("en")} events/s`, detail: `${common} asking about a need (「想了解一下祛痘有哪些项目」: need and engagement tags move, no lead opens)` });
  else results.push({ name: "Events worker, a third of them price questions (new leads)", value: `${Math.round(EVENTS / secs).toLocaleString("en")} events/s`, detail: `${common} asking for prices (「请问祛痘多少钱」, the lead rule's words): ${Number(leadRow?.n ?? 0).toLocaleString("en")} leads opened by the rule, each graded and routed under the tenant's lead lock in the events' transaction (later questions raise the open lead, in bulk), so lead routing (see the lead assignment row) bounds this run` });
}

/** Latency percentile (ms, rounded) of an ascending-sorted list. */
function percentile(sorted: number[], q: number): string {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!.toFixed(0);
}

async function benchWecomCallbacks(rt: Runtime) {
  const { token, slug } = await benchTenant(rt);
  const app = testWecomApp();
  await withServer(rt, async (url) => {
    const put = await fetch(`${url}/v1/wecom/settings`, { method: "PUT", headers: { authorization: `Bearer ${token}`, "content-type": "application/json" }, body: JSON.stringify(app) });
    if (put.status !== 200) throw new Error(`PUT /v1/wecom/settings answered ${put.status}: ${await put.text()}`);
    // Built before timing (the load generator's encryption is not counted) and with the current
    // time, since the endpoint refuses timestamps outside its window. Each event has its own
    // ExternalUserID and CreateTime, so its own dedupe key.
    log(`wecom: signing and encrypting ${CALLBACKS} callbacks`);
    const now = Math.floor(Date.now() / 1000);
    const requests = Array.from({ length: CALLBACKS }, (_, i) => {
      const xml = contactEventXml(app.corpId, "add_external_contact", { userId: `c${i % 5}`, externalUserId: `wm_cb_${i}`, createTime: now - (i % 3600), state: i % 4 ? undefined : "bench" });
      return signedCallback(app, xml);
    });
    log(`wecom: posting ${CALLBACKS} callbacks, ${CALLBACK_CONCURRENCY} concurrent requests (no workers running)`);
    let next = 0;
    const latencies: number[] = [];
    const started = performance.now();
    await Promise.all(
      Array.from({ length: CALLBACK_CONCURRENCY }, async () => {
        while (next < requests.length) {
          const r = requests[next++]!;
          const t0 = performance.now();
          const res = await fetch(`${url}/wecom/callback/${slug}?${r.query}`, { method: "POST", headers: { "content-type": "text/xml" }, body: r.body });
          const text = await res.text();
          if (res.status !== 200) throw new Error(`callback answered ${res.status}: ${text}`);
          latencies.push(performance.now() - t0);
        }
      }),
    );
    const secs = (performance.now() - started) / 1000;
    const [row] = await rt.deps.db.select({ n: sql<number>`count(*)::int` }).from(wecomCallbacks);
    if (row!.n !== CALLBACKS) throw new Error(`expected ${CALLBACKS} stored callbacks, found ${row!.n}`);
    latencies.sort((a, b) => a - b);
    results.push({
      name: "WeCom callbacks (verify + decrypt + store + enqueue)",
      value: `${Math.round(CALLBACKS / secs).toLocaleString("en")} callbacks/s`,
      detail: `${CALLBACKS.toLocaleString("en")} distinct signed, AES-encrypted change_external_contact events (built beforehand with the official @wecom/crypto), one per POST, ${CALLBACK_CONCURRENCY} concurrent; request latency p50 ${percentile(latencies, 0.5)} ms, p95 ${percentile(latencies, 0.95)} ms; each answer is the 200 WeCom waits for: timestamp window and signature checked, decrypted, parsed, stored once per dedupe key, enqueued. Receive path only: no workers running`,
    });
  });
}

async function machine(rt: Runtime): Promise<string[]> {
  const [pg] = rowsOf<{ version: string }>(await rt.deps.db.execute(sql`select version()`));
  const info = await rt.redis.info("server");
  const redisVersion = /redis_version:(\S+)/.exec(info)?.[1] ?? "?";
  return [
    `- CPU: ${os.cpus()[0]?.model ?? "?"}, ${os.cpus().length} cores; memory ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB; ${os.type()} ${os.release()}`,
    `- Node ${process.version}; ${String(pg?.version).split(",")[0]} (durable: fsync on; shared_buffers 4GB, max_wal_size 4GB); Redis ${redisVersion} (no persistence)`,
    `- Everything on one machine over loopback: the load generator, the API, PostgreSQL and Redis share the cores.`,
  ];
}

async function main() {
  const base = process.env.DATABASE_URL;
  if (!base) throw new Error("run through `npm run bench`, which starts PostgreSQL and Redis");
  const admin = postgres(base, { max: 1, onnotice: () => {} });
  for (const db of ["bench_import", "bench_events", "bench_wecom", "bench_tagging", "bench_leads", "bench_delivery", "bench_metrics"]) {
    await admin.unsafe(`drop database if exists ${db} with (force)`);
    await admin.unsafe(`create database ${db}`);
  }
  await admin.end();
  const url = (name: string) => Object.assign(new URL(base), { pathname: `/${name}` }).toString();
  const dir = mkdtempSync(path.join(os.tmpdir(), "siyu-bench-"));
  try {
    const file = csvFile(dir, part("import") ? ROWS : 0);
    const rtImport = await freshRuntime("import", { DATABASE_URL: url("bench_import") });
    if (part("import")) await benchImport("PostgreSQL", rtImport, file);
    const lines = await machine(rtImport);
    await rtImport.close();

    if (part("import") && process.env.BENCH_PGLITE !== "0") {
      const rtLite = await freshRuntime("pglite", { DATA_DIR: path.join(dir, "pglite") });
      await benchImport("embedded PGlite (default demo setup)", rtLite, file);
      await rtLite.close();
    }

    if (part("events")) {
      const rtEvents = await freshRuntime("events", { DATABASE_URL: url("bench_events"), EVENTS_CONCURRENCY: "8" });
      await benchEvents(rtEvents, "tagging");
      await benchEvents(rtEvents, "leads");
      await rtEvents.close();
    }

    if ((part("tagging") || part("latency")) && process.env.BENCH_TAGGING !== "0") {
      const rtTag = await freshRuntime("tagging", { DATABASE_URL: url("bench_tagging"), EVENTS_CONCURRENCY: "8" });
      const tagTenant = await benchTenant(rtTag);
      if (part("tagging")) results.push(...(await benchTagging(rtTag, tagTenant.slug, Number(process.env.BENCH_TAG_CONTACTS ?? 1_000_000))));
      if (part("latency")) results.push(...(await withServer(rtTag, (u) => benchTagLatency(rtTag, u, tagTenant.token, 1000, 10))));
      await rtTag.close();
    }

    if (part("compliance")) results.push(...(await benchCompliance()));

    if (part("wecom")) {
      const rtWecom = await freshRuntime("wecom", { DATABASE_URL: url("bench_wecom") });
      await benchWecomCallbacks(rtWecom);
      await rtWecom.close();
    }

    if (part("leads")) {
      const rtLeads = await freshRuntime("leads", { DATABASE_URL: url("bench_leads") });
      results.push(...(await withServer(rtLeads, (u) => benchLeads(rtLeads, u, LEADS, LEAD_CONCURRENCY))));
      await rtLeads.close();
    }

    if (part("delivery")) {
      const app = testWecomApp();
      const fake = await startFakeWecom({ corpId: app.corpId, agentId: app.agentId, secret: app.secret, callbackToken: app.callbackToken, encodingAesKey: app.encodingAesKey });
      const rtDelivery = await freshRuntime("delivery", { DATABASE_URL: url("bench_delivery") }, { wecomBaseUrl: fake.url });
      try {
        results.push(...(await benchDelivery(rtDelivery, fake, app, DELIVERY_RECIPIENTS, DELIVERY_PERSONAL)));
      } finally {
        await rtDelivery.close();
        await fake.close();
      }
    }

    if (part("metrics")) {
      const rtMetrics = await freshRuntime("metrics", { DATABASE_URL: url("bench_metrics") });
      results.push(...(await benchMetrics(rtMetrics, METRICS_CONTACTS)));
      await rtMetrics.close();
    }

    const doc = [
      "# Benchmarks",
      "",
      "Measured by `npm run bench` (bench/run.ts), which starts throwaway PostgreSQL and Redis like the test command and drives the real HTTP API over loopback. Re-run it to refresh this page; set BENCH_IMPORT_ROWS / BENCH_EVENTS / BENCH_TAG_CONTACTS (default 1,000,000) / BENCH_CALLBACKS / BENCH_LEADS (default 5,000) / BENCH_DELIVERY_RECIPIENTS (default 100,000) / BENCH_DELIVERY_PERSONAL (default 5,000) / BENCH_METRICS_CONTACTS (default 1,000,000, ten events each) to change sizes, BENCH_PGLITE=0 to skip the PGlite run, BENCH_ONLY=compliance,latency (any of import, events, tagging, latency, compliance, wecom, leads, delivery, metrics) to re-measure parts and replace only their rows. A full run takes about 15 minutes, most of it generating the 6,000,000 tagging events.",
      "",
      `Run on ${new Date().toISOString().slice(0, 16).replace("T", " ")} UTC:`,
      "",
      ...lines,
      "",
      "| what | result | how |",
      "| --- | --- | --- |",
      ...results.map((r) => `| ${r.name} | ${r.value} | ${r.detail} |`),
      "",
    ].join("\n");
    if (!ONLY) writeFileSync(new URL("../docs/benchmarks.md", import.meta.url), doc);
    else mergeRows(new URL("../docs/benchmarks.md", import.meta.url));
    process.stdout.write(doc);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A partial run (BENCH_ONLY) replaces the rows it measured (by name) and appends new ones; the rest of the page stays. */
function mergeRows(file: URL) {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch {
    return;
  }
  const lines = text.split("\n");
  for (const r of results) {
    const row = `| ${r.name} | ${r.value} | ${r.detail} |`;
    const at = lines.findIndex((l) => l.startsWith(`| ${r.name} |`));
    if (at >= 0) lines[at] = row;
    else {
      let last = -1;
      lines.forEach((l, i) => {
        if (l.startsWith("| ")) last = i;
      });
      lines.splice(last + 1, 0, row);
    }
  }
  writeFileSync(file, lines.join("\n"));
}

main().then(
  () => process.exit(0),
  (err) => {
    process.stderr.write(`bench failed: ${(err as Error).stack}\n`);
    process.exit(1);
  },
);
