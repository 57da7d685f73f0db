import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";

/** One Prometheus registry per process, served at /metrics. */
export const registry = new Registry();
collectDefaultMetrics({ register: registry, prefix: "siyu_" });

export const httpRequests = new Counter({
  name: "siyu_http_requests_total",
  help: "HTTP requests by route, method and status",
  labelNames: ["method", "route", "status"] as const,
  registers: [registry],
});

export const httpDuration = new Histogram({
  name: "siyu_http_request_duration_seconds",
  help: "HTTP request duration",
  labelNames: ["method", "route"] as const,
  buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
  registers: [registry],
});

export const jobsProcessed = new Counter({
  name: "siyu_jobs_total",
  help: "Jobs handled by queue, job and outcome",
  labelNames: ["queue", "job", "outcome"] as const,
  registers: [registry],
});

export const jobDuration = new Histogram({
  name: "siyu_job_duration_seconds",
  help: "Job handling duration",
  labelNames: ["queue", "job"] as const,
  buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30],
  registers: [registry],
});

export const eventsIngested = new Counter({
  name: "siyu_events_ingested_total",
  help: "Events stored through the API, by outcome (accepted, duplicate)",
  labelNames: ["outcome"] as const,
  registers: [registry],
});

export const queueDepth = new Gauge({
  name: "siyu_queue_jobs",
  help: "Jobs per queue and state, sampled at scrape time",
  labelNames: ["queue", "state"] as const,
  registers: [registry],
});

export const wecomCallbacks = new Counter({
  name: "siyu_wecom_callbacks_total",
  help: "WeCom callbacks by outcome (stored, duplicate, refused_<code>)",
  labelNames: ["outcome"] as const,
  registers: [registry],
});
