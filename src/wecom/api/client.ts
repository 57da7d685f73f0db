import { createHash, randomBytes } from "node:crypto";
import type { Redis } from "ioredis";
import { TOKEN_ERRCODES, WecomError, WecomNetworkError } from "./errors";
import { JsApiTickets } from "./jsapi";
import type {
  AppMessage,
  Attachment,
  BatchContactEntry,
  ContactWay,
  CorpTagGroup,
  ExternalContactDetail,
  GroupChatDetail,
  GroupMsgSendResult,
  MsgTemplate,
} from "./types";

/** A call that must not be repeated (add_msg_template) is made within this long or not at all. */
export const UNSAFE_DEADLINE_MS = 120_000;

/** WeCom's documented base frequency: 10,000 calls per corp per API per minute, 150,000 per hour. */
export const DEFAULT_LIMITS = { perMinute: 9_000, perHour: 140_000 };

export interface WecomClientOptions {
  /** https://qyapi.weixin.qq.com in live mode; the fake's URL in sandbox mode and tests. */
  baseUrl: string;
  corpId: string;
  secret: string;
  agentId?: number | undefined;
  /** Shared by every process: the token cache, the refresh lock and the rate-limit counters live here. */
  redis: Redis;
  keyPrefix?: string;
  limits?: { perMinute: number; perHour: number };
  /** Attempts after the first for retryable failures (45009, 45033, -1, network). */
  maxRetries?: number;
  /** First backoff delay; doubled per attempt with jitter. */
  backoffMs?: number;
  timeoutMs?: number;
  fetch?: typeof fetch;
  sleep?: (ms: number) => Promise<void>;
  now?: () => number;
  onCall?: (info: { api: string; errcode: number; ms: number }) => void;
}

type Query = Record<string, string | number | undefined>;

/**
 * The only module that knows WeCom URLs. One access token per (corp, secret), cached in Redis and
 * refreshed once across all processes (a Redis lock plus an in-process promise); calls rate-limited
 * per corp and API with Redis counters; retries with backoff only for retryable errcodes.
 */
export class WecomClient {
  private readonly prefix: string;
  private readonly tokenKey: string;
  private readonly lockKey: string;
  private inflight: Promise<string> | null = null;
  private readonly fetchFn: typeof fetch;
  private readonly sleep: (ms: number) => Promise<void>;
  private readonly now: () => number;

  constructor(private readonly o: WecomClientOptions) {
    this.prefix = `${o.keyPrefix ?? "siyu"}:wecom`;
    const secretId = createHash("sha256").update(o.secret).digest("hex").slice(0, 16);
    this.tokenKey = `${this.prefix}:token:${o.corpId}:${secretId}`;
    this.lockKey = `${this.tokenKey}:lock`;
    this.fetchFn = o.fetch ?? fetch;
    this.sleep = o.sleep ?? ((ms) => new Promise((r) => setTimeout(r, ms)));
    this.now = o.now ?? Date.now;
  }

  get corpId(): string {
    return this.o.corpId;
  }

  get agentId(): number | undefined {
    return this.o.agentId;
  }

  /** The API base this client calls (WeCom, or the fake in sandbox mode). */
  get baseUrl(): string {
    return this.o.baseUrl;
  }

  private tickets: JsApiTickets | undefined;

  /** This app's JS-SDK tickets and signatures (jsapi.ts), cached in the same Redis as the token. */
  get jsapi(): JsApiTickets {
    this.tickets ??= new JsApiTickets(this, { redis: this.o.redis, prefix: this.prefix, now: this.now, sleep: this.sleep });
    return this.tickets;
  }

  // ----------------------------------------------------------------- token

  /** The cached token, or a fresh one fetched by exactly one caller across processes. */
  async getAccessToken(): Promise<string> {
    const cached = await this.o.redis.get(this.tokenKey);
    if (cached) return cached;
    this.inflight ??= this.refresh().finally(() => {
      this.inflight = null;
    });
    return this.inflight;
  }

  /** Drop the cached token if it is still the one that failed (another process may have refreshed already). */
  private async invalidate(token: string): Promise<void> {
    await this.o.redis.eval(
      "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end",
      1,
      this.tokenKey,
      token,
    );
  }

