// The fake WeCom: server APIs, callback sender and control surface. See README.md.
export { createFakeWecom, startFakeWecom, type FakeWecom, type RunningFakeWecom } from "./server";
export { FakeWecomControl } from "./control";
export { fakeSidebar, type FakeSidebar } from "./jssdk";
export { jsapiSignature, type ChatContextInput, type ChatEntry, type FakeChatContext, type FakeChatMessage } from "./model/jsapi";
export type {
  CustomerAddsStaffInput,
  CustomerAddsStaffResult,
  Emitted,
  GroupMembersInput,
  RelationInput,
  StaffEditsCustomerInput,
  StaffRef,
} from "./control";
export { FakeWecomState } from "./state";
export type * from "./state";
export { FAKE_DEFAULTS, resolveOptions, type FakeWecomOptions, type MassMessageCap, type ResolvedOptions } from "./options";
export { CallbackSender, envelopeXml, withQuery, type AttemptStatus, type DeliveryAttempt, type DeliveryReport, type ReleaseOrder, type VerifyReport } from "./callbacks";
export { chatEvent, contactEvent, eventXml, tagEvent, type ContactChange, type XmlFields, type XmlValue } from "./events";
export { ERRMSG, FakeControlError, WecomError } from "./errors";
export { periodKey, type CapPeriod } from "./clock";
export type { CreateContactInput, CreateStaffInput, FollowInput } from "./model/contacts";
export type { CreateGroupChatInput, JoinHow } from "./model/group-chats";
export type { AddCorpTagInput } from "./model/tags";
