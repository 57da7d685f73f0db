import { addCorpTags, deleteCorpTags, editCorpTag, listCorpTags, markTags } from "../model/tags";
import { post, type ApiDef } from "./api";

// Doc §3.4 corp tags, §3.5 mark_tag. API-side changes: no callbacks.

export const tagApis: ApiDef[] = [
  post("externalcontact/get_corp_tag_list", ({ state, body }) => ({
    tag_group: listCorpTags(state, { tagIds: body.strList("tag_id") ?? [], groupIds: body.strList("group_id") ?? [] }),
  })),

  post("externalcontact/add_corp_tag", ({ state, body }) => {
    const r = addCorpTags(state, {
      groupId: body.str("group_id"),
      groupName: body.str("group_name"),
      order: body.int("order"),
      tags: (body.objList("tag") ?? []).map((t) => ({ name: t.str("name"), order: t.int("order") })),
    });
    return { tag_group: r.json };
  }),

  post("externalcontact/edit_corp_tag", ({ state, body }) => {
    editCorpTag(state, { id: body.str("id"), name: body.str("name"), order: body.int("order") });
  }),

  post("externalcontact/del_corp_tag", ({ state, body }) => {
    deleteCorpTags(state, { tagIds: body.strList("tag_id") ?? [], groupIds: body.strList("group_id") ?? [] });
  }),

  post("externalcontact/mark_tag", ({ state, body }) => {
    markTags(state, {
      userid: body.str("userid"),
      externalUserId: body.str("external_userid"),
      addTag: body.strList("add_tag") ?? [],
      removeTag: body.strList("remove_tag") ?? [],
    });
  }),
];
