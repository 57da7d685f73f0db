// The fake WeCom (src/wecom/fake) against the protocol doc (/work/shared/wecom-protocol.md): every
// API family over real HTTP, the limits, and the callback sender checked by an independent receiver
// that decrypts with the official @wecom/crypto. Needs no database.
import { serve, type ServerType } from "@hono/node-server";
import { decrypt, getSignature } from "@wecom/crypto";
import { Hono } from "hono";
import { afterEach, describe, expect, it } from "vitest";
import { contactEvent, startFakeWecom, type FakeWecomOptions, type RunningFakeWecom } from "../../src/wecom/fake/index";

const CORP = "ww0123456789abcdef";
const AGENT = 1000002;
const APP_SECRET = "AppSecret_fake_0123456789abcdefghijklmnopq";
const CONTACT_SECRET = "ContactSecret_fake_0123456789abcdefghijkl";
const TOKEN = "ClinicFakeToken01";
const AES = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";
/** 2026-03-02 10:00 in Asia/Shanghai. */
const T0 = Date.parse("2026-03-02T02:00:00Z");

class TestClock {
  ms = T0;
  readonly now = () => new Date(this.ms);
  advance(ms: number) {
    this.ms += ms;
  }
  get sec() {
    return Math.floor(this.ms / 1000);
  }
}

class Api {
  token: string | undefined;
  autoRefresh = true;
  constructor(
    private readonly base: string,
    private readonly secret = CONTACT_SECRET,
  ) {}

  async raw(method: string, path: string, opts: { query?: Record<string, string>; body?: unknown } = {}) {
    const qs = new URLSearchParams(opts.query ?? {}).toString();
    const body = opts.body === undefined ? undefined : typeof opts.body === "string" ? opts.body : JSON.stringify(opts.body);
    const res = await fetch(`${this.base}/cgi-bin/${path}${qs ? `?${qs}` : ""}`, { method, body });
    return { status: res.status, headers: res.headers, json: (await res.json()) as any };
  }

  async getToken(): Promise<string> {
    const r = await this.raw("GET", "gettoken", { query: { corpid: CORP, corpsecret: this.secret } });
    expect(r.json.errcode).toBe(0);
    this.token = r.json.access_token as string;
    return this.token;
  }

  /** Like a real client: refetch the token once on 42001/40014 and retry (doc §3.1). */
  private async call(method: string, path: string, query: Record<string, string>, body?: unknown): Promise<any> {
    this.token ??= await this.getToken();
    const first = (await this.raw(method, path, { query: { access_token: this.token, ...query }, body })).json;
    if (!this.autoRefresh || (first.errcode !== 42001 && first.errcode !== 40014)) return first;
    await this.getToken();
    return (await this.raw(method, path, { query: { access_token: this.token!, ...query }, body })).json;
  }

  get(path: string, query: Record<string, string> = {}): Promise<any> {
    return this.call("GET", path, query);
  }

  post(path: string, body: unknown): Promise<any> {
    return this.call("POST", path, {}, body);
  }
}

const running: Array<{ close(): Promise<void> }> = [];
afterEach(async () => {
  while (running.length > 0) await running.pop()!.close();
});

async function setup(opts: FakeWecomOptions = {}) {
  const clock = new TestClock();
  const fake = await startFakeWecom({
    corpId: CORP,
    agentId: AGENT,
    secrets: [APP_SECRET, CONTACT_SECRET],
    callbackToken: TOKEN,
    encodingAesKey: AES,
    now: clock.now,
    ...opts,
  });
  running.push(fake);
  return { fake, control: fake.control, state: fake.state, api: new Api(fake.url), clock };
}

/** Two consultants and one reception account, all visible to the app. */
function seedStaff(fake: RunningFakeWecom) {
  fake.control.createStaff({ userid: "ZhangSan", name: "张三" });
  fake.control.createStaff({ userid: "lisi", name: "李四" });
  fake.control.createStaff({ userid: "reception", name: "前台" });
}

// ---- a callback receiver: decrypts with the official library, independent of the fake ----

interface Received {
  method: string;
  rawQuery: string;
  query: Record<string, string>;
  body: string;
  encrypt: string;
  plaintext: string;
  receiveId: string;
  signatureOk: boolean;
}

type Plan = number | "hang";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Percent-decoding only (no `+` → space), so a wrongly encoded `+` would show up. */
function parseRawQuery(raw: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of raw.split("&")) {
    if (!part) continue;
    const i = part.indexOf("=");
    out[decodeURIComponent(part.slice(0, i))] = decodeURIComponent(part.slice(i + 1));
  }
  return out;
}

async function startReceiver(opts: { plan?: Plan[]; echo?: (plaintext: string) => string } = {}) {
  const received: Received[] = [];
  const plan = [...(opts.plan ?? [])];
  const app = new Hono();
  app.all("/wecom/callback", async (c) => {
    const rawQuery = new URL(c.req.url).search.slice(1);
    const query = parseRawQuery(rawQuery);
    const body = await c.req.text();
    const encrypt = c.req.method === "GET" ? (query.echostr ?? "") : (/<Encrypt><!\[CDATA\[(.*?)\]\]><\/Encrypt>/.exec(body)?.[1] ?? "");
    const { message, id } = decrypt(AES, encrypt);
    received.push({
      method: c.req.method,
      rawQuery,
      query,
      body,
      encrypt,
      plaintext: message,
      receiveId: id,
      signatureOk: getSignature(TOKEN, query.timestamp ?? "", query.nonce ?? "", encrypt) === query.msg_signature,
    });
    if (c.req.method === "GET") return c.body(opts.echo ? opts.echo(message) : message, 200);
    const step = plan.shift() ?? 200;
    if (step === "hang") {
      await sleep(700);
      return c.body("", 200);
    }
    return c.body("", step as 200);
  });
  const server = await new Promise<ServerType>((resolve) => {
    const s = serve({ fetch: app.fetch, port: 0, hostname: "127.0.0.1" }, () => resolve(s));
  });
  const port = (server.address() as { port: number }).port;
  const handle = {
    url: `http://127.0.0.1:${port}/wecom/callback`,
    received,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        (server as unknown as { closeAllConnections(): void }).closeAllConnections();
      }),
  };
  running.push(handle);
  return handle;
}