  private async refresh(): Promise<string> {
    const owner = randomBytes(8).toString("hex");
    const deadline = this.now() + 15_000;
    for (;;) {
      const got = await this.o.redis.set(this.lockKey, owner, "PX", 10_000, "NX");
      if (got === "OK") {
        try {
          const again = await this.o.redis.get(this.tokenKey);
          if (again) return again;
          const res = await this.raw<{ access_token: string; expires_in: number }>("gettoken", "GET", "/cgi-bin/gettoken", { corpid: this.o.corpId, corpsecret: this.o.secret });
          // Expire early so no call goes out with a token WeCom is about to drop.
          const ttl = Math.max(60, res.expires_in - 300);
          await this.o.redis.set(this.tokenKey, res.access_token, "EX", ttl);
          return res.access_token;
        } finally {
          await this.o.redis.eval("if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end", 1, this.lockKey, owner);
        }
      }
      // Another process is fetching: wait for its token.
      await this.sleep(50);
      const t = await this.o.redis.get(this.tokenKey);
      if (t) return t;
      if (this.now() > deadline) throw new WecomNetworkError("gettoken", "timed out waiting for another process to refresh the access token");
    }
  }

  // ----------------------------------------------------------- rate limit

  /**
   * Fixed windows per corp and API (minute and hour); waits for the next window instead of failing,
   * except past `deadline` (then a local 45009: nothing was sent).
   */
  private async throttle(api: string, deadline = Infinity): Promise<void> {
    const limits = this.o.limits ?? DEFAULT_LIMITS;
    for (let i = 0; i < 120; i++) {
      const now = this.now();
      const minute = Math.floor(now / 60_000);
      const hour = Math.floor(now / 3_600_000);
      const mk = `${this.prefix}:rl:${this.o.corpId}:${api}:m${minute}`;
      const hk = `${this.prefix}:rl:${this.o.corpId}:${api}:h${hour}`;
      const [[, m], [, h]] = (await this.o.redis.multi().incr(mk).expire(mk, 61).incr(hk).expire(hk, 3601).exec()) as [[null, number], [null, number], [null, number], [null, number]];
      if (m <= limits.perMinute && h <= limits.perHour) return;
      const waitMs = h > limits.perHour ? (hour + 1) * 3_600_000 - now : (minute + 1) * 60_000 - now;
      if (now + waitMs > deadline) throw new WecomError(api, 45009, "local rate limit: no free window before the call's deadline (not sent)");
      await this.sleep(Math.min(Math.max(waitMs, 10), 60_000));
    }
    throw new WecomError(api, 45009, "local rate limit: no free window within 2 hours");
  }

  // ----------------------------------------------------------------- calls

  /** One HTTP exchange; throws WecomError for errcode != 0 and WecomNetworkError for transport failures. */
  private async raw<T>(api: string, method: "GET" | "POST", path: string, query: Query, body?: unknown): Promise<T> {
    const url = new URL(path, this.o.baseUrl);
    for (const [k, v] of Object.entries(query)) if (v !== undefined) url.searchParams.set(k, String(v));
    const started = this.now();
    let res: Response;
    try {
      const form = body instanceof FormData;
      res = await this.fetchFn(url, {
        method,
        headers: body === undefined || form ? {} : { "content-type": "application/json" },
        body: body === undefined ? undefined : form ? body : JSON.stringify(body),
        signal: AbortSignal.timeout(this.o.timeoutMs ?? 10_000),
      });
    } catch (err) {
      throw new WecomNetworkError(api, (err as Error).message, { cause: err });
    }
    if (!res.ok) throw new WecomNetworkError(api, `HTTP ${res.status}`);
    let json: { errcode?: number; errmsg?: string } & Record<string, unknown>;
    try {
      json = (await res.json()) as typeof json;
    } catch (err) {
      throw new WecomNetworkError(api, "the answer was not JSON", { cause: err });
    }
    const errcode = typeof json.errcode === "number" ? json.errcode : 0;
    this.o.onCall?.({ api, errcode, ms: this.now() - started });
    if (errcode !== 0) throw new WecomError(api, errcode, String(json.errmsg ?? ""));
    return json as T;
  }

