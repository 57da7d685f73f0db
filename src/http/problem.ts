import type { Context } from "hono";
import { HTTPException } from "hono/http-exception";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { AppError, type ErrorCode, type FieldIssue } from "../errors";

const TITLES: Record<number, string> = {
  400: "Bad Request",
  401: "Unauthorized",
  403: "Forbidden",
  404: "Not Found",
  409: "Conflict",
  412: "Precondition Failed",
  413: "Payload Too Large",
  415: "Unsupported Media Type",
  422: "Unprocessable Content",
  429: "Too Many Requests",
  500: "Internal Server Error",
  503: "Service Unavailable",
};

export interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  code: ErrorCode;
  requestId?: string;
  /** For validation errors: each failing field, e.g. `events[2].data.amount`. */
  errors?: FieldIssue[];
}

export function problemBody(status: number, code: ErrorCode, detail: string, requestId: string | undefined, errors?: FieldIssue[]): Problem {
  return {
    type: `https://siyu.dev/problems/${code.toLowerCase().replace(/_/g, "-")}`,
    title: TITLES[status] ?? "Error",
    status,
    detail,
    code,
    ...(requestId ? { requestId } : {}),
    ...(errors && errors.length ? { errors } : {}),
  };
}

export function problem(c: Context, status: number, code: ErrorCode, detail: string, errors?: FieldIssue[]): Response {
  const body = problemBody(status, code, detail, c.get("requestId") as string | undefined, errors);
  return c.body(JSON.stringify(body), status as ContentfulStatusCode, { "content-type": "application/problem+json; charset=utf-8" });
}

/** Map any thrown value to a problem response; returns whether it was a server error (to log). */
export function renderError(c: Context, err: unknown): { response: Response; serverError: boolean } {
  if (err instanceof AppError) {
    return { response: problem(c, err.status, err.code, err.detail, err.issues), serverError: err.status >= 500 };
  }
  if (err instanceof HTTPException) {
    const status = err.status;
    const code: ErrorCode =
      status === 413 ? "PAYLOAD_TOO_LARGE" : status === 401 ? "UNAUTHENTICATED" : status === 403 ? "FORBIDDEN" : status === 404 ? "NOT_FOUND" : "MALFORMED_REQUEST";
    const detail = err.message.includes("Malformed JSON") ? "the body is not valid JSON" : err.message || TITLES[status] || "error";
    return { response: problem(c, status, code, detail, code === "MALFORMED_REQUEST" ? [{ field: "(body)", message: detail }] : undefined), serverError: status >= 500 };
  }
  return { response: problem(c, 500, "INTERNAL", "something went wrong on our side; the request id helps us find it"), serverError: true };
}