const field = (xml: string, name: string) => new RegExp(`<${name}>(?:<!\\[CDATA\\[)?(.*?)(?:\\]\\]>)?</${name}>`).exec(xml)?.[1];
const ERRMSG_SHAPE = /^.+, hint: \[[^\]]+\], from ip: 127\.0\.0\.1, more info at https:\/\/open\.work\.weixin\.qq\.com\/devtool\/query\?e=\d+$/;

// =====================================================================================

describe("gettoken and access tokens", () => {
  it("rejects a bad corpid (40013), a bad secret (40001), a missing secret (41004), as HTTP 200 with a WeCom-shaped errmsg", async () => {
    const { api } = await setup();
    const badCorp = await api.raw("GET", "gettoken", { query: { corpid: "wwffffffffffffffff", corpsecret: APP_SECRET } });
    expect(badCorp.status).toBe(200);
    expect(badCorp.json.errcode).toBe(40013);
    expect(badCorp.json.errmsg).toMatch(ERRMSG_SHAPE);
    expect(badCorp.json.errmsg).toMatch(/e=40013$/);
    expect(badCorp.headers.get("error-code")).toBe("40013");
    expect((await api.raw("GET", "gettoken", { query: { corpid: CORP, corpsecret: "nope" } })).json.errcode).toBe(40001);
    expect((await api.raw("GET", "gettoken", { query: { corpid: CORP } })).json.errcode).toBe(41004);
  });

  it("returns the same token while valid, one per secret, and a new one after expiry (42001 on the old)", async () => {
    const { api, clock } = await setup({ tokenTtlSeconds: 7200 });
    api.autoRefresh = false;
    const first = await api.raw("GET", "gettoken", { query: { corpid: CORP, corpsecret: CONTACT_SECRET } });
    expect(first.json).toMatchObject({ errcode: 0, errmsg: "ok", expires_in: 7200 });
    expect(first.json.access_token.length).toBeGreaterThan(100);
    clock.advance(3600_000);
    const again = await api.raw("GET", "gettoken", { query: { corpid: CORP, corpsecret: CONTACT_SECRET } });
    expect(again.json.access_token).toBe(first.json.access_token);
    expect(again.json.expires_in).toBe(3600);
    const appToken = await api.raw("GET", "gettoken", { query: { corpid: CORP, corpsecret: APP_SECRET } });
    expect(appToken.json.access_token).not.toBe(first.json.access_token);

    api.token = first.json.access_token;
    expect((await api.get("getcallbackip")).errcode).toBe(0);
    clock.advance(3600_000);
    expect((await api.get("getcallbackip")).errcode).toBe(42001);
    const renewed = await api.getToken();
    expect(renewed).not.toBe(first.json.access_token);
    expect((await api.get("getcallbackip")).errcode).toBe(0);
  });

  it("revokeTokens() invalidates early (40014) until the caller refetches; a missing token is 41001", async () => {
    const { api, control } = await setup();
    api.autoRefresh = false;
    const before = await api.getToken();
    control.revokeTokens();
    expect((await api.get("getcallbackip")).errcode).toBe(40014);
    expect(await api.getToken()).not.toBe(before);
    expect((await api.get("getcallbackip")).errcode).toBe(0);
    const missing = await api.raw("GET", "getcallbackip");
    expect(missing.json.errcode).toBe(41001);
    expect((await api.raw("GET", "getcallbackip", { query: { access_token: "made-up" } })).json.errcode).toBe(40014);
  });

  it("answers unknown paths with HTTP 404 errcode 48001, and getcallbackip with an ip_list", async () => {
    const { api } = await setup();
    const r = await api.raw("GET", "externalcontact/no_such_api");
    expect(r.status).toBe(404);
    expect(r.json.errcode).toBe(48001);
    const ips = await api.get("getcallbackip");
    expect(ips.ip_list.length).toBeGreaterThan(0);
  });

  it("appends 'Warning: wrong json format.' to errmsg for a malformed body, and 40058 for a POST API called with GET", async () => {
    const { api } = await setup();
    await api.getToken();
    const ok = await api.raw("POST", "externalcontact/get_corp_tag_list", { query: { access_token: api.token! }, body: "{not json" });
    expect(ok.json.errcode).toBe(0);
    expect(ok.json.errmsg).toBe("ok, Warning: wrong json format.");
    const bad = await api.raw("POST", "externalcontact/add_corp_tag", { query: { access_token: api.token! }, body: '{"group_name": "来源",' });
    expect(bad.json.errcode).toBe(41018);
    expect(bad.json.errmsg).toMatch(/e=41018, Warning: wrong json format\.$/);
    const wrongType = await api.post("externalcontact/get_corp_tag_list", { tag_id: "etNotAnArray" });
    expect(wrongType.errmsg).toContain("Warning: wrong json format.");
    expect((await api.get("externalcontact/get_corp_tag_list")).errcode).toBe(40058);
  });
});

