import type { CallbackSender, DeliveryReport, ReleaseOrder, VerifyReport } from "./callbacks";
import { controlFail } from "./errors";
import { chatEvent, contactEvent, tagEvent } from "./events";
import { addFollow, createContact, createStaff, type CreateContactInput, type CreateStaffInput } from "./model/contacts";
import {
  addGroupMembers,
  createGroupChat,
  dismissGroupChat,
  removeGroupMembers,
  updateGroupChat,
  type CreateGroupChatInput,
  type JoinHow,
} from "./model/group-chats";
import { confirmMassMessage, recordReceipt } from "./model/mass-messages";
import { revokeTokens } from "./model/tokens";
import { addCorpTags, deleteCorpTags, editCorpTag, reorderTags, type AddCorpTagInput } from "./model/tags";
import { failTransfer, processDueTransfers } from "./model/transfers";
import { issueWelcomeCode } from "./model/welcome";
import type { MassMessageCap } from "./options";
import type { FakeContact, FakeFollow, FakeGroupChat, FakeSendResult, FakeSettings, FakeStaff, FakeTransfer, FakeWecomState } from "./state";

// The control surface: what people do in the WeCom client and admin console, plus test switches.
// User actions produce callbacks (API calls never do, doc §2). Methods that emit return the event
// plaintext and its delivery report. Staff ids may be passed as `userid` (WeCom's spelling) or
// `userId`.

export interface StaffRef {
  userid?: string;
  userId?: string;
}

const staffId = (ref: StaffRef, what = "userid"): string => ref.userid ?? ref.userId ?? controlFail(`${what} is required`);

export interface Emitted {
  plaintext: string;
  delivery: DeliveryReport;
}

export interface CustomerAddsStaffInput extends StaffRef, Omit<CreateContactInput, "followedBy"> {
  /** An existing contact, or the id to give a new one. Omitted: a new contact is created. */
  externalUserId?: string;
  /** Scan a 「联系我」: its state, and its (first) user unless userid is given. */
  configId?: string;
  state?: string;
  /** add_half_external_contact instead of add_external_contact. */
  halfAdd?: boolean;
  /** Issue a WelcomeCode (default true; WeCom omits it e.g. when the console has a welcome message). */
  welcomeCode?: boolean;
  /** Default 1 (QR scan). */
  addWay?: number;
  remark?: string;
  description?: string;
}

export interface CustomerAddsStaffResult extends Emitted {
  contact: FakeContact;
  follow: FakeFollow;
  externalUserId: string;
  userid: string;
  welcomeCode?: string;
}

export interface RelationInput extends StaffRef {
  externalUserId: string;
}

export interface StaffEditsCustomerInput extends RelationInput {
  remark?: string;
  description?: string;
  addTags?: string[];
  removeTags?: string[];
  remarkMobiles?: string[];
  remarkCorpName?: string;
}

export interface GroupMembersInput {
  chatId: string;
  externalUserId?: string;
  externalUserIds?: string[];
  /** Staff userids or external_userids (alternative to externalUserId(s)). */
  members?: string[];
}

export class FakeWecomControl {
  constructor(
    readonly state: FakeWecomState,
    private readonly callbacks: CallbackSender,
  ) {}

  private async emit(plaintext: string): Promise<Emitted> {
    return { plaintext, delivery: await this.callbacks.emit(plaintext) };
  }

  // ---- staff and contacts (seeding: no callbacks) ----

  createStaff(input: CreateStaffInput): FakeStaff {
    return createStaff(this.state, input);
  }

  updateStaff(input: StaffRef & { name?: string; active?: boolean; visible?: boolean }): FakeStaff {
    const s = this.state.findStaff(staffId(input)) ?? controlFail(`unknown staff ${staffId(input)}`);
    if (input.name !== undefined) s.name = input.name;
    if (input.active !== undefined) s.active = input.active;
    if (input.visible !== undefined) s.visible = input.visible;
    return s;
  }

