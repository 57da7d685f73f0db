import { Clock } from "./clock";
import { fail } from "./errors";
import type { ResolvedOptions } from "./options";

// In-memory state of one fake corp. Plain records in insertion-ordered Maps; the rules that change
// them live in model/*.ts, shared by the API routes and the control surface.

export interface FakeStaff {
  /** As created; lookups are case-insensitive like WeCom's. */
  userid: string;
  name: string;
  /** Activated (logged in, real-name verified): needed for contact ways (41054) and takeovers (40098). */
  active: boolean;
  /** In the app's visibility: invisible staff are filtered out of follow_user and mass messages. */
  visible: boolean;
  resigned: boolean;
}

export interface FakeContact {
  externalUserId: string;
  name: string;
  /** 1 WeChat user, 2 WeCom user. */
  type: 1 | 2;
  /** 0 unknown, 1 male, 2 female. */
  gender: 0 | 1 | 2;
  unionid?: string;
  avatar: string;
  corpName?: string;
  corpFullName?: string;
  position?: string;
}

/** One (customer, staff) relation: a customer followed by several staff has several. */
export interface FakeFollow {
  userid: string;
  externalUserId: string;
  remark: string;
  description: string;
  createtime: number;
  tagIds: string[];
  addWay: number;
  state?: string;
  operUserid: string;
  remarkCorpName?: string;
  remarkMobiles: string[];
  /** The customer deleted/blocked the staff: the staff still sees them, sends fail (status 2). */
  deletedByCustomer: boolean;
}

export interface FakeTag {
  id: string;
  name: string;
  createTime: number;
  order: number;
  deleted: boolean;
}

export interface FakeTagGroup {
  groupId: string;
  name: string;
  createTime: number;
  order: number;
  deleted: boolean;
  tags: FakeTag[];
}

export interface FakeContactWay {
  configId: string;
  type: 1 | 2;
  scene: 1 | 2;
  style?: number;
  remark: string;
  skipVerify: boolean;
  state?: string;
  user: string[];
  party: number[];
  isTemp: boolean;
  expiresIn?: number;
  chatExpiresIn?: number;
  unionid?: string;
  isExclusive: boolean;
  conclusions?: unknown;
  qrCode?: string;
  createTime: number;
}

export interface FakeGroupMember {
  userid: string;
  /** 1 staff, 2 external contact. */
  type: 1 | 2;
  unionid?: string;
  joinTime: number;
  /** groupchat/get's scale: 1 direct invite, 2 invite link, 3 group QR. */
  joinScene: number;
  invitor?: string;
  groupNickname: string;
  name: string;
  state?: string;
}

export interface FakeGroupChat {
  chatId: string;
  name: string;
  owner: string;
  createTime: number;
  notice: string;
  members: FakeGroupMember[];
  adminList: string[];
  memberVersion: string;
  /** 0 normal, 1 owner resigned, 2 inheriting, 3 inherited. */
  status: 0 | 1 | 2 | 3;
  dismissed: boolean;
}

export interface FakeSendResult {
  userid: string;
  externalUserId?: string;
  chatId?: string;
  /** 0 not sent, 1 sent, 2 failed (not friends), 3 failed (per-recipient cap). */
  status: 0 | 1 | 2 | 3;
  sendTime?: number;
}

export interface FakeMassTask {
  userid: string;
  /** 0 not sent, 2 sent. */
  status: 0 | 2;
  sendTime?: number;
}

export interface FakeMassMessage {
  msgid: string;
  chatType: "single" | "group";
  /** Absent for API-created messages (they are corp messages, create_type 0). */
  creator?: string;
  createType: 0 | 1;
  createTime: number;
  createdAtMs: number;
  text?: { content: string };
  attachments: unknown[];
  allowSelect: boolean;
  cancelled: boolean;
  remindCount: number;
  tasks: FakeMassTask[];
  results: FakeSendResult[];
}

export interface FakeWelcomeCode {
  code: string;
  userid: string;
  externalUserId: string;
  issuedAtMs: number;
  usedAtMs?: number;
}

