/**
 * Typed errors with one code -> HTTP status table. `message` is for logs; `detail` is shown to
 * callers and never carries patient data.
 */
export const ERROR_STATUS = {
  VALIDATION_FAILED: 422,
  MALFORMED_REQUEST: 400,
  UNAUTHENTICATED: 401,
  FORBIDDEN: 403,
  NOT_FOUND: 404,
  CONFLICT: 409,
  PAYLOAD_TOO_LARGE: 413,
  UNSUPPORTED_MEDIA_TYPE: 415,
  PRECONDITION_FAILED: 412,
  TOO_MANY_REQUESTS: 429,
  SERVICE_UNAVAILABLE: 503,
  INTERNAL: 500,
} as const;

export type ErrorCode = keyof typeof ERROR_STATUS;

export interface FieldIssue {
  /** Path of the failing field, e.g. `events[2].data.amount`. */
  field: string;
  message: string;
}

export class AppError extends Error {
  readonly code: ErrorCode;
  readonly detail: string;
  readonly issues: FieldIssue[];
  constructor(code: ErrorCode, detail: string, opts: { issues?: FieldIssue[]; cause?: unknown; message?: string } = {}) {
    super(opts.message ?? detail, { cause: opts.cause });
    this.name = new.target.name;
    this.code = code;
    this.detail = detail;
    this.issues = opts.issues ?? [];
  }
  get status(): number {
    return ERROR_STATUS[this.code];
  }
}

export class ValidationError extends AppError {
  constructor(issues: FieldIssue[], detail?: string) {
    super("VALIDATION_FAILED", detail ?? issues.map((i) => `${i.field}: ${i.message}`).join("; "), { issues });
  }
}
export class NotFoundError extends AppError {
  constructor(what: string) {
    super("NOT_FOUND", `${what} not found`);
  }
}
export class ForbiddenError extends AppError {
  constructor(detail = "your role may not do this") {
    super("FORBIDDEN", detail);
  }
}
export class UnauthenticatedError extends AppError {
  constructor(detail = "sign in or send a bearer token") {
    super("UNAUTHENTICATED", detail);
  }
}
export class ConflictError extends AppError {
  constructor(detail: string, issues: FieldIssue[] = []) {
    super("CONFLICT", detail, { issues });
  }
}

/** Format a zod-style path as `a.b[2].c`. */
export function formatPath(path: readonly PropertyKey[], prefix = ""): string {
  let out = prefix;
  for (const p of path) {
    if (typeof p === "number") out += `[${p}]`;
    else out += out ? `.${String(p)}` : String(p);
  }
  return out || "(body)";
}

export function zodIssues(
  issues: readonly { path: readonly PropertyKey[]; message: string }[],
  prefix = "",
): FieldIssue[] {
  return issues.map((i) => ({ field: formatPath(i.path, prefix), message: i.message }));
}

/** PostgreSQL unique_violation, whichever driver raised it. */
export function isUniqueViolation(err: unknown, constraint?: string): boolean {
  let e: unknown = err;
  for (let depth = 0; e && depth < 4; depth++) {
    const rec = e as { code?: unknown; constraint_name?: unknown; constraint?: unknown; cause?: unknown };
    if (rec.code === "23505") {
      if (!constraint) return true;
      return rec.constraint_name === constraint || rec.constraint === constraint;
    }
    e = rec.cause;
  }
  return false;
}