  /** The staff member leaves the clinic: their customers await 离职继承. */
  resignStaff(input: StaffRef): FakeStaff {
    const s = this.state.findStaff(staffId(input)) ?? controlFail(`unknown staff ${staffId(input)}`);
    s.resigned = true;
    s.active = false;
    for (const chat of this.state.groupChats.values()) if (!chat.dismissed && chat.owner === s.userid) chat.status = 1;
    return s;
  }

  /** A contact, optionally already followed by staff (`followedBy`, with state etc.). No callback. */
  createContact(input: CreateContactInput = {}): FakeContact {
    return createContact(this.state, input);
  }

  // ---- customer-contact events ----

  /** A patient scans a consultant's QR (or a 「联系我」 config): relation + add_external_contact. */
  async customerAddsStaff(input: CustomerAddsStaffInput): Promise<CustomerAddsStaffResult> {
    const way = input.configId !== undefined ? (this.state.contactWays.get(input.configId) ?? controlFail(`unknown contact way ${input.configId}`)) : undefined;
    const userid = input.userid ?? input.userId ?? way?.user[0] ?? controlFail("userid (or a configId) is required");
    if (way && !way.user.some((u) => u.toLowerCase() === userid.toLowerCase())) controlFail(`${userid} is not a user of contact way ${way.configId}`);
    const staff = this.state.findStaff(userid) ?? controlFail(`unknown staff ${userid}`);
    const existing = input.externalUserId !== undefined ? this.state.contacts.get(input.externalUserId) : undefined;
    const contact = existing ?? createContact(this.state, pickContactFields(input));
    const state = input.state ?? way?.state;
    const follow = addFollow(this.state, contact.externalUserId, {
      userid: staff.userid,
      addWay: input.addWay ?? 1,
      operUserid: contact.externalUserId,
      ...(state !== undefined ? { state } : {}),
      ...(input.remark !== undefined ? { remark: input.remark } : {}),
      ...(input.description !== undefined ? { description: input.description } : {}),
    });
    const welcomeCode = input.welcomeCode === false ? undefined : issueWelcomeCode(this.state, staff.userid, contact.externalUserId);
    const plaintext = contactEvent(this.state, input.halfAdd ? "add_half_external_contact" : "add_external_contact", {
      userid: staff.userid,
      externalUserId: contact.externalUserId,
      ...(follow.state !== undefined ? { state: follow.state } : {}),
      ...(welcomeCode !== undefined ? { welcomeCode } : {}),
    });
    const emitted = await this.emit(plaintext);
    const result: CustomerAddsStaffResult = { ...emitted, contact, follow, externalUserId: contact.externalUserId, userid: staff.userid };
    if (welcomeCode !== undefined) result.welcomeCode = welcomeCode;
    return result;
  }

  /** The staff member deletes the customer: relation gone, del_external_contact. */
  async staffDeletesCustomer(input: RelationInput): Promise<Emitted> {
    const userid = staffId(input);
    const f = this.state.follow(input.externalUserId, userid) ?? controlFail(`${input.externalUserId} is not a customer of ${userid}`);
    this.state.removeFollow(f.externalUserId, f.userid);
    return this.emit(contactEvent(this.state, "del_external_contact", { userid: f.userid, externalUserId: f.externalUserId }));
  }

  /** The customer deletes/blocks the staff: del_follow_user. The staff still lists them; sends fail. */
  async customerDeletesStaff(input: RelationInput): Promise<Emitted> {
    const userid = staffId(input);
    const f = this.state.follow(input.externalUserId, userid) ?? controlFail(`${input.externalUserId} is not a customer of ${userid}`);
    f.deletedByCustomer = true;
    return this.emit(contactEvent(this.state, "del_follow_user", { userid: f.userid, externalUserId: f.externalUserId }));
  }

