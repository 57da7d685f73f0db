import { controlFail } from "../errors";
import { ids } from "../ids";
import { lower, type FakeContact, type FakeFollow, type FakeStaff, type FakeWecomState } from "../state";

export interface CreateStaffInput {
  userid: string;
  name?: string;
  active?: boolean;
  visible?: boolean;
  resigned?: boolean;
}

export function createStaff(state: FakeWecomState, input: CreateStaffInput): FakeStaff {
  if (!/^[A-Za-z0-9_.@-]{1,64}$/.test(input.userid)) controlFail(`invalid userid ${JSON.stringify(input.userid)}`);
  if (state.findStaff(input.userid)) controlFail(`staff ${input.userid} already exists (userids are case-insensitive)`);
  const staff: FakeStaff = {
    userid: input.userid,
    name: input.name ?? input.userid,
    active: input.active ?? true,
    visible: input.visible ?? true,
    resigned: input.resigned ?? false,
  };
  state.staff.set(lower(staff.userid), staff);
  return staff;
}

export interface FollowInput {
  userid: string;
  remark?: string;
  description?: string;
  state?: string;
  /** Default 1 (QR scan). */
  addWay?: number;
  /** Who initiated the add: the customer's external_userid (default) or the staff's userid. */
  operUserid?: string;
  tagIds?: string[];
  createtime?: number;
  remarkMobiles?: string[];
  remarkCorpName?: string;
}

export interface CreateContactInput {
  externalUserId?: string;
  name?: string;
  type?: 1 | 2;
  gender?: 0 | 1 | 2;
  /** A string, or null for none; default: a generated unionid for WeChat users. */
  unionid?: string | null;
  avatar?: string;
  corpName?: string;
  corpFullName?: string;
  position?: string;
  /** Seed follow relations (no callbacks: this is pre-existing data). */
  followedBy?: string | FollowInput | Array<string | FollowInput>;
}

const SURNAMES = ["王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周", "徐", "孙", "马", "朱", "胡", "郭", "何", "林"];
const GIVEN = ["静", "丽", "敏", "婷", "芳", "娜", "雪", "欣", "悦", "佳", "颖", "琳", "晨", "思", "雨", "涵", "伟", "强"];
const pick = (xs: readonly string[]) => xs[Math.floor(Math.random() * xs.length)]!;

export function createContact(state: FakeWecomState, input: CreateContactInput = {}): FakeContact {
  const externalUserId = input.externalUserId ?? ids.externalUserId();
  if (state.contacts.has(externalUserId)) controlFail(`contact ${externalUserId} already exists`);
  const type = input.type ?? 1;
  const contact: FakeContact = {
    externalUserId,
    name: input.name ?? `${pick(SURNAMES)}${pick(GIVEN)}${Math.random() < 0.5 ? pick(GIVEN) : ""}`,
    type,
    gender: input.gender ?? 2,
    avatar: input.avatar ?? ids.avatar(),
  };
  const unionid = input.unionid === undefined ? (type === 1 ? ids.unionId() : undefined) : (input.unionid ?? undefined);
  if (unionid !== undefined) contact.unionid = unionid;
  if (type === 2) {
    contact.corpName = input.corpName ?? "某某企业";
    contact.corpFullName = input.corpFullName ?? `${contact.corpName}有限公司`;
    contact.position = input.position ?? "";
  }
  state.contacts.set(externalUserId, contact);
  const followers = input.followedBy === undefined ? [] : Array.isArray(input.followedBy) ? input.followedBy : [input.followedBy];
  for (const f of followers) addFollow(state, externalUserId, typeof f === "string" ? { userid: f } : f);
  return contact;
}

/** Create (or re-create, after the customer had deleted the staff) a (customer, staff) relation. */
export function addFollow(state: FakeWecomState, externalUserId: string, input: FollowInput): FakeFollow {
  const staff = state.findStaff(input.userid) ?? controlFail(`unknown staff ${input.userid}`);
  if (!state.contacts.has(externalUserId)) controlFail(`unknown contact ${externalUserId}`);
  const existing = state.follow(externalUserId, staff.userid);
  if (existing && !existing.deletedByCustomer) controlFail(`${externalUserId} is already a customer of ${staff.userid}`);
  for (const id of input.tagIds ?? []) if (!state.findTag(id) || state.findTag(id)!.tag.deleted) controlFail(`unknown tag ${id}`);
  if (input.state !== undefined && [...input.state].length > 30) controlFail("state is at most 30 characters");
  const follow: FakeFollow = {
    userid: staff.userid,
    externalUserId,
    remark: input.remark ?? "",
    description: input.description ?? "",
    createtime: input.createtime ?? state.nowSec(),
    tagIds: [...new Set(input.tagIds ?? [])],
    addWay: input.addWay ?? 1,
    operUserid: input.operUserid ?? externalUserId,
    remarkMobiles: input.remarkMobiles ?? [],
    deletedByCustomer: false,
  };
  if (input.state !== undefined && input.state !== "") follow.state = input.state;
  if (input.remarkCorpName !== undefined) follow.remarkCorpName = input.remarkCorpName;
  state.putFollow(follow);
  return follow;
}

// ---- response shapes (doc §3.2/§3.3) ----

export function contactJson(c: FakeContact): Record<string, unknown> {
  const out: Record<string, unknown> = {
    external_userid: c.externalUserId,
    name: c.name,
    avatar: c.avatar,
    type: c.type,
    gender: c.gender,
  };
  if (c.unionid !== undefined) out.unionid = c.unionid;
  if (c.type === 2) {
    out.position = c.position ?? "";
    out.corp_name = c.corpName ?? "";
    out.corp_full_name = c.corpFullName ?? "";
    out.external_profile = { external_attr: [] };
  }
  return out;
}

/** Corp tags still alive on a relation (deleted tags silently drop off, as in WeCom). */
export function liveTagIds(state: FakeWecomState, f: FakeFollow): string[] {
  return f.tagIds.filter((id) => {
    const t = state.findTag(id);
    return t !== undefined && !t.tag.deleted && !t.group.deleted;
  });
}

export function followUserJson(state: FakeWecomState, f: FakeFollow): Record<string, unknown> {
  const tags = liveTagIds(state, f).map((id) => {
    const { tag, group } = state.findTag(id)!;
    return { group_name: group.name, tag_name: tag.name, tag_id: tag.id, type: 1 };
  });
  const out: Record<string, unknown> = {
    userid: f.userid,
    remark: f.remark,
    description: f.description,
    createtime: f.createtime,
    tags,
  };
  return withFollowDetails(out, f);
}

export function followInfoJson(state: FakeWecomState, f: FakeFollow): Record<string, unknown> {
  const out: Record<string, unknown> = {
    userid: f.userid,
    remark: f.remark,
    description: f.description,
    createtime: f.createtime,
    tag_id: liveTagIds(state, f),
  };
  return withFollowDetails(out, f);
}

/** The fields follow_user (externalcontact/get) and follow_info (batch/get_by_user) share. */
function withFollowDetails(out: Record<string, unknown>, f: FakeFollow): Record<string, unknown> {
  if (f.remarkCorpName !== undefined) out.remark_corp_name = f.remarkCorpName;
  out.remark_mobiles = f.remarkMobiles;
  out.oper_userid = f.operUserid;
  out.add_way = f.addWay;
  if (f.state !== undefined) out.state = f.state;
  return out;
}
