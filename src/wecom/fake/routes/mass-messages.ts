import { fail } from "../errors";
import { readContent } from "../model/content";
import {
  addMsgTemplate,
  cancelGroupMsg,
  listGroupMsgResults,
  listGroupMsgs,
  listGroupMsgTasks,
  remindGroupMsg,
} from "../model/mass-messages";
import { post, type ApiDef } from "./api";

// Doc §3.6 add_msg_template, §3.7 reporting, remind/cancel.

export const massMessageApis: ApiDef[] = [
  post("externalcontact/add_msg_template", ({ state, body }) => {
    const chatType = body.str("chat_type") ?? "single";
    if (chatType !== "single" && chatType !== "group") return fail(40058, "chat_type must be single or group");
    const content = readContent(body, 4000, (id) => state.mediaValid(id));
    const tagFilter = body
      .obj("tag_filter")
      ?.objList("group_list")
      ?.map((g) => g.strList("tag_list") ?? []);
    const r = addMsgTemplate(state, {
      chatType,
      externalUserIds: chatType === "single" ? body.strList("external_userid") : undefined,
      chatIds: chatType === "group" ? body.strList("chat_id_list") : undefined,
      tagFilter,
      sender: body.str("sender"),
      allowSelect: body.bool("allow_select"),
      ...content,
    });
    return { fail_list: r.failList, msgid: r.msgid };
  }),

  post("externalcontact/get_groupmsg_list_v2", ({ state, body }) => {
    const r = listGroupMsgs(state, {
      chatType: body.str("chat_type"),
      startTime: body.int("start_time"),
      endTime: body.int("end_time"),
      creator: body.str("creator"),
      filterType: body.int("filter_type"),
      limit: body.int("limit"),
      cursor: body.str("cursor"),
    });
    return { next_cursor: r.nextCursor, group_msg_list: r.list };
  }),

  post("externalcontact/get_groupmsg_task", ({ state, body }) => {
    const r = listGroupMsgTasks(state, { msgid: body.str("msgid"), limit: body.int("limit"), cursor: body.str("cursor") });
    return { next_cursor: r.nextCursor, task_list: r.list };
  }),

  post("externalcontact/get_groupmsg_send_result", ({ state, body }) => {
    const r = listGroupMsgResults(state, { msgid: body.str("msgid"), userid: body.str("userid"), limit: body.int("limit"), cursor: body.str("cursor") });
    return { next_cursor: r.nextCursor, send_list: r.list };
  }),

  post("externalcontact/remind_groupmsg_send", ({ state, body }) => {
    remindGroupMsg(state, body.str("msgid"));
  }),

  post("externalcontact/cancel_groupmsg_send", ({ state, body }) => {
    cancelGroupMsg(state, body.str("msgid"));
  }),
];
