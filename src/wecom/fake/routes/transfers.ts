import type { FakeTransfer } from "../state";
import { transferCustomers, transferResults } from "../model/transfers";
import { post, type ApiContext, type ApiDef } from "./api";

// Doc §3.11 在职继承 / 离职继承.

const start = (kind: FakeTransfer["kind"]) => ({ state, body }: ApiContext) => ({
  customer: transferCustomers(state, kind, {
    handover: body.str("handover_userid"),
    takeover: body.str("takeover_userid"),
    externalUserIds: body.strList("external_userid"),
    message: kind === "onjob" ? body.str("transfer_success_msg") : undefined,
  }),
});

const result = (kind: FakeTransfer["kind"]) => ({ state, body }: ApiContext) => {
  const r = transferResults(state, kind, { handover: body.str("handover_userid"), takeover: body.str("takeover_userid"), cursor: body.str("cursor") });
  return { customer: r.customer, next_cursor: r.nextCursor };
};

export const transferApis: ApiDef[] = [
  post("externalcontact/transfer_customer", start("onjob")),
  post("externalcontact/transfer_result", result("onjob")),
  post("externalcontact/resigned/transfer_customer", start("resigned")),
  post("externalcontact/resigned/transfer_result", result("resigned")),
];
