import { AppError, ConflictError, NotFoundError, ValidationError, type FieldIssue } from "../../errors";
import { hasMessage, type MessageKey } from "./i18n";
import type { Page } from "./kit";
import { clip as clipText } from "./present";

/**
 * Shared by the admin pages (staff, assignment, WeCom, sandbox, queues, audit): form fields shaped
 * in TypeScript for the `admin-field` partial, and refused inputs turned into messages next to
 * their fields.
 */

export interface FieldOption {
  value: string;
  label: string;
  selected: boolean;
}

/** One form field as the `admin-field` partial prints it. */
export interface Field {
  id: string;
  name: string;
  label: string;
  value?: string | undefined;
  type?: string | undefined;
  error?: string | undefined;
  hint?: string | undefined;
  describedBy?: string | undefined;
  options?: FieldOption[] | undefined;
  rows?: number | undefined;
  checkbox?: boolean | undefined;
  checked?: boolean | undefined;
  required?: boolean | undefined;
  autocomplete?: string | undefined;
  inputmode?: string | undefined;
  maxlength?: number | undefined;
  placeholder?: string | undefined;
}

export function field(f: Field): Field {
  const ids = [f.hint ? `${f.id}-hint` : "", f.error ? `${f.id}-err` : ""].filter(Boolean);
  return { ...f, describedBy: ids.length ? ids.join(" ") : undefined };
}

export function selectOptions(values: readonly { value: string; label: string }[], selected: string | undefined): FieldOption[] {
  return values.map((o) => ({ ...o, selected: o.value === selected }));
}

/** A refused form: a message per field, and one for the whole form. */
export interface FormFailure {
  errors: Record<string, string>;
  formError: string;
  status: number;
}

/**
 * Messages for a refused form, keyed by the service's field names (`fieldOf` maps a path such as
 * `sla.firstContactMinutes.A` or `items[2]` to the form's field). The catalogue's
 * `<form>.err.<field>` says it in the person's language; otherwise the service's own message is
 * shown next to the field. Null when `err` is not a refusal of the input.
 */
export function formFailure(
  p: Page,
  err: unknown,
  form: string,
  fieldOf: (path: string) => string = (f) => f.replace(/[[.].*$/, ""),
  /** A message of its own for a particular refusal (else the field's). */
  special?: (issue: FieldIssue) => MessageKey | undefined,
): FormFailure | null {
  const refusal = err instanceof ValidationError || (err instanceof ConflictError && err.issues.length > 0);
  if (!refusal) return null;
  const errors: Record<string, string> = {};
  for (const issue of (err as AppError).issues) {
    const f = fieldOf(issue.field);
    const key = special?.(issue) ?? `${form}.err.${f}`;
    errors[f] ??= hasMessage(key) ? p.t(key as MessageKey) : p.t("staff.common.fieldErr", { message: issue.message });
  }
  return { errors, formError: p.t("staff.common.formError"), status: err instanceof ConflictError ? 409 : 422 };
}

/** A number typed in a form: the number when it reads as one, else the text (the service refuses it at its field), undefined when empty. */
export function numberOf(v: string | undefined): number | string | undefined {
  const s = v?.trim().replace(/[,，]/g, "");
  if (!s) return undefined;
  return /^-?\d+(\.\d+)?$/.test(s) ? Number(s) : s;
}

/** Lines of a textarea, trimmed, without blanks. */
export function linesOf(v: string | undefined): string[] {
  return (v ?? "").split(/\r?\n/).map((s) => s.trim()).filter(Boolean);
}

/** A notice from `?done=` after a redirect, when the catalogue has one for it. */
export function doneNotice(p: Page, prefix: string, params: Record<string, unknown> = {}): string | undefined {
  const done = p.c.req.query("done");
  if (!done || !/^[a-zA-Z]+$/.test(done)) return undefined;
  const key = `${prefix}.done.${done}`;
  return hasMessage(key) ? p.t(key as MessageKey, params) : undefined;
}

/** Short text for a table cell. */
export const clip = (s: string, n = 120): string => clipText(s, n);

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** An id from the path: a link to anything else is a 404, not a database error. */
export function idParam(p: Page, what: string, name = "id"): string {
  const id = p.c.req.param(name) ?? "";
  if (!UUID.test(id)) throw new NotFoundError(what);
  return id;
}