  /**
   * The staff member edits remark/description/corp tags in the client: edit_external_contact.
   * A remark-mobiles-only edit produces no callback (as in WeCom); then `delivery` is undefined.
   */
  async staffEditsCustomer(input: StaffEditsCustomerInput): Promise<{ follow: FakeFollow; plaintext?: string; delivery?: DeliveryReport }> {
    const userid = staffId(input);
    const f = this.state.follow(input.externalUserId, userid) ?? controlFail(`${input.externalUserId} is not a customer of ${userid}`);
    for (const id of [...(input.addTags ?? []), ...(input.removeTags ?? [])]) {
      const t = this.state.findTag(id);
      if (!t || t.tag.deleted) controlFail(`unknown tag ${id}`);
    }
    if (input.remark !== undefined) f.remark = input.remark;
    if (input.description !== undefined) f.description = input.description;
    if (input.remarkCorpName !== undefined) f.remarkCorpName = input.remarkCorpName;
    if (input.remarkMobiles !== undefined) f.remarkMobiles = input.remarkMobiles;
    const remove = new Set(input.removeTags ?? []);
    f.tagIds = [...new Set([...f.tagIds.filter((id) => !remove.has(id)), ...(input.addTags ?? [])])];
    const visible = ["remark", "description", "remarkCorpName", "addTags", "removeTags"].some((k) => input[k as keyof StaffEditsCustomerInput] !== undefined);
    if (!visible) return { follow: f };
    return { follow: f, ...(await this.emit(contactEvent(this.state, "edit_external_contact", { userid: f.userid, externalUserId: f.externalUserId }))) };
  }

  // ---- corp tags edited in the admin console ----

  /** New group → one tag_group create event; tags added to an existing group → one tag create each. */
  async adminCreatesTags(input: AddCorpTagInput): Promise<{ groupId: string; tagIds: string[]; events: Emitted[] }> {
    const r = addCorpTags(this.state, input);
    const events: Emitted[] = [];
    if (r.createdGroup) events.push(await this.emit(tagEvent(this.state, { id: r.group.groupId, tagType: "tag_group", changeType: "create" })));
    else for (const t of r.createdTags) events.push(await this.emit(tagEvent(this.state, { id: t.id, tagType: "tag", changeType: "create" })));
    return { groupId: r.group.groupId, tagIds: r.tags.map((t) => t.id), events };
  }

  async adminEditsTag(input: { id: string; name?: string; order?: number }): Promise<Emitted> {
    const r = editCorpTag(this.state, input);
    return this.emit(tagEvent(this.state, { id: r.id, tagType: r.kind, changeType: "update" }));
  }

  /** One delete event per tag, and one per group deleted (explicitly or by losing its last tag). */
  async adminDeletesTags(input: { tagIds?: string[]; groupIds?: string[] }): Promise<{ tagIds: string[]; groupIds: string[]; events: Emitted[] }> {
    const r = deleteCorpTags(this.state, input);
    const events: Emitted[] = [];
    for (const id of r.tagIds) events.push(await this.emit(tagEvent(this.state, { id, tagType: "tag", changeType: "delete" })));
    for (const id of r.groupIds) events.push(await this.emit(tagEvent(this.state, { id, tagType: "tag_group", changeType: "delete" })));
    return { ...r, events };
  }

  /** Reorder the tags of `groupId` (Id = the group) or, without groupId, the groups (Id empty). */
  async adminShufflesTags(input: { groupId?: string; ids: string[] }): Promise<Emitted> {
    reorderTags(this.state, input);
    return this.emit(tagEvent(this.state, { id: input.groupId ?? "", changeType: "shuffle" }));
  }

  // ---- customer groups ----

  async createGroupChat(input: CreateGroupChatInput): Promise<Emitted & { chat: FakeGroupChat; chatId: string }> {
    const chat = createGroupChat(this.state, input);
    return { chat, chatId: chat.chatId, ...(await this.emit(chatEvent(this.state, { chatId: chat.chatId, changeType: "create" }))) };
  }

  private members(input: GroupMembersInput): string[] {
    const list = input.members ?? input.externalUserIds ?? (input.externalUserId !== undefined ? [input.externalUserId] : []);
    if (list.length === 0) controlFail("externalUserId, externalUserIds or members is required");
    return list;
  }