  /**
   * An authenticated call: rate-limited, token refreshed once on 40014/42001/41001, retried with
   * exponential backoff on retryable errcodes and network failures.
   */
  async call<T>(api: string, method: "GET" | "POST", path: string, opts: { query?: Query; body?: unknown; unsafe?: boolean } = {}): Promise<T> {
    const maxRetries = this.o.maxRetries ?? 3;
    const backoff = this.o.backoffMs ?? 500;
    // An unsafe call either goes out within UNSAFE_DEADLINE_MS (plus one request timeout) or not at
    // all: its caller may conclude later that a call still unanswered will never be made.
    const deadline = opts.unsafe ? this.now() + UNSAFE_DEADLINE_MS : Infinity;
    let refreshed = false;
    for (let attempt = 0; ; attempt++) {
      await this.throttle(api, deadline);
      let token: string | undefined;
      try {
        // A failed token fetch (network, 45009 on gettoken) is retried like the call itself.
        token = await this.getAccessToken();
        return await this.raw<T>(api, method, path, { ...opts.query, access_token: token }, opts.body);
      } catch (err) {
        if (token && err instanceof WecomError && TOKEN_ERRCODES.has(err.errcode) && !refreshed) {
          refreshed = true;
          await this.invalidate(token);
          attempt--; // a token refresh is not a retry
          continue;
        }
        // A call that creates something (a mass-message task) is not repeated after a network
        // failure: WeCom may have done it and only the answer was lost. Errcodes are answers, so
        // retrying those is safe.
        const retryable = (err instanceof WecomError || (err instanceof WecomNetworkError && !opts.unsafe)) && err.retryable;
        if (!retryable || attempt >= maxRetries) throw err;
        // 45009 blocks the rest of WeCom's minute window: wait longer before trying again.
        const base = err instanceof WecomError && err.errcode === 45009 ? backoff * 4 : backoff;
        const delay = Math.round(base * 2 ** attempt * (0.75 + Math.random() * 0.5));
        if (this.now() + delay > deadline) throw err;
        await this.sleep(delay);
      }
    }
  }

  // ------------------------------------------------------- external contacts

  getExternalContact(externalUserId: string, cursor?: string): Promise<ExternalContactDetail> {
    return this.call("externalcontact/get", "GET", "/cgi-bin/externalcontact/get", { query: { external_userid: externalUserId, cursor } });
  }

  async listExternalContactIds(userId: string): Promise<string[]> {
    const r = await this.call<{ external_userid?: string[] }>("externalcontact/list", "GET", "/cgi-bin/externalcontact/list", { query: { userid: userId } });
    return r.external_userid ?? [];
  }

  /** One page of (customer, staff) pairs for up to 100 staff; an empty nextCursor is the last page. */
  async batchGetByUser(input: { userIdList: string[]; cursor?: string; limit?: number }): Promise<{ items: BatchContactEntry[]; nextCursor: string }> {
    const r = await this.call<{ external_contact_list?: BatchContactEntry[]; next_cursor?: string }>("externalcontact/batch/get_by_user", "POST", "/cgi-bin/externalcontact/batch/get_by_user", {
      body: { userid_list: input.userIdList, cursor: input.cursor ?? "", limit: input.limit ?? 100 },
    });
    return { items: r.external_contact_list ?? [], nextCursor: r.next_cursor ?? "" };
  }

  // --------------------------------------------------------------- corp tags

  async getCorpTagList(filter: { tagId?: string[]; groupId?: string[] } = {}): Promise<CorpTagGroup[]> {
    const r = await this.call<{ tag_group?: CorpTagGroup[] }>("externalcontact/get_corp_tag_list", "POST", "/cgi-bin/externalcontact/get_corp_tag_list", {
      body: { tag_id: filter.tagId ?? [], group_id: filter.groupId ?? [] },
    });
    return r.tag_group ?? [];
  }

  async addCorpTag(input: { groupId?: string; groupName?: string; order?: number; tags: { name: string; order?: number }[] }): Promise<CorpTagGroup> {
    const r = await this.call<{ tag_group: CorpTagGroup }>("externalcontact/add_corp_tag", "POST", "/cgi-bin/externalcontact/add_corp_tag", {
      body: { group_id: input.groupId, group_name: input.groupName, order: input.order, tag: input.tags, agentid: this.o.agentId },
    });
    return r.tag_group;
  }

  async editCorpTag(input: { id: string; name?: string; order?: number }): Promise<void> {
    await this.call("externalcontact/edit_corp_tag", "POST", "/cgi-bin/externalcontact/edit_corp_tag", { body: { ...input, agentid: this.o.agentId } });
  }

  async delCorpTag(input: { tagId?: string[]; groupId?: string[] }): Promise<void> {
    await this.call("externalcontact/del_corp_tag", "POST", "/cgi-bin/externalcontact/del_corp_tag", { body: { tag_id: input.tagId ?? [], group_id: input.groupId ?? [], agentid: this.o.agentId } });
  }

