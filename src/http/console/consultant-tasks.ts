import { can } from "../../domain/auth/permissions";
import { ConflictError, ValidationError } from "../../errors";
import type { Page } from "./kit";

/** Where a task's form came from, and goes back to. */
export type TaskBack = "workspace" | "lead";

/** A refused task form: which task, what was typed, the message by field or for the form. */
export interface TaskState {
  id: string;
  values: Record<string, string>;
  errors: Record<string, string>;
  formError?: string;
}

/**
 * One SOP task as the workspace and the lead page print it, with its two forms: done (one click)
 * and skip (a reason, asked to confirm). Overdue ones are marked; the refused one keeps its reason
 * and shows the message next to the field, its skip form open.
 */
export function taskItem(p: Page, task: { id: string; leadId: string; title: string; dueAt: string; overdue: boolean; contactName: string | null; note?: string | null }, back: TaskBack, state: TaskState | undefined) {
  const mine = state?.id === task.id ? state : undefined;
  return {
    id: task.id,
    leadId: task.leadId,
    title: task.title,
    contactName: task.contactName,
    note: task.note ?? undefined,
    dueAt: task.dueAt,
    dueText: p.fmt.dateTime(task.dueAt),
    overdue: task.overdue,
    back,
    canWork: can(p.principal.role, "leads:work"),
    skip: {
      id: `skip-${task.id}`,
      open: Boolean(mine),
      reason: mine?.values.reason ?? "",
      error: mine?.errors.reason,
      confirm: p.t("task.skip.confirm", { title: task.title }),
    },
    formError: mine?.formError,
  };
}

/** A task action the service refused: the reason's message (422), or the task is no longer open (409). */
export function taskFailure(p: Page, err: unknown): { form: Omit<TaskState, "id" | "values">; status: number } | null {
  if (err instanceof ConflictError) return { form: { errors: {}, formError: p.t("task.err.notOpen") }, status: 409 };
  if (err instanceof ValidationError) {
    const reason = err.issues.some((i) => i.field === "reason");
    return { form: reason ? { errors: { reason: p.t("task.err.reason") } } : { errors: {}, formError: p.t("task.err.reason") }, status: 422 };
  }
  return null;
}