  /** Members join (update/add_member). how: invite (JoinScene 0), link (0), qr (3). */
  async customerJoinsGroup(
    input: GroupMembersInput & { how?: JoinHow; invitor?: string; state?: string },
  ): Promise<Emitted & { memberVersion: string; lastMemVer: string }> {
    const r = addGroupMembers(this.state, input.chatId, {
      members: this.members(input),
      ...(input.how !== undefined ? { how: input.how } : {}),
      ...(input.invitor !== undefined ? { invitor: input.invitor } : {}),
      ...(input.state !== undefined ? { state: input.state } : {}),
    });
    const plaintext = chatEvent(this.state, {
      chatId: r.chat.chatId,
      changeType: "update",
      updateDetail: "add_member",
      joinScene: r.joinScene,
      members: r.members,
      lastMemVer: r.lastMemVer,
      curMemVer: r.curMemVer,
    });
    return { memberVersion: r.curMemVer, lastMemVer: r.lastMemVer, ...(await this.emit(plaintext)) };
  }

  /** Members leave (QuitScene 0) or are removed by the owner/admin (removed: true → 1). */
  async customerLeavesGroup(input: GroupMembersInput & { removed?: boolean }): Promise<Emitted & { memberVersion: string; lastMemVer: string }> {
    const r = removeGroupMembers(this.state, input.chatId, { members: this.members(input), ...(input.removed !== undefined ? { removed: input.removed } : {}) });
    const plaintext = chatEvent(this.state, {
      chatId: r.chat.chatId,
      changeType: "update",
      updateDetail: "del_member",
      quitScene: r.quitScene,
      members: r.members,
      lastMemVer: r.lastMemVer,
      curMemVer: r.curMemVer,
    });
    return { memberVersion: r.curMemVer, lastMemVer: r.lastMemVer, ...(await this.emit(plaintext)) };
  }

  /** Rename / new notice / new owner: one update event per change. */
  async updateGroupChat(input: { chatId: string; name?: string; notice?: string; owner?: string }): Promise<Emitted[]> {
    const changes = updateGroupChat(this.state, input.chatId, input);
    const out: Emitted[] = [];
    for (const c of changes) out.push(await this.emit(chatEvent(this.state, { chatId: input.chatId, changeType: "update", updateDetail: c })));
    return out;
  }

  async dismissGroup(chatId: string): Promise<Emitted> {
    dismissGroupChat(this.state, chatId);
    return this.emit(chatEvent(this.state, { chatId, changeType: "dismiss" }));
  }

  // ---- mass messages ----

  /** The staff member sends their part of a mass message (optionally only to some recipients). */
  staffConfirmsMassMessage(msgid: string, userid: string, options: { only?: string[] } = {}): FakeSendResult[] {
    return confirmMassMessage(this.state, msgid, userid, options.only);
  }

  /** Seed the cap: `recipient` (external_userid or chat_id) received a mass message at `at`. */
  recordMassMessageReceipt(recipient: string, at?: Date): void {
    recordReceipt(this.state, recipient, at?.getTime());
  }

  setMassMessageCap(cap: MassMessageCap): void {
    if (!["day", "week", "month"].includes(cap.per) || !Number.isInteger(cap.count) || cap.count < 0) controlFail("cap must be { per: day|week|month, count ≥ 0 }");
    this.state.settings.massMessageCap = { per: cap.per, count: cap.count };
  }

  // ---- transfers ----

  /** Complete transfers whose 24 h are up and emit their callbacks (see README for which). */
  async completeDueTransfers(): Promise<{ transfers: FakeTransfer[]; events: Emitted[] }> {
    const transfers = processDueTransfers(this.state);
    const events: Emitted[] = [];
    for (const p of transferEvents(this.state, transfers)) events.push(await this.emit(p));
    return { transfers, events };
  }

  /** Called by the server before each API call: completions found then are delivered in the background. */
  tick(): void {
    for (const p of transferEvents(this.state, processDueTransfers(this.state))) this.callbacks.emitInBackground(p);
  }