  async markTag(input: { userId: string; externalUserId: string; addTag?: string[]; removeTag?: string[] }): Promise<void> {
    await this.call("externalcontact/mark_tag", "POST", "/cgi-bin/externalcontact/mark_tag", {
      body: { userid: input.userId, external_userid: input.externalUserId, add_tag: input.addTag ?? [], remove_tag: input.removeTag ?? [] },
    });
  }

  // ------------------------------------------------------------ mass messages

  /**
   * Create a mass-message task (企业群发). Not retried after a network failure (WeCom may have
   * created the task): callers find out with getGroupMsgListV2 before trying again.
   */
  addMsgTemplate(input: MsgTemplate): Promise<{ msgid: string; fail_list?: string[] }> {
    return this.call("externalcontact/add_msg_template", "POST", "/cgi-bin/externalcontact/add_msg_template", { body: input, unsafe: true });
  }

  /** Remind the staff who have not sent their part of a mass message yet (WeCom pushes it in the client). */
  async remindGroupMsgSend(msgid: string): Promise<void> {
    await this.call("externalcontact/remind_groupmsg_send", "POST", "/cgi-bin/externalcontact/remind_groupmsg_send", { body: { msgid } });
  }

  /** Stop a mass message: staff who have not sent it can no longer send it. */
  async cancelGroupMsgSend(msgid: string): Promise<void> {
    await this.call("externalcontact/cancel_groupmsg_send", "POST", "/cgi-bin/externalcontact/cancel_groupmsg_send", { body: { msgid } });
  }

  getGroupMsgListV2(input: { chat_type: "single" | "group"; start_time: number; end_time: number; creator?: string; filter_type?: 0 | 1 | 2; limit?: number; cursor?: string }): Promise<{ next_cursor?: string; group_msg_list: { msgid: string; creator?: string; create_time: string; create_type: number; text?: { content: string }; attachments?: Attachment[] }[] }> {
    return this.call("externalcontact/get_groupmsg_list_v2", "POST", "/cgi-bin/externalcontact/get_groupmsg_list_v2", { body: input });
  }

  getGroupMsgTask(input: { msgid: string; limit?: number; cursor?: string }): Promise<{ next_cursor?: string; task_list: { userid: string; status: 0 | 2; send_time?: number }[] }> {
    return this.call("externalcontact/get_groupmsg_task", "POST", "/cgi-bin/externalcontact/get_groupmsg_task", { body: input });
  }

  getGroupMsgSendResult(input: { msgid: string; userid: string; limit?: number; cursor?: string }): Promise<{ next_cursor?: string; send_list: GroupMsgSendResult[] }> {
    return this.call("externalcontact/get_groupmsg_send_result", "POST", "/cgi-bin/externalcontact/get_groupmsg_send_result", { body: input });
  }

  /** Within 20 s of the add event, once. */
  async sendWelcomeMsg(input: { welcomeCode: string; text?: { content: string }; attachments?: Attachment[] }): Promise<void> {
    await this.call("externalcontact/send_welcome_msg", "POST", "/cgi-bin/externalcontact/send_welcome_msg", {
      body: { welcome_code: input.welcomeCode, text: input.text, attachments: input.attachments },
    });
  }

  // -------------------------------------------------------------- group chats

  async groupChatList(input: { statusFilter?: number; ownerUserIds?: string[]; cursor?: string; limit: number }): Promise<{ items: { chat_id: string; status: number }[]; nextCursor: string }> {
    const r = await this.call<{ group_chat_list?: { chat_id: string; status: number }[]; next_cursor?: string }>("externalcontact/groupchat/list", "POST", "/cgi-bin/externalcontact/groupchat/list", {
      body: { status_filter: input.statusFilter ?? 0, owner_filter: input.ownerUserIds ? { userid_list: input.ownerUserIds } : undefined, cursor: input.cursor ?? "", limit: input.limit },
    });
    return { items: r.group_chat_list ?? [], nextCursor: r.next_cursor ?? "" };
  }

  async groupChatGet(chatId: string): Promise<GroupChatDetail> {
    const r = await this.call<{ group_chat: GroupChatDetail }>("externalcontact/groupchat/get", "POST", "/cgi-bin/externalcontact/groupchat/get", { body: { chat_id: chatId, need_name: 1 } });
    return r.group_chat;
  }

