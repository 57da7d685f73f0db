import { getGroupChat, groupChatJson, listGroupChats } from "../model/group-chats";
import { post, type ApiDef } from "./api";

// Doc §3.9.

export const groupChatApis: ApiDef[] = [
  post("externalcontact/groupchat/list", ({ state, body }) => {
    const r = listGroupChats(state, {
      statusFilter: body.int("status_filter"),
      owners: body.obj("owner_filter")?.strList("userid_list"),
      cursor: body.str("cursor"),
      limit: body.int("limit"),
    });
    return { group_chat_list: r.list, next_cursor: r.nextCursor };
  }),

  post("externalcontact/groupchat/get", ({ state, body }) => ({
    group_chat: groupChatJson(getGroupChat(state, body.str("chat_id")), body.int("need_name") === 1),
  })),
];