  /** The customer refuses the reassignment (or the takeover is full): status 3/4 and transfer_fail. */
  async customerRefusesTransfer(input: { externalUserId: string; reason?: "customer_refused" | "customer_limit_exceed" }): Promise<Emitted> {
    const reason = input.reason ?? "customer_refused";
    const t = failTransfer(this.state, input.externalUserId, reason);
    return this.emit(contactEvent(this.state, "transfer_fail", { failReason: reason, userid: t.takeoverUserid, externalUserId: t.externalUserId }));
  }

  // ---- tokens, limits, settings ----

  /** Invalidate every outstanding access token early: callers get 40014 until they refetch. */
  revokeTokens(): number {
    return revokeTokens(this.state);
  }

  setRateLimit(perMinute: number): void {
    if (!Number.isInteger(perMinute) || perMinute < 0) controlFail("rate limit must be an integer ≥ 0");
    this.state.settings.rateLimitPerMinute = perMinute;
    this.state.rateBuckets.clear();
  }

  setCallbackUrl(url: string | undefined): void {
    this.state.settings.callbackUrl = url === "" ? undefined : url;
  }

  /** Change any run-time setting (callback timeout/retries, welcome-code TTL, token TTL…). */
  configure(patch: Partial<FakeSettings>): FakeSettings {
    for (const [k, v] of Object.entries(patch)) {
      if (!(k in this.state.settings)) controlFail(`unknown setting ${k}`);
      (this.state.settings as unknown as Record<string, unknown>)[k] = v;
    }
    return this.state.settings;
  }

  // ---- callbacks ----

  verifyUrl(url?: string): Promise<VerifyReport> {
    return this.callbacks.verifyUrl(url);
  }

  /** Deliver any plaintext (custom or out-of-order events); it is encrypted and signed as usual. */
  emitRaw(plaintext: string): Promise<DeliveryReport> {
    return this.callbacks.emit(plaintext);
  }

  /** Deliver the SAME plaintext again (a WeCom retry the receiver already acked): new ciphertext. */
  redeliver(what: string | DeliveryReport | Emitted): Promise<DeliveryReport> {
    const plaintext = typeof what === "string" ? what : what.plaintext;
    return this.callbacks.deliver(plaintext);
  }

  /** Queue events instead of sending them, e.g. to release them out of order. */
  holdCallbacks(): void {
    this.callbacks.hold();
  }

  releaseCallbacks(order: ReleaseOrder = "fifo"): Promise<DeliveryReport[]> {
    return this.callbacks.release(order);
  }

  /** Wait for callbacks sent in the background (transfer completions found during API calls). */
  flushCallbacks(): Promise<void> {
    return this.callbacks.flush();
  }

  /** Every event plaintext emitted so far, in order. */
  get events(): readonly string[] {
    return this.callbacks.events;
  }

  get deliveries(): readonly DeliveryReport[] {
    return this.callbacks.deliveries;
  }

  snapshot() {
    return { ...this.state.snapshot(), events: this.callbacks.events, heldCallbacks: this.callbacks.heldCount };
  }
}

const CONTACT_FIELDS = ["externalUserId", "name", "type", "gender", "unionid", "avatar", "corpName", "corpFullName", "position"] as const;

function pickContactFields(input: CustomerAddsStaffInput): CreateContactInput {
  const out: Record<string, unknown> = {};
  for (const k of CONTACT_FIELDS) if (input[k] !== undefined) out[k] = input[k];
  return out as CreateContactInput;
}

/** On completion the takeover gets add_external_contact; an on-job handover gets del_external_contact (DELETE_BY_TRANSFER). */
function transferEvents(state: FakeWecomState, done: FakeTransfer[]): string[] {
  const out: string[] = [];
  for (const t of done) {
    if (t.kind === "onjob") out.push(contactEvent(state, "del_external_contact", { userid: t.handoverUserid, externalUserId: t.externalUserId, source: "DELETE_BY_TRANSFER" }));
    out.push(contactEvent(state, "add_external_contact", { userid: t.takeoverUserid, externalUserId: t.externalUserId }));
  }
  return out;
}
