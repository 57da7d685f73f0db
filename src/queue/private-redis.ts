import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdirSync, readFileSync } from "node:fs";
import net from "node:net";
import path from "node:path";

export interface PrivateRedis {
  url: string;
  stop(): Promise<void>;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

/**
 * Start a redis-server of our own on loopback, its files under dataDir/redis (AOF on, so queued
 * jobs survive a restart). Used when REDIS_URL is unset; stopped with the process.
 */
export async function startPrivateRedis(dataDir: string): Promise<PrivateRedis> {
  const which = spawnSync("sh", ["-c", "command -v redis-server"], { encoding: "utf8" });
  if (which.status !== 0) {
    throw new Error("redis-server is not installed: run `npm start` (it installs it with apt-get) or set REDIS_URL");
  }
  const dir = path.resolve(dataDir, "redis");
  mkdirSync(dir, { recursive: true });
  stopOrphan(path.join(dir, "redis.pid"));
  const port = await freePort();
  const child: ChildProcess = spawn(
    "redis-server",
    ["--bind", "127.0.0.1", "--port", String(port), "--dir", dir, "--appendonly", "yes", "--save", "", "--protected-mode", "yes", "--daemonize", "no", "--logfile", path.join(dir, "redis.log"), "--pidfile", path.join(dir, "redis.pid")],
    { stdio: "ignore" },
  );
  const exited = new Promise<void>((r) => child.once("exit", () => r()));
  await waitForPort(port, 10_000, () => child.exitCode !== null);
  return {
    url: `redis://127.0.0.1:${port}/0`,
    stop: async () => {
      if (child.exitCode === null) child.kill("SIGTERM");
      await exited;
    },
  };
}

/**
 * A redis-server left behind by a start that was killed -9 still owns this data folder: stop it,
 * so two servers never write the same append-only file.
 */
function stopOrphan(pidFile: string): void {
  let pid: number;
  try {
    pid = Number(readFileSync(pidFile, "utf8").trim());
  } catch {
    return;
  }
  if (!Number.isInteger(pid) || pid <= 1) return;
  try {
    if (!readFileSync(`/proc/${pid}/cmdline`, "utf8").includes("redis-server")) return;
    process.kill(pid, "SIGTERM");
    for (let i = 0; i < 50; i++) {
      spawnSync("sleep", ["0.1"]);
      process.kill(pid, 0);
    }
  } catch {
    // gone (or never ours): nothing to stop
  }
}

async function waitForPort(port: number, timeoutMs: number, dead: () => boolean): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    if (dead()) throw new Error("redis-server exited at start; see its log under DATA_DIR/redis");
    const ok = await new Promise<boolean>((r) => {
      const s = net.connect(port, "127.0.0.1", () => {
        s.end();
        r(true);
      });
      s.on("error", () => r(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`redis-server did not listen on port ${port} within ${timeoutMs} ms`);
}
