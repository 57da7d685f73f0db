import type { Logger } from "./logger";

/**
 * Named closers run once on SIGTERM/SIGINT, newest first, each bounded by the deadline; then the
 * process exits 128+signal. Off in tests: they call close() themselves.
 */
export class ShutdownManager {
  private readonly closers: { name: string; fn: () => Promise<unknown> | unknown }[] = [];
  private closing: Promise<void> | null = null;

  constructor(
    private readonly logger: Logger,
    private readonly deadlineMs: number,
  ) {}

  register(name: string, fn: () => Promise<unknown> | unknown): void {
    this.closers.push({ name, fn });
  }

  listen(): void {
    for (const sig of ["SIGTERM", "SIGINT"] as const) {
      process.once(sig, () => {
        this.logger.info({ signal: sig }, "shutting down");
        void this.close().then(() => process.exit(128 + (sig === "SIGINT" ? 2 : 15)));
      });
    }
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      for (const c of [...this.closers].reverse()) {
        const started = Date.now();
        let timer: NodeJS.Timeout | undefined;
        const timeout = new Promise<"timeout">((r) => (timer = setTimeout(() => r("timeout"), this.deadlineMs)));
        const outcome = await Promise.race([Promise.resolve().then(c.fn).then(() => "ok" as const, (e: unknown) => e), timeout]);
        clearTimeout(timer);
        if (outcome === "timeout") this.logger.warn({ closer: c.name }, "closer missed the shutdown deadline");
        else if (outcome !== "ok") this.logger.error({ closer: c.name, err: outcome }, "closer failed");
        else this.logger.debug({ closer: c.name, ms: Date.now() - started }, "closed");
      }
    })();
    return this.closing;
  }
}