  // ------------------------------------------------------------- contact ways

  addContactWay(input: ContactWay): Promise<{ config_id: string; qr_code?: string }> {
    return this.call("externalcontact/add_contact_way", "POST", "/cgi-bin/externalcontact/add_contact_way", { body: input });
  }

  async getContactWay(configId: string): Promise<ContactWay & { config_id: string; qr_code?: string }> {
    const r = await this.call<{ contact_way: ContactWay & { config_id: string; qr_code?: string } }>("externalcontact/get_contact_way", "POST", "/cgi-bin/externalcontact/get_contact_way", { body: { config_id: configId } });
    return r.contact_way;
  }

  // ----------------------------------------------------------- reassignment

  transferCustomer(input: { handoverUserId: string; takeoverUserId: string; externalUserIds: string[]; transferSuccessMsg?: string }): Promise<{ customer: { external_userid: string; errcode: number }[] }> {
    return this.call("externalcontact/transfer_customer", "POST", "/cgi-bin/externalcontact/transfer_customer", {
      body: { handover_userid: input.handoverUserId, takeover_userid: input.takeoverUserId, external_userid: input.externalUserIds, transfer_success_msg: input.transferSuccessMsg },
    });
  }

  transferResult(input: { handoverUserId: string; takeoverUserId: string; cursor?: string }): Promise<{ customer: { external_userid: string; status: number; takeover_time?: number }[]; next_cursor?: string }> {
    return this.call("externalcontact/transfer_result", "POST", "/cgi-bin/externalcontact/transfer_result", {
      body: { handover_userid: input.handoverUserId, takeover_userid: input.takeoverUserId, cursor: input.cursor ?? "" },
    });
  }

  resignedTransferCustomer(input: { handoverUserId: string; takeoverUserId: string; externalUserIds: string[] }): Promise<{ customer: { external_userid: string; errcode: number }[] }> {
    return this.call("externalcontact/resigned/transfer_customer", "POST", "/cgi-bin/externalcontact/resigned/transfer_customer", {
      body: { handover_userid: input.handoverUserId, takeover_userid: input.takeoverUserId, external_userid: input.externalUserIds },
    });
  }

  resignedTransferResult(input: { handoverUserId: string; takeoverUserId: string; cursor?: string }): Promise<{ customer: { external_userid: string; status: number; takeover_time?: number }[]; next_cursor?: string }> {
    return this.call("externalcontact/resigned/transfer_result", "POST", "/cgi-bin/externalcontact/resigned/transfer_result", {
      body: { handover_userid: input.handoverUserId, takeover_userid: input.takeoverUserId, cursor: input.cursor ?? "" },
    });
  }

  // ------------------------------------------------------------ media

  /**
   * Upload temporary media (media/upload, multipart field `media`): an image for a mini-program
   * card's cover (pic_media_id). WeCom keeps it 3 days.
   */
  uploadMedia(input: { type: "image" | "file"; filename: string; contentType: string; data: Uint8Array }): Promise<{ type: string; media_id: string; created_at: string }> {
    const form = new FormData();
    form.append("media", new Blob([input.data], { type: input.contentType }), input.filename);
    return this.call("media/upload", "POST", "/cgi-bin/media/upload", { query: { type: input.type }, body: form });
  }

  // ------------------------------------------------------------ app messages

  /** App message to staff (reminders, digests). Partly invalid recipients still succeed and are listed. */
  async sendAppMessage(input: { toUsers: string[]; message: AppMessage; duplicateCheckSeconds?: number }): Promise<{ msgid?: string; invalidUsers: string[] }> {
    const r = await this.call<{ msgid?: string; invaliduser?: string }>("message/send", "POST", "/cgi-bin/message/send", {
      body: {
        touser: input.toUsers.join("|"),
        agentid: this.o.agentId,
        ...input.message,
        enable_duplicate_check: input.duplicateCheckSeconds ? 1 : 0,
        duplicate_check_interval: input.duplicateCheckSeconds,
      },
    });
    return { msgid: r.msgid, invalidUsers: r.invaliduser ? r.invaliduser.split("|").filter(Boolean) : [] };
  }

  async getCallbackIps(): Promise<string[]> {
    const r = await this.call<{ ip_list?: string[] }>("getcallbackip", "GET", "/cgi-bin/getcallbackip");
    return r.ip_list ?? [];
  }
}
