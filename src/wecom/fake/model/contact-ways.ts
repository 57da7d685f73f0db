import { charCount } from "../body";
import { fail } from "../errors";
import { ids } from "../ids";
import { page } from "../paging";
import type { FakeContactWay, FakeWecomState } from "../state";

// 「联系我」 (doc §3.10): type 1 single (exactly one user) / 2 multi; scene 1 mini-program / 2 QR
// (qr_code only for scene 2); remark and state ≤ 30 chars; ≤ 100 staff; temp mode single-user only,
// expires_in default 7 d, max 14 d. Departments are not modelled: party ids are stored, not expanded.

const MAX_WAYS = 500_000;
const DAY = 86_400;

export interface ContactWayInput {
  type?: number;
  scene?: number;
  style?: number;
  remark?: string;
  skipVerify?: boolean;
  state?: string;
  user?: string[];
  party?: number[];
  isTemp?: boolean;
  expiresIn?: number;
  chatExpiresIn?: number;
  unionid?: string;
  isExclusive?: boolean;
  conclusions?: unknown;
}

function checkText(value: string | undefined, field: string): void {
  if (value !== undefined && charCount(value) > 30) fail(40058, `${field} longer than 30 characters`);
}

function checkUsers(state: FakeWecomState, users: string[]): string[] {
  if (users.length > 100) return fail(41041);
  return users.map((u) => {
    const s = state.requireStaff(u);
    if (!s.active || s.resigned) return fail(41054, u);
    return s.userid;
  });
}

function validate(state: FakeWecomState, w: FakeContactWay): void {
  checkText(w.remark, "remark");
  checkText(w.state, "state");
  w.user = checkUsers(state, w.user);
  if (w.type === 1 && (w.user.length !== 1 || w.party.length > 0)) fail(40058, "a single contact way takes exactly one user");
  if (w.type === 2 && w.user.length === 0 && w.party.length === 0) fail(40058, "user and party are both empty");
  if (w.isTemp) {
    if (w.type !== 1) fail(40058, "temporary contact ways are single-user only");
    if ((w.expiresIn ?? 7 * DAY) > 14 * DAY || (w.expiresIn ?? 1) <= 0) fail(40058, "expires_in out of range");
    if ((w.chatExpiresIn ?? DAY) > 14 * DAY || (w.chatExpiresIn ?? 1) <= 0) fail(40058, "chat_expires_in out of range");
  }
}

export function addContactWay(state: FakeWecomState, input: ContactWayInput): FakeContactWay {
  if (input.type === undefined) return fail(41037);
  if (input.type !== 1 && input.type !== 2) return fail(41039);
  if (input.scene === undefined) return fail(41038);
  if (input.scene !== 1 && input.scene !== 2) return fail(41040);
  if (state.contactWays.size >= MAX_WAYS) return fail(41045);
  const way: FakeContactWay = {
    configId: ids.configId(),
    type: input.type,
    scene: input.scene,
    remark: input.remark ?? "",
    skipVerify: input.skipVerify ?? true,
    user: input.user ?? [],
    party: input.party ?? [],
    isTemp: input.isTemp ?? false,
    isExclusive: input.isExclusive ?? false,
    createTime: state.nowSec(),
  };
  if (input.style !== undefined) way.style = input.style;
  if (input.state !== undefined && input.state !== "") way.state = input.state;
  if (input.unionid !== undefined) way.unionid = input.unionid;
  if (input.conclusions !== undefined) way.conclusions = input.conclusions;
  if (way.isTemp) {
    way.expiresIn = input.expiresIn ?? 7 * DAY;
    way.chatExpiresIn = input.chatExpiresIn ?? DAY;
  }
  validate(state, way);
  if (way.scene === 2) way.qrCode = ids.qrCode();
  state.contactWays.set(way.configId, way);
  return way;
}

export function findContactWay(state: FakeWecomState, configId: string | undefined): FakeContactWay {
  if (configId === undefined || configId === "") return fail(41043);
  return state.contactWays.get(configId) ?? fail(41044, configId);
}

/** update_contact_way overwrites the fields it is given; type and scene cannot change. */
export function updateContactWay(state: FakeWecomState, configId: string | undefined, input: ContactWayInput): FakeContactWay {
  const current = findContactWay(state, configId);
  const next: FakeContactWay = { ...current, user: [...current.user], party: [...current.party] };
  if (input.style !== undefined) next.style = input.style;
  if (input.remark !== undefined) next.remark = input.remark;
  if (input.skipVerify !== undefined) next.skipVerify = input.skipVerify;
  if (input.state !== undefined) {
    if (input.state === "") delete next.state;
    else next.state = input.state;
  }
  if (input.user !== undefined) next.user = input.user;
  if (input.party !== undefined) next.party = input.party;
  if (input.expiresIn !== undefined) next.expiresIn = input.expiresIn;
  if (input.chatExpiresIn !== undefined) next.chatExpiresIn = input.chatExpiresIn;
  if (input.unionid !== undefined) next.unionid = input.unionid;
  if (input.conclusions !== undefined) next.conclusions = input.conclusions;
  validate(state, next);
  state.contactWays.set(next.configId, next);
  return next;
}

export function deleteContactWay(state: FakeWecomState, configId: string | undefined): void {
  const way = findContactWay(state, configId);
  state.contactWays.delete(way.configId);
}

export function contactWayJson(w: FakeContactWay): Record<string, unknown> {
  const out: Record<string, unknown> = { config_id: w.configId, type: w.type, scene: w.scene };
  if (w.style !== undefined) out.style = w.style;
  out.remark = w.remark;
  out.skip_verify = w.skipVerify;
  if (w.state !== undefined) out.state = w.state;
  if (w.qrCode !== undefined) out.qr_code = w.qrCode;
  out.user = w.user;
  out.party = w.party;
  out.is_temp = w.isTemp;
  if (w.isTemp) {
    out.expires_in = w.expiresIn;
    out.chat_expires_in = w.chatExpiresIn;
  }
  if (w.unionid !== undefined) out.unionid = w.unionid;
  out.is_exclusive = w.isExclusive;
  if (w.conclusions !== undefined) out.conclusions = w.conclusions;
  return out;
}

/** list_contact_way: ways created in [start_time, end_time] (default: the last 90 days), by creation. */
export function listContactWays(
  state: FakeWecomState,
  input: { startTime?: number; endTime?: number; cursor?: string; limit?: number },
): { configIds: string[]; nextCursor: string } {
  const end = input.endTime ?? state.nowSec();
  const start = input.startTime ?? end - 90 * DAY;
  if (end < start || end - start > 90 * DAY) return fail(40058, "time range must be within 90 days");
  const limit = input.limit === undefined || input.limit <= 0 ? 100 : Math.min(input.limit, 1000);
  const ways = [...state.contactWays.values()].filter((w) => w.createTime >= start && w.createTime <= end).map((w) => w.configId);
  const p = page("contact_way", ways, input.cursor, limit);
  return { configIds: p.items, nextCursor: p.nextCursor };
}