describe("rate limit (45009)", () => {
  it("blocks a path for the rest of the minute after N calls and recovers the next minute; other paths are unaffected", async () => {
    const { api, control, clock } = await setup();
    await api.getToken();
    control.setRateLimit(3);
    clock.ms = Date.parse("2026-03-02T02:00:10Z");
    for (let i = 0; i < 3; i++) expect((await api.get("getcallbackip")).errcode).toBe(0);
    const over = await api.get("getcallbackip");
    expect(over.errcode).toBe(45009);
    expect(over.errmsg).toMatch(/^api freq out of limit/);
    clock.advance(40_000);
    expect((await api.get("getcallbackip")).errcode).toBe(45009);
    expect((await api.get("get_api_domain_ip")).errcode).toBe(0);
    clock.ms = Date.parse("2026-03-02T02:01:00Z");
    expect((await api.get("getcallbackip")).errcode).toBe(0);
  });
});

describe("customers: get, list, batch/get_by_user", () => {
  it("returns the customer with follow_user (tags, state, add_way) and next_cursor; 40096 for an unknown id", async () => {
    const { fake, api, control } = await setup();
    seedStaff(fake);
    const tags = await api.post("externalcontact/add_corp_tag", { group_name: "意向项目", tag: [{ name: "祛痘" }, { name: "光子嫩肤" }] });
    const acne = tags.tag_group.tag[0].id;
    const c = control.createContact({
      name: "王女士",
      followedBy: [{ userid: "ZhangSan", remark: "王女士-祛痘", state: "clinic_a_poster_01", tagIds: [acne] }, "lisi"],
    });
    expect(c.externalUserId).toMatch(/^wm[A-Za-z0-9]{30}$/);
    const r = await api.get("externalcontact/get", { external_userid: c.externalUserId });
    expect(r.errcode).toBe(0);
    expect(r.external_contact).toMatchObject({ external_userid: c.externalUserId, name: "王女士", type: 1, gender: 2 });
    expect(r.external_contact.unionid).toMatch(/^o/);
    expect(r.next_cursor).toBe("");
    expect(r.follow_user).toHaveLength(2);
    expect(r.follow_user[0]).toMatchObject({
      userid: "ZhangSan",
      remark: "王女士-祛痘",
      state: "clinic_a_poster_01",
      add_way: 1,
      oper_userid: c.externalUserId,
      tags: [{ group_name: "意向项目", tag_name: "祛痘", tag_id: acne, type: 1 }],
    });
    expect(r.follow_user[1].state).toBeUndefined();
    expect((await api.get("externalcontact/get", { external_userid: "wmUnknownUnknownUnknownUnknown00" })).errcode).toBe(40096);
    expect((await api.get("externalcontact/list", { userid: "zhangsan" })).external_userid).toEqual([c.externalUserId]);
    expect((await api.get("externalcontact/list", { userid: "reception" })).errcode).toBe(84061);
    expect((await api.get("externalcontact/list", { userid: "ghost" })).errcode).toBe(40003);
  });

  it("pages batch/get_by_user: 230 relations, limit 100 → 100, 100, 30; limit clamps to 100, defaults to 50", async () => {
    const { fake, api, control } = await setup();
    seedStaff(fake);
    for (let i = 0; i < 150; i++) control.createContact({ followedBy: "ZhangSan" });
    for (let i = 0; i < 80; i++) control.createContact({ followedBy: "lisi" });
    const seen = new Set<string>();
    const sizes: number[] = [];
    let cursor = "";
    do {
      const r = await api.post("externalcontact/batch/get_by_user", { userid_list: ["zhangsan", "lisi"], cursor, limit: 100 });
      expect(r.errcode).toBe(0);
      sizes.push(r.external_contact_list.length);
      for (const e of r.external_contact_list) {
        expect(e.follow_info.tag_id).toEqual([]);
        expect(e.follow_info.tags).toBeUndefined();
        seen.add(`${e.external_contact.external_userid}/${e.follow_info.userid}`);
      }
      cursor = r.next_cursor;
    } while (cursor !== "");
    expect(sizes).toEqual([100, 100, 30]);
    expect(seen.size).toBe(230);
    const clamped = await api.post("externalcontact/batch/get_by_user", { userid_list: ["ZhangSan"], limit: 500 });
    expect(clamped.external_contact_list).toHaveLength(100);
    const dflt = await api.post("externalcontact/batch/get_by_user", { userid_list: ["ZhangSan"] });
    expect(dflt.external_contact_list).toHaveLength(50);
    const tooMany = await api.post("externalcontact/batch/get_by_user", { userid_list: Array.from({ length: 101 }, (_, i) => `u${i}`) });
    expect(tooMany.errcode).toBe(40058);
  });
});