export interface FakeWelcomeMessage {
  welcomeCode: string;
  userid: string;
  externalUserId: string;
  text?: { content: string };
  attachments: unknown[];
  sentAt: number;
}

export interface FakeTransfer {
  kind: "onjob" | "resigned";
  externalUserId: string;
  handoverUserid: string;
  takeoverUserid: string;
  startedAtMs: number;
  /** 1 done, 2 waiting, 3 refused, 4 takeover at customer limit. */
  status: 1 | 2 | 3 | 4;
  /** Done: when taken over; waiting: when it will be. */
  takeoverTime: number;
  message?: string;
}

export interface FakeAppMessage {
  msgid: string;
  msgtype: string;
  /** Recipients that were valid and received it (none when suppressed as a duplicate). */
  delivered: string[];
  invalidUsers: string[];
  body: Record<string, unknown>;
  sentAt: number;
  duplicate: boolean;
}

export interface FakeAccessToken {
  token: string;
  secret: string;
  issuedAtMs: number;
  expiresAtMs: number;
  revoked: boolean;
}

export interface RateBucket {
  minute: number;
  count: number;
  blockedUntilMs: number;
}

export interface ApiCall {
  method: string;
  path: string;
  errcode: number;
  at: number;
}

/** Settings the control surface can change at run time. */
export type FakeSettings = Pick<
  ResolvedOptions,
  | "tokenTtlSeconds"
  | "rateLimitPerMinute"
  | "massMessageCap"
  | "callbackUrl"
  | "callbackTimeoutMs"
  | "callbackRetries"
  | "callbackRetryDelayMs"
  | "verifyTimeoutMs"
  | "welcomeCodeTtlSeconds"
  | "transferDelaySeconds"
  | "massMessageDispatchMs"
>;

export const lower = (userid: string): string => userid.toLowerCase();
const followKey = (externalUserId: string, userid: string) => `${externalUserId}\u0000${lower(userid)}`;

export class FakeWecomState {
  readonly corpId: string;
  readonly agentId: number;
  readonly secrets: readonly string[];
  readonly callbackToken: string;
  readonly encodingAesKey: string;
  readonly clock: Clock;
  readonly settings: FakeSettings;

  readonly staff = new Map<string, FakeStaff>();
  readonly contacts = new Map<string, FakeContact>();
  readonly follows = new Map<string, FakeFollow>();
  /** external_userid → keys of its follows (followsOfContact without a scan: mass messages to 10,000 customers). */
  private readonly followKeysByContact = new Map<string, Set<string>>();
  readonly tagGroups = new Map<string, FakeTagGroup>();
  readonly contactWays = new Map<string, FakeContactWay>();
  readonly groupChats = new Map<string, FakeGroupChat>();
  readonly massMessages = new Map<string, FakeMassMessage>();
  /** Recipient (external_userid or chat_id) → send times (ms) of mass messages it actually received. */
  readonly massReceipts = new Map<string, number[]>();
  readonly welcomeCodes = new Map<string, FakeWelcomeCode>();
  readonly welcomeMessages: FakeWelcomeMessage[] = [];
  readonly transfers: FakeTransfer[] = [];
  readonly appMessages: FakeAppMessage[] = [];
  /** Temporary media (media/upload) by media_id: valid 3 days. */
  readonly media = new Map<string, { type: string; filename: string; contentType: string; bytes: number; createdAtSec: number }>();

  /** Whether media_id names uploaded media still inside WeCom's 3 days. */
  mediaValid(mediaId: string): boolean {
    const m = this.media.get(mediaId);
    return m !== undefined && this.nowSec() - m.createdAtSec < 3 * 86_400;
  }
  readonly tokens = new Map<string, FakeAccessToken>();
  /** secret → its current token. */
  readonly currentTokens = new Map<string, string>();
  /** Every authenticated API call, in order (handy to assert what a client did). */
  readonly apiCalls: ApiCall[] = [];
  /** API path → its 45009 counter for the current natural minute. */
  readonly rateBuckets = new Map<string, RateBucket>();

