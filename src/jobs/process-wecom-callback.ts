import { UnrecoverableError } from "bullmq";
import { JOBS } from "../queue/catalog";
import type { ServiceDeps } from "../services/context";
import { applyWecomCallback, recordCallbackFailure } from "../services/wecom/apply-callback";

export async function handleProcessWecomCallback(deps: ServiceDeps, data: unknown) {
  const parsed = JOBS["process-wecom-callback"].payload.safeParse(data);
  if (!parsed.success) throw new UnrecoverableError(`bad process-wecom-callback payload: ${parsed.error.message}`);
  try {
    return await applyWecomCallback({ deps, ...parsed.data });
  } catch (err) {
    await recordCallbackFailure(deps, parsed.data.callbackId, (err as Error).message).catch(() => {});
    throw err;
  }
}
