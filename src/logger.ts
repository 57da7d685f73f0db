import { pino, type Logger, type LoggerOptions } from "pino";

/** Paths whose values never reach a log line: phone, name, message text, tokens, secrets. */
export const REDACT_PATHS = [
  "phone",
  "*.phone",
  "*.*.phone",
  "name",
  "*.name",
  "*.*.name",
  "text",
  "*.text",
  "*.*.text",
  "data.text",
  "password",
  "*.password",
  "token",
  "*.token",
  "secret",
  "*.secret",
  "authorization",
  "*.authorization",
  "headers.authorization",
  "headers.cookie",
  "req.headers.authorization",
  "req.headers.cookie",
  "cookie",
  "*.cookie",
];

export type { Logger };

export function createLogger(opts: { level?: string; destination?: pino.DestinationStream } = {}): Logger {
  const options: LoggerOptions = {
    level: opts.level ?? "info",
    base: { service: "siyu" },
    timestamp: pino.stdTimeFunctions.isoTime,
    redact: { paths: REDACT_PATHS, censor: "[redacted]" },
    formatters: { level: (label) => ({ level: label }) },
  };
  return opts.destination ? pino(options, opts.destination) : pino(options);
}