  constructor(opts: ResolvedOptions) {
    this.corpId = opts.corpId;
    this.agentId = opts.agentId;
    this.secrets = [...opts.secrets];
    this.callbackToken = opts.callbackToken;
    this.encodingAesKey = opts.encodingAesKey;
    this.clock = new Clock(opts.now);
    this.settings = {
      tokenTtlSeconds: opts.tokenTtlSeconds,
      rateLimitPerMinute: opts.rateLimitPerMinute,
      massMessageCap: { ...opts.massMessageCap },
      callbackUrl: opts.callbackUrl,
      callbackTimeoutMs: opts.callbackTimeoutMs,
      callbackRetries: opts.callbackRetries,
      callbackRetryDelayMs: opts.callbackRetryDelayMs,
      verifyTimeoutMs: opts.verifyTimeoutMs,
      welcomeCodeTtlSeconds: opts.welcomeCodeTtlSeconds,
      transferDelaySeconds: opts.transferDelaySeconds,
      massMessageDispatchMs: opts.massMessageDispatchMs,
    };
  }

  nowSec(): number {
    return this.clock.nowSec();
  }

  nowMs(): number {
    return this.clock.nowMs();
  }

  // ---- staff ----

  findStaff(userid: string | undefined): FakeStaff | undefined {
    return userid === undefined ? undefined : this.staff.get(lower(userid));
  }

  /** A staff member the app can see; otherwise `errcode` (40003 invalid userid by default). */
  requireStaff(userid: string | undefined, errcode = 40003): FakeStaff {
    if (userid === undefined || userid === "") return fail(41009);
    const s = this.findStaff(userid);
    if (!s || !s.visible) return fail(errcode, userid);
    return s;
  }

  // ---- contacts and follow relations ----

  follow(externalUserId: string, userid: string): FakeFollow | undefined {
    return this.follows.get(followKey(externalUserId, userid));
  }

  putFollow(f: FakeFollow): void {
    const key = followKey(f.externalUserId, f.userid);
    this.follows.set(key, f);
    let keys = this.followKeysByContact.get(f.externalUserId);
    if (!keys) this.followKeysByContact.set(f.externalUserId, (keys = new Set()));
    keys.add(key);
  }

  removeFollow(externalUserId: string, userid: string): FakeFollow | undefined {
    const key = followKey(externalUserId, userid);
    const f = this.follows.get(key);
    this.follows.delete(key);
    this.followKeysByContact.get(externalUserId)?.delete(key);
    return f;
  }

  followsOfContact(externalUserId: string): FakeFollow[] {
    const out: FakeFollow[] = [];
    for (const key of this.followKeysByContact.get(externalUserId) ?? []) {
      const f = this.follows.get(key);
      if (f && f.externalUserId === externalUserId) out.push(f);
    }
    return out;
  }

  followsOfStaff(userid: string): FakeFollow[] {
    const key = lower(userid);
    return [...this.follows.values()].filter((f) => lower(f.userid) === key);
  }

  /** Follows whose staff is in the app's visibility: what the APIs expose. */
  visibleFollowsOfContact(externalUserId: string): FakeFollow[] {
    return this.followsOfContact(externalUserId).filter((f) => this.findStaff(f.userid)?.visible === true);
  }

  // ---- tags ----

  findTag(id: string): { tag: FakeTag; group: FakeTagGroup } | undefined {
    for (const group of this.tagGroups.values()) {
      const tag = group.tags.find((t) => t.id === id);
      if (tag) return { tag, group };
    }
    return undefined;
  }

  liveTagCount(): number {
    let n = 0;
    for (const g of this.tagGroups.values()) if (!g.deleted) n += g.tags.filter((t) => !t.deleted).length;
    return n;
  }

  /** A JSON-friendly dump for debugging and the control API. */
  snapshot() {
    return {
      corpId: this.corpId,
      agentId: this.agentId,
      settings: this.settings,
      staff: [...this.staff.values()],
      contacts: [...this.contacts.values()],
      follows: [...this.follows.values()],
      tagGroups: [...this.tagGroups.values()],
      contactWays: [...this.contactWays.values()],
      groupChats: [...this.groupChats.values()],
      massMessages: [...this.massMessages.values()],
      welcomeMessages: this.welcomeMessages,
      transfers: this.transfers,
      appMessages: this.appMessages,
    };
  }
}