describe("corp tags and mark_tag", () => {
  it("collapses duplicate names, adds to an existing group by name, enforces 30 chars, 40071 and 40068, and drops an emptied group", async () => {
    const { api } = await setup();
    const created = await api.post("externalcontact/add_corp_tag", { group_name: "来源渠道", order: 5, tag: [{ name: "海报" }, { name: "海报" }, { name: "转介绍", order: 2 }] });
    expect(created.errcode).toBe(0);
    expect(created.tag_group.group_id).toMatch(/^et/);
    expect(created.tag_group.tag.map((t: any) => t.name).sort()).toEqual(["海报", "转介绍"]);
    const groupId = created.tag_group.group_id;
    const more = await api.post("externalcontact/add_corp_tag", { group_name: "来源渠道", tag: [{ name: "抖音" }, { name: "海报" }] });
    expect(more.tag_group.group_id).toBe(groupId);
    const list = await api.post("externalcontact/get_corp_tag_list", {});
    expect(list.tag_group).toHaveLength(1);
    expect(list.tag_group[0].tag).toHaveLength(3);
    expect(list.tag_group[0].tag[0].name).toBe("转介绍"); // larger order first
    expect(list.tag_group[0].deleted).toBeUndefined();

    expect((await api.post("externalcontact/add_corp_tag", { group_name: "x", tag: [{ name: "长".repeat(31) }] })).errcode).toBe(40058);
    const [poster, referral, douyin] = ["海报", "转介绍", "抖音"].map((n) => list.tag_group[0].tag.find((t: any) => t.name === n).id);
    expect((await api.post("externalcontact/edit_corp_tag", { id: douyin, name: "海报" })).errcode).toBe(40071);
    expect((await api.post("externalcontact/edit_corp_tag", { id: douyin, name: "抖音直播", order: 9 })).errcode).toBe(0);
    expect((await api.post("externalcontact/del_corp_tag", { tag_id: ["etNoSuchTag"] })).errcode).toBe(40068);

    expect((await api.post("externalcontact/del_corp_tag", { tag_id: [poster, referral, douyin] })).errcode).toBe(0);
    expect((await api.post("externalcontact/get_corp_tag_list", {})).tag_group).toEqual([]);
    const byId = await api.post("externalcontact/get_corp_tag_list", { group_id: [groupId] });
    expect(byId.tag_group[0]).toMatchObject({ group_id: groupId, deleted: true });
  });

  it("stops at 3000 corp tags (40126)", async () => {
    const { api } = await setup();
    for (let g = 0; g < 3; g++) {
      const tag = Array.from({ length: 1000 }, (_, i) => ({ name: `t${g}-${i}` }));
      expect((await api.post("externalcontact/add_corp_tag", { group_name: `g${g}`, tag })).errcode).toBe(0);
    }
    expect((await api.post("externalcontact/add_corp_tag", { group_name: "g3", tag: [{ name: "one more" }] })).errcode).toBe(40126);
  });

  it("mark_tag changes the relation's tags, refuses another staff's customer (84061), and sends no callback", async () => {
    const receiver = await startReceiver();
    const { fake, api, control } = await setup({ callbackUrl: receiver.url });
    seedStaff(fake);
    const c = control.createContact({ followedBy: "ZhangSan" });
    const tag = (await api.post("externalcontact/add_corp_tag", { group_name: "阶段", tag: [{ name: "已到店" }] })).tag_group.tag[0].id;
    expect((await api.post("externalcontact/mark_tag", { userid: "ZhangSan", external_userid: c.externalUserId, add_tag: [tag] })).errcode).toBe(0);
    const r = await api.get("externalcontact/get", { external_userid: c.externalUserId });
    expect(r.follow_user[0].tags.map((t: any) => t.tag_id)).toEqual([tag]);
    expect((await api.post("externalcontact/mark_tag", { userid: "lisi", external_userid: c.externalUserId, add_tag: [tag] })).errcode).toBe(84061);
    expect((await api.post("externalcontact/mark_tag", { userid: "ZhangSan", external_userid: c.externalUserId, add_tag: ["etGone"] })).errcode).toBe(40068);
    await control.flushCallbacks();
    expect(control.events).toHaveLength(0);
    expect(receiver.received).toHaveLength(0);
  });
});

