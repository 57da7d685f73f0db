import type { JsonBody } from "../body";
import {
  addContactWay,
  contactWayJson,
  deleteContactWay,
  findContactWay,
  listContactWays,
  updateContactWay,
  type ContactWayInput,
} from "../model/contact-ways";
import { post, type ApiDef } from "./api";

// Doc §3.10 「联系我」.

function readWay(body: JsonBody): ContactWayInput {
  return {
    type: body.int("type"),
    scene: body.int("scene"),
    style: body.int("style"),
    remark: body.str("remark"),
    skipVerify: body.bool("skip_verify"),
    state: body.str("state"),
    user: body.strList("user"),
    party: body.intList("party"),
    isTemp: body.bool("is_temp"),
    expiresIn: body.int("expires_in"),
    chatExpiresIn: body.int("chat_expires_in"),
    unionid: body.str("unionid"),
    isExclusive: body.bool("is_exclusive"),
    conclusions: body.obj("conclusions")?.toJSON(),
  };
}

export const contactWayApis: ApiDef[] = [
  post("externalcontact/add_contact_way", ({ state, body }) => {
    const way = addContactWay(state, readWay(body));
    return way.qrCode !== undefined ? { config_id: way.configId, qr_code: way.qrCode } : { config_id: way.configId };
  }),

  post("externalcontact/get_contact_way", ({ state, body }) => ({ contact_way: contactWayJson(findContactWay(state, body.str("config_id"))) })),

  post("externalcontact/list_contact_way", ({ state, body }) => {
    const r = listContactWays(state, { startTime: body.int("start_time"), endTime: body.int("end_time"), cursor: body.str("cursor"), limit: body.int("limit") });
    return { contact_way: r.configIds.map((config_id) => ({ config_id })), next_cursor: r.nextCursor };
  }),

  post("externalcontact/update_contact_way", ({ state, body }) => {
    updateContactWay(state, body.str("config_id"), readWay(body));
  }),

  post("externalcontact/del_contact_way", ({ state, body }) => {
    deleteContactWay(state, body.str("config_id"));
  }),
];
