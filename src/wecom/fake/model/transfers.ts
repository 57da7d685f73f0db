import { charCount } from "../body";
import { controlFail, fail } from "../errors";
import { page } from "../paging";
import { lower, type FakeStaff, type FakeTransfer, type FakeWecomState } from "../state";

// 客户继承 (doc §3.11). A started transfer waits (status 2) and completes after 24 h (status 1),
// moving the relation from handover to takeover. On-job transfers: at most 2 per customer per 90
// days (40128). Resigned transfers need a resigned handover (40097). Completion is driven by the
// caller (control.tick before every API call, control.completeDueTransfers) so it can emit callbacks.

const NINETY_DAYS_MS = 90 * 86_400_000;

function takeoverStaff(state: FakeWecomState, userid: string | undefined): FakeStaff {
  const s = state.requireStaff(userid);
  if (!s.active || s.resigned) return fail(40098, s.userid);
  return s;
}

export function transferCustomers(
  state: FakeWecomState,
  kind: FakeTransfer["kind"],
  input: { handover?: string; takeover?: string; externalUserIds?: string[]; message?: string },
): Array<{ external_userid: string; errcode: number }> {
  const handover = state.requireStaff(input.handover);
  const takeover = takeoverStaff(state, input.takeover);
  if (kind === "resigned" && !handover.resigned) return fail(40097);
  if (lower(handover.userid) === lower(takeover.userid)) return fail(40130);
  const list = input.externalUserIds ?? [];
  if (list.length === 0 || list.length > 100) return fail(40058, "external_userid must have 1-100 entries");
  if (input.message !== undefined && charCount(input.message) > 200) return fail(40058, "transfer_success_msg longer than 200 characters");
  const now = state.nowMs();
  return list.map((ext) => {
    const errcode = (() => {
      if (!state.contacts.has(ext)) return 40096;
      if (!state.follow(ext, handover.userid)) return 40131;
      const mine = state.transfers.filter((t) => t.externalUserId === ext);
      if (mine.some((t) => t.status === 2)) return 40129;
      if (kind === "onjob" && mine.filter((t) => t.kind === "onjob" && now - t.startedAtMs < NINETY_DAYS_MS).length >= 2) return 40128;
      return 0;
    })();
    if (errcode === 0) {
      const t: FakeTransfer = {
        kind,
        externalUserId: ext,
        handoverUserid: handover.userid,
        takeoverUserid: takeover.userid,
        startedAtMs: now,
        status: 2,
        takeoverTime: Math.floor(now / 1000) + state.settings.transferDelaySeconds,
      };
      if (input.message !== undefined) t.message = input.message;
      state.transfers.push(t);
    }
    return { external_userid: ext, errcode };
  });
}

export function transferResults(
  state: FakeWecomState,
  kind: FakeTransfer["kind"],
  input: { handover?: string; takeover?: string; cursor?: string },
): { customer: Array<{ external_userid: string; status: number; takeover_time: number }>; nextCursor: string } {
  const handover = state.requireStaff(input.handover);
  const takeover = state.requireStaff(input.takeover);
  const rows = state.transfers.filter(
    (t) => t.kind === kind && lower(t.handoverUserid) === lower(handover.userid) && lower(t.takeoverUserid) === lower(takeover.userid),
  );
  const p = page(`transfer:${kind}:${lower(handover.userid)}:${lower(takeover.userid)}`, rows, input.cursor, 1000);
  return {
    customer: p.items.map((t) => ({ external_userid: t.externalUserId, status: t.status, takeover_time: t.takeoverTime })),
    nextCursor: p.nextCursor,
  };
}

/** Complete every waiting transfer whose 24 h are up: move the relation. Returns what completed. */
export function processDueTransfers(state: FakeWecomState): FakeTransfer[] {
  const nowSec = state.nowSec();
  const done: FakeTransfer[] = [];
  for (const t of state.transfers) {
    if (t.status !== 2 || t.takeoverTime > nowSec) continue;
    t.status = 1;
    const old = state.removeFollow(t.externalUserId, t.handoverUserid);
    if (!state.follow(t.externalUserId, t.takeoverUserid)) {
      state.putFollow({
        userid: t.takeoverUserid,
        externalUserId: t.externalUserId,
        remark: old?.remark ?? "",
        description: old?.description ?? "",
        createtime: t.takeoverTime,
        tagIds: old?.tagIds ?? [],
        addWay: 202,
        ...(old?.state !== undefined ? { state: old.state } : {}),
        operUserid: t.handoverUserid,
        remarkMobiles: old?.remarkMobiles ?? [],
        deletedByCustomer: false,
      });
    }
    done.push(t);
  }
  return done;
}

/** The customer refuses (status 3) or the takeover is at the customer limit (status 4). */
export function failTransfer(state: FakeWecomState, externalUserId: string, reason: "customer_refused" | "customer_limit_exceed"): FakeTransfer {
  const t = state.transfers.find((x) => x.externalUserId === externalUserId && x.status === 2) ?? controlFail(`no waiting transfer for ${externalUserId}`);
  t.status = reason === "customer_refused" ? 3 : 4;
  return t;
}