describe("mass messages (企业群发)", () => {
  it("creates a task with fail_list, reports tasks and results, and applies the 1-per-day cap as status 3", async () => {
    const { fake, api, control, clock } = await setup();
    seedStaff(fake);
    const a = control.createContact({ followedBy: "ZhangSan" });
    const b = control.createContact({ followedBy: "ZhangSan" });
    const unknown = "wmNotACustomerNotACustomerNotAC";
    const first = await api.post("externalcontact/add_msg_template", {
      chat_type: "single",
      external_userid: [a.externalUserId, b.externalUserId, unknown],
      sender: "ZhangSan",
      text: { content: "三月祛痘季：到店即享皮肤检测" },
      attachments: [{ msgtype: "link", link: { title: "活动详情", url: "https://clinic.example/acne" } }],
    });
    expect(first.errcode).toBe(0);
    expect(first.msgid).toMatch(/^msg/);
    expect(first.fail_list).toEqual([unknown]);

    const tasks = await api.post("externalcontact/get_groupmsg_task", { msgid: first.msgid });
    expect(tasks.task_list).toEqual([{ userid: "ZhangSan", status: 0 }]);
    control.staffConfirmsMassMessage(first.msgid, "zhangsan");
    const sentTasks = await api.post("externalcontact/get_groupmsg_task", { msgid: first.msgid });
    expect(sentTasks.task_list).toEqual([{ userid: "ZhangSan", status: 2, send_time: clock.sec }]);
    const results = await api.post("externalcontact/get_groupmsg_send_result", { msgid: first.msgid, userid: "ZhangSan" });
    expect(results.send_list).toEqual([
      { external_userid: a.externalUserId, userid: "ZhangSan", status: 1, send_time: clock.sec },
      { external_userid: b.externalUserId, userid: "ZhangSan", status: 1, send_time: clock.sec },
    ]);

    // Same day (Asia/Shanghai): a already got one → 3; a new customer c gets it.
    clock.advance(3 * 3600_000);
    const c = control.createContact({ followedBy: "ZhangSan" });
    const second = await api.post("externalcontact/add_msg_template", { external_userid: [a.externalUserId, c.externalUserId], sender: "ZhangSan", text: { content: "复诊提醒" } });
    control.staffConfirmsMassMessage(second.msgid, "ZhangSan");
    const r2 = await api.post("externalcontact/get_groupmsg_send_result", { msgid: second.msgid, userid: "ZhangSan" });
    expect(r2.send_list.map((r: any) => [r.external_userid, r.status])).toEqual([
      [a.externalUserId, 3],
      [c.externalUserId, 1],
    ]);

    // After midnight in Shanghai (16:00 UTC) the cap resets.
    clock.ms = Date.parse("2026-03-02T16:00:01Z");
    const third = await api.post("externalcontact/add_msg_template", { external_userid: [a.externalUserId], sender: "ZhangSan", text: { content: "新的一天" } });
    control.staffConfirmsMassMessage(third.msgid, "ZhangSan");
    expect((await api.post("externalcontact/get_groupmsg_send_result", { msgid: third.msgid, userid: "ZhangSan" })).send_list[0].status).toBe(1);

    const list = await api.post("externalcontact/get_groupmsg_list_v2", { chat_type: "single", start_time: Math.floor(T0 / 1000) - 60, end_time: clock.sec });
    expect(list.group_msg_list).toHaveLength(3);
    expect(list.group_msg_list[0]).toMatchObject({ msgid: first.msgid, create_type: 0, create_time: String(Math.floor(T0 / 1000)), text: { content: "三月祛痘季：到店即享皮肤检测" } });
    expect(list.group_msg_list[0].creator).toBeUndefined();
    expect(list.next_cursor).toBe("");
  });

  it("validates recipients and content: 41048, 41064, 45002, and a group send needs a sender", async () => {
    const { fake, api, control } = await setup();
    seedStaff(fake);
    const a = control.createContact({ followedBy: "lisi" });
    expect((await api.post("externalcontact/add_msg_template", { external_userid: ["wmNobodyNobodyNobodyNobodyNobod"], text: { content: "hi" } })).errcode).toBe(41048);
    const ten = Array.from({ length: 10 }, () => ({ msgtype: "image", image: { pic_url: "https://p.qpic.cn/x.png" } }));
    expect((await api.post("externalcontact/add_msg_template", { external_userid: [a.externalUserId], attachments: ten })).errcode).toBe(41064);
    expect((await api.post("externalcontact/add_msg_template", { external_userid: [a.externalUserId], text: { content: "字".repeat(1334) } })).errcode).toBe(45002);
    expect((await api.post("externalcontact/add_msg_template", { external_userid: [a.externalUserId], attachments: [{ msgtype: "voice", voice: {} }] })).errcode).toBe(41065);
    expect((await api.post("externalcontact/add_msg_template", { chat_type: "group", text: { content: "群通知" } })).errcode).toBe(41009);

    const { chatId } = await control.createGroupChat({ owner: "lisi", name: "祛痘交流群", members: [a.externalUserId] });
    const group = await api.post("externalcontact/add_msg_template", { chat_type: "group", sender: "lisi", text: { content: "群通知" } });
    expect(group.errcode).toBe(0);
    expect((await api.post("externalcontact/get_groupmsg_send_result", { msgid: group.msgid, userid: "lisi" })).send_list).toEqual([]);
    control.staffConfirmsMassMessage(group.msgid, "lisi");
    const sent = await api.post("externalcontact/get_groupmsg_send_result", { msgid: group.msgid, userid: "lisi" });
    expect(sent.send_list).toEqual([{ chat_id: chatId, userid: "lisi", status: 1, send_time: expect.any(Number) }]);
    expect((await api.post("externalcontact/remind_groupmsg_send", { msgid: group.msgid })).errcode).toBe(0);
    expect((await api.post("externalcontact/cancel_groupmsg_send", { msgid: group.msgid })).errcode).toBe(0);
    expect((await api.post("externalcontact/remind_groupmsg_send", { msgid: group.msgid })).errcode).toBe(41093);
    expect((await api.post("externalcontact/get_groupmsg_task", { msgid: "msgNoSuchMessage" })).errcode).toBe(41047);
  });
});

describe("welcome codes", () => {
  it("come with add_external_contact, work once (41051) and only within 20 s (41050)", async () => {
    const receiver = await startReceiver();
    const { fake, api, control, clock } = await setup({ callbackUrl: receiver.url });
    seedStaff(fake);
    const added = await control.customerAddsStaff({ userid: "ZhangSan", name: "赵女士", state: "clinic_a_poster_01" });
    expect(added.delivery.delivered).toBe(true);
    const event = receiver.received[0]!.plaintext;
    expect(field(event, "WelcomeCode")).toBe(added.welcomeCode);
    const welcome = { welcome_code: added.welcomeCode, text: { content: "您好，我是您的专属顾问张三" } };
    clock.advance(19_000);
    expect((await api.post("externalcontact/send_welcome_msg", welcome)).errcode).toBe(0);
    expect((await api.post("externalcontact/send_welcome_msg", welcome)).errcode).toBe(41051);
    expect(fake.state.welcomeMessages).toHaveLength(1);

    const late = await control.customerAddsStaff({ userid: "lisi" });
    clock.advance(21_000);
    expect((await api.post("externalcontact/send_welcome_msg", { welcome_code: late.welcomeCode, text: { content: "hi" } })).errcode).toBe(41050);
    expect((await api.post("externalcontact/send_welcome_msg", { welcome_code: "nope", text: { content: "hi" } })).errcode).toBe(41050);
    expect((await api.post("externalcontact/send_welcome_msg", { text: { content: "hi" } })).errcode).toBe(41049);
  });
});

