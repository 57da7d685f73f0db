/**
 * A client of the fake WeCom's control API (`POST <fake>/__control/<action>`, see
 * src/wecom/fake/README.md): what patients and staff do in WeCom, played against the sandbox. The
 * fake answers a call that emits a callback only after delivering it to Siyu.
 */
export class SandboxControlError extends Error {}

/** How a callback went: delivered to Siyu's endpoint, in how many attempts, with which HTTP statuses. */
export interface SandboxDelivery {
  delivered: boolean;
  attempts: number;
  statuses: (number | string)[];
}

export async function sandboxControl<T = Record<string, unknown>>(baseUrl: string, action: string, args: Record<string, unknown>, timeoutMs = 30_000): Promise<T> {
  let res: Response;
  try {
    res = await fetch(`${baseUrl.replace(/\/$/, "")}/__control/${encodeURIComponent(action)}`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(args),
      signal: AbortSignal.timeout(timeoutMs),
    });
  } catch (err) {
    throw new SandboxControlError(`the sandbox WeCom at ${baseUrl} does not answer (${(err as Error).message})`);
  }
  let body: { ok?: boolean; result?: T; error?: string };
  try {
    body = (await res.json()) as typeof body;
  } catch {
    throw new SandboxControlError(`the sandbox WeCom answered ${res.status} without JSON to ${action}`);
  }
  if (!body.ok) throw new SandboxControlError(body.error ?? `${action} failed (${res.status})`);
  return body.result as T;
}

/** The delivery report of an emitted event, as the control API returns it. */
export function deliveryOf(result: unknown): SandboxDelivery | null {
  const d = (result as { delivery?: { delivered?: unknown; attempts?: unknown; statuses?: unknown } } | null)?.delivery;
  if (!d) return null;
  return { delivered: d.delivered === true, attempts: typeof d.attempts === "number" ? d.attempts : 0, statuses: Array.isArray(d.statuses) ? (d.statuses as (number | string)[]) : [] };
}