describe("customer transfers (继承)", () => {
  it("allows at most 2 on-job transfers per customer per 90 days (40128), completing after 24 h", async () => {
    const { fake, api, control, clock } = await setup();
    seedStaff(fake);
    const c = control.createContact({ followedBy: { userid: "ZhangSan", remark: "老客户" } });
    const move = (from: string, to: string) =>
      api.post("externalcontact/transfer_customer", { handover_userid: from, takeover_userid: to, external_userid: [c.externalUserId], transfer_success_msg: "您好，后续由我为您服务" });

    expect((await move("ZhangSan", "lisi")).customer).toEqual([{ external_userid: c.externalUserId, errcode: 0 }]);
    expect((await move("ZhangSan", "lisi")).customer[0].errcode).toBe(40129);
    const waiting = await api.post("externalcontact/transfer_result", { handover_userid: "ZhangSan", takeover_userid: "lisi" });
    expect(waiting.customer).toEqual([{ external_userid: c.externalUserId, status: 2, takeover_time: clock.sec + 86400 }]);

    clock.advance(86400_000);
    const done = await api.post("externalcontact/transfer_result", { handover_userid: "ZhangSan", takeover_userid: "lisi" });
    expect(done.customer[0].status).toBe(1);
    const after = await api.get("externalcontact/get", { external_userid: c.externalUserId });
    expect(after.follow_user.map((f: any) => f.userid)).toEqual(["lisi"]);
    expect(after.follow_user[0].remark).toBe("老客户");

    expect((await move("lisi", "ZhangSan")).customer[0].errcode).toBe(0);
    clock.advance(86400_000);
    await control.completeDueTransfers();
    expect((await move("ZhangSan", "lisi")).customer[0].errcode).toBe(40128);
    expect((await move("lisi", "lisi")).errcode).toBe(40130);

    clock.advance(89 * 86400_000);
    expect((await move("ZhangSan", "lisi")).customer[0].errcode).toBe(0);
    const unknown = await api.post("externalcontact/transfer_customer", { handover_userid: "ZhangSan", takeover_userid: "lisi", external_userid: ["wmNoSuchCustomerNoSuchCustomer"] });
    expect(unknown.customer[0].errcode).toBe(40096);
  });

  it("resigned transfers need a resigned handover (40097); completion emits del/add callbacks", async () => {
    const receiver = await startReceiver();
    const { fake, api, control, clock } = await setup({ callbackUrl: receiver.url });
    seedStaff(fake);
    const c = control.createContact({ followedBy: "ZhangSan" });
    const body = { handover_userid: "ZhangSan", takeover_userid: "lisi", external_userid: [c.externalUserId] };
    expect((await api.post("externalcontact/resigned/transfer_customer", body)).errcode).toBe(40097);
    control.resignStaff({ userid: "ZhangSan" });
    expect((await api.post("externalcontact/resigned/transfer_customer", body)).customer[0].errcode).toBe(0);
    clock.advance(86400_000 + 1000);
    const r = await api.post("externalcontact/resigned/transfer_result", { handover_userid: "ZhangSan", takeover_userid: "lisi" });
    expect(r.customer[0].status).toBe(1);
    await control.flushCallbacks();
    const add = receiver.received.map((x) => x.plaintext).find((p) => field(p, "ChangeType") === "add_external_contact");
    expect(field(add!, "UserID")).toBe("lisi");
    expect(field(add!, "ExternalUserID")).toBe(c.externalUserId);
  });
});

describe("customer groups", () => {
  it("emits create/add_member/del_member/dismiss with scenes, member lists and member versions matching groupchat/get", async () => {
    const receiver = await startReceiver();
    const { fake, api, control } = await setup({ callbackUrl: receiver.url });
    seedStaff(fake);
    const a = control.createContact({ name: "孙女士", followedBy: "ZhangSan" });
    const b = control.createContact({ followedBy: "ZhangSan" });
    const { chatId } = await control.createGroupChat({ owner: "ZhangSan", name: "三月祛痘群", notice: "欢迎", members: ["lisi"] });
    expect(chatId).toMatch(/^wr/);
    const joined = await control.customerJoinsGroup({ chatId, externalUserIds: [a.externalUserId, b.externalUserId], how: "qr" });
    const plain = receiver.received[1]!.plaintext;
    expect(field(plain, "Event")).toBe("change_external_chat");
    expect(field(plain, "ChatId")).toBe(chatId);
    expect(field(plain, "UpdateDetail")).toBe("add_member");
    expect(field(plain, "JoinScene")).toBe("3");
    expect(field(plain, "MemChangeCnt")).toBe("2");
    expect(plain).toContain(`<MemChangeList><Item>${a.externalUserId}</Item><Item>${b.externalUserId}</Item></MemChangeList>`);
    expect(field(plain, "CurMemVer")).toBe(joined.memberVersion);
    expect(field(plain, "LastMemVer")).toBe(joined.lastMemVer);

    const got = await api.post("externalcontact/groupchat/get", { chat_id: chatId, need_name: 1 });
    expect(got.group_chat).toMatchObject({ chat_id: chatId, name: "三月祛痘群", owner: "ZhangSan", notice: "欢迎", member_version: joined.memberVersion });
    const member = got.group_chat.member_list.find((m: any) => m.userid === a.externalUserId);
    expect(member).toMatchObject({ type: 2, join_scene: 3, name: "孙女士" });
    expect(got.group_chat.member_list.find((m: any) => m.userid === "lisi")).toMatchObject({ type: 1, join_scene: 1, invitor: { userid: "ZhangSan" } });
    const noNames = await api.post("externalcontact/groupchat/get", { chat_id: chatId });
    expect(noNames.group_chat.member_list[0].name).toBeUndefined();

    const left = await control.customerLeavesGroup({ chatId, externalUserId: b.externalUserId, removed: true });
    expect(field(left.plaintext, "QuitScene")).toBe("1");
    expect(field(left.plaintext, "LastMemVer")).toBe(joined.memberVersion);

    expect((await api.post("externalcontact/groupchat/list", { status_filter: 0 })).errcode).toBe(40058);
    const list = await api.post("externalcontact/groupchat/list", { owner_filter: { userid_list: ["zhangsan"] }, limit: 10 });
    expect(list.group_chat_list).toEqual([{ chat_id: chatId, status: 0 }]);
    await control.dismissGroup(chatId);
    expect(field(receiver.received.at(-1)!.plaintext, "ChangeType")).toBe("dismiss");
    expect((await api.post("externalcontact/groupchat/get", { chat_id: chatId })).errcode).toBe(40050);
  });
});

describe("contact ways (联系我)", () => {
  it("creates, reads, lists, updates and deletes; rejects a missing type (41037), an inactive user (41054), a long state", async () => {
    const receiver = await startReceiver();
    const { fake, api, control } = await setup({ callbackUrl: receiver.url });
    seedStaff(fake);
    control.createStaff({ userid: "newbie", active: false });
    expect((await api.post("externalcontact/add_contact_way", { scene: 2, user: ["ZhangSan"] })).errcode).toBe(41037);
    expect((await api.post("externalcontact/add_contact_way", { type: 1, scene: 2, user: ["newbie"] })).errcode).toBe(41054);
    expect((await api.post("externalcontact/add_contact_way", { type: 1, scene: 2, user: ["ZhangSan"], state: "s".repeat(31) })).errcode).toBe(40058);

    const added = await api.post("externalcontact/add_contact_way", { type: 1, scene: 2, remark: "大堂海报", state: "clinic_a_poster_01", user: ["ZhangSan"], skip_verify: true });
    expect(added.errcode).toBe(0);
    expect(added.config_id).toMatch(/^[0-9a-f]{32}$/);
    expect(added.qr_code).toMatch(/^https?:\/\//);
    const got = await api.post("externalcontact/get_contact_way", { config_id: added.config_id });
    expect(got.contact_way).toMatchObject({ config_id: added.config_id, type: 1, scene: 2, remark: "大堂海报", state: "clinic_a_poster_01", user: ["ZhangSan"], qr_code: added.qr_code });
    expect((await api.post("externalcontact/list_contact_way", {})).contact_way).toEqual([{ config_id: added.config_id }]);
    expect((await api.post("externalcontact/update_contact_way", { config_id: added.config_id, state: "clinic_a_poster_02" })).errcode).toBe(0);

    const scan = await control.customerAddsStaff({ configId: added.config_id });
    expect(field(scan.plaintext, "State")).toBe("clinic_a_poster_02");
    expect(field(scan.plaintext, "UserID")).toBe("ZhangSan");
    const detail = await api.get("externalcontact/get", { external_userid: scan.externalUserId });
    expect(detail.follow_user[0].state).toBe("clinic_a_poster_02");

    expect((await api.post("externalcontact/del_contact_way", { config_id: added.config_id })).errcode).toBe(0);
    expect((await api.post("externalcontact/get_contact_way", { config_id: added.config_id })).errcode).toBe(41044);
  });
});

describe("message/send", () => {
  it("splits touser on '|', reports invaliduser, 81013 when all invalid, 40056 for a bad agentid, and suppresses duplicates", async () => {
    const { fake, api } = await setup();
    seedStaff(fake);
    const msg = {
      touser: "ZhangSan|ghost|lisi",
      msgtype: "textcard",
      agentid: AGENT,
      textcard: { title: "新客户线索", description: "赵女士 来源: poster_01", url: "https://crm.example/lead/1", btntxt: "详情" },
      enable_duplicate_check: 1,
      duplicate_check_interval: 1800,
    };
    const r = await api.post("message/send", msg);
    expect(r).toMatchObject({ errcode: 0, errmsg: "ok", invaliduser: "ghost", invalidparty: "", invalidtag: "" });
    expect(typeof r.msgid).toBe("string");
    expect(fake.state.appMessages[0]!.delivered).toEqual(["ZhangSan", "lisi"]);
    expect((await api.post("message/send", msg)).errcode).toBe(0);
    expect(fake.state.appMessages[1]!.duplicate).toBe(true);
    expect(fake.state.appMessages[1]!.delivered).toEqual([]);
    expect((await api.post("message/send", { ...msg, touser: "ghost|nobody" })).errcode).toBe(81013);
    expect((await api.post("message/send", { ...msg, agentid: 1000099 })).errcode).toBe(40056);
    expect((await api.post("message/send", { touser: "lisi", msgtype: "text", agentid: AGENT, text: { content: "" } })).errcode).toBe(44004);
  });
});

describe("callbacks", () => {
  it("builds the plaintext exactly like the protocol's constructed vector (doc §5.2)", async () => {
    const { fake } = await setup({ now: () => new Date(1_700_000_000_000) });
    const xml = contactEvent(fake.state, "add_external_contact", {
      userid: "zhangsan",
      externalUserId: "wmAbCdEfGhIjKlMnOpQrStUvWxYz0123",
      state: "clinic_a_poster_01",
      welcomeCode: "WELCOMECODE_TEST_欢迎",
    });
    expect(xml).toBe(
      "<xml><ToUserName><![CDATA[ww0123456789abcdef]]></ToUserName><FromUserName><![CDATA[sys]]></FromUserName><CreateTime>1700000000</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[change_external_contact]]></Event><ChangeType><![CDATA[add_external_contact]]></ChangeType><UserID><![CDATA[zhangsan]]></UserID><ExternalUserID><![CDATA[wmAbCdEfGhIjKlMnOpQrStUvWxYz0123]]></ExternalUserID><State><![CDATA[clinic_a_poster_01]]></State><WelcomeCode><![CDATA[WELCOMECODE_TEST_欢迎]]></WelcomeCode></xml>",
    );
    expect(Buffer.byteLength(xml)).toBe(509);
  });

  it("retries after non-200 answers: 500, 500, 200 → 3 attempts, fresh ciphertext each time, same plaintext, valid signatures", async () => {
    const receiver = await startReceiver({ plan: [500, 500, 200] });
    const { fake, control, clock } = await setup({ callbackUrl: receiver.url });
    seedStaff(fake);
    const r = await control.customerAddsStaff({ userid: "ZhangSan", state: "clinic_a_poster_01" });
    expect(r.delivery).toMatchObject({ attempts: 3, delivered: true, statuses: [500, 500, 200] });
    expect(receiver.received).toHaveLength(3);
    expect(new Set(receiver.received.map((x) => x.encrypt)).size).toBe(3);
    for (const x of receiver.received) {
      expect(x.plaintext).toBe(r.plaintext);
      expect(x.signatureOk).toBe(true);
      expect(x.receiveId).toBe(CORP);
      expect(x.body).toBe(`<xml><ToUserName><![CDATA[${CORP}]]></ToUserName><AgentID><![CDATA[${AGENT}]]></AgentID><Encrypt><![CDATA[${x.encrypt}]]></Encrypt></xml>`);
      expect(x.query.timestamp).toBe(String(clock.sec));
      expect(x.query.echostr).toBeUndefined();
    }
    expect(r.plaintext).toMatch(
      new RegExp(
        `^<xml><ToUserName><!\\[CDATA\\[${CORP}\\]\\]></ToUserName><FromUserName><!\\[CDATA\\[sys\\]\\]></FromUserName><CreateTime>${clock.sec}</CreateTime><MsgType><!\\[CDATA\\[event\\]\\]></MsgType><Event><!\\[CDATA\\[change_external_contact\\]\\]></Event><ChangeType><!\\[CDATA\\[add_external_contact\\]\\]></ChangeType><UserID><!\\[CDATA\\[ZhangSan\\]\\]></UserID>`,
      ),
    );
  });

  it("gives up after the original plus callbackRetries when the receiver never answers in time", async () => {
    const receiver = await startReceiver({ plan: ["hang", "hang", "hang"] });
    const { fake, control } = await setup({ callbackUrl: receiver.url, callbackTimeoutMs: 150, callbackRetries: 2 });
    seedStaff(fake);
    const r = await control.customerAddsStaff({ userid: "lisi" });
    expect(r.delivery).toMatchObject({ attempts: 3, delivered: false, statuses: ["timeout", "timeout", "timeout"] });
  });

  it("redelivers the same plaintext (a retry the app already acked) and can release held events out of order", async () => {
    const receiver = await startReceiver();
    const { fake, control } = await setup({ callbackUrl: receiver.url });
    seedStaff(fake);
    const c = control.createContact({ followedBy: "ZhangSan" });
    const edit = await control.staffEditsCustomer({ userid: "ZhangSan", externalUserId: c.externalUserId, remark: "王女士-祛痘" });
    await control.redeliver(edit.plaintext!);
    expect(receiver.received).toHaveLength(2);
    expect(receiver.received[0]!.plaintext).toBe(receiver.received[1]!.plaintext);
    expect(receiver.received[0]!.encrypt).not.toBe(receiver.received[1]!.encrypt);
    // A remark-mobiles-only edit produces no callback.
    expect((await control.staffEditsCustomer({ userid: "ZhangSan", externalUserId: c.externalUserId, remarkMobiles: ["13800000001"] })).delivery).toBeUndefined();

    control.holdCallbacks();
    await control.staffDeletesCustomer({ userid: "ZhangSan", externalUserId: c.externalUserId });
    const raw = await control.emitRaw("<xml><ToUserName><![CDATA[ww0123456789abcdef]]></ToUserName><FromUserName><![CDATA[sys]]></FromUserName><CreateTime>1</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[custom]]></Event></xml>");
    expect(raw.held).toBe(true);
    expect(receiver.received).toHaveLength(2);
    await control.releaseCallbacks("reverse");
    expect(receiver.received.slice(2).map((x) => field(x.plaintext, "Event"))).toEqual(["custom", "change_external_contact"]);
  });

  it("verifies a URL with a percent-encoded echostr and checks the body is exactly the plaintext", async () => {
    const good = await startReceiver();
    const { control } = await setup({ callbackUrl: good.url });
    let report = await control.verifyUrl();
    for (let i = 0; i < 20 && !/[+/=]/.test(report.echostr); i++) report = await control.verifyUrl();
    expect(report.ok).toBe(true);
    expect(report.body).toBe(report.expected);
    expect(report.expected).toMatch(/^\d{19}$/);
    const got = good.received.at(-1)!;
    expect(got.method).toBe("GET");
    expect(got.signatureOk).toBe(true);
    expect(got.query.echostr).toBe(report.echostr);
    expect(got.rawQuery).not.toMatch(/echostr=[^&]*[+/=]/);

    const sloppy = await startReceiver({ echo: (p) => `${p}\n` });
    const bad = await control.verifyUrl(sloppy.url);
    expect(bad.ok).toBe(false);
    expect(bad.reason).toMatch(/exactly/);
  });
});

describe("control over HTTP (/__control)", () => {
  it("creates staff and contacts, emits events and exposes state", async () => {
    const receiver = await startReceiver();
    const { fake, api } = await setup({ callbackUrl: receiver.url });
    const call = async (action: string, args: unknown) => {
      const res = await fetch(`${fake.url}/__control/${action}`, { method: "POST", body: JSON.stringify(args) });
      return { status: res.status, json: (await res.json()) as any };
    };
    expect((await call("createStaff", { userid: "wangwu", name: "王五" })).json.ok).toBe(true);
    expect((await call("createStaff", { userid: "WANGWU" })).status).toBe(400);
    const added = await call("customerAddsStaff", { userid: "wangwu", name: "钱女士", state: "wechat_article_07" });
    expect(added.json.result.delivery.delivered).toBe(true);
    const ext = added.json.result.externalUserId;
    expect((await api.get("externalcontact/get", { external_userid: ext })).follow_user[0].state).toBe("wechat_article_07");
    expect((await call("setRateLimit", { perMinute: 1 })).json.ok).toBe(true);
    expect((await call("noSuchAction", {})).status).toBe(404);
    const state = (await (await fetch(`${fake.url}/__control/state`)).json()) as any;
    expect(state.staff.map((s: any) => s.userid)).toEqual(["wangwu"]);
    expect(state.events).toHaveLength(1);
  });
});
