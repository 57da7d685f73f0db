import { fail } from "../errors";
import { contactJson, followInfoJson, followUserJson } from "../model/contacts";
import { page } from "../paging";
import { get, post, type ApiDef } from "./api";

// Doc §3.2 externalcontact/get and list, §3.3 batch/get_by_user.

const FOLLOW_PAGE = 500;

export const contactApis: ApiDef[] = [
  get("externalcontact/get", ({ state, query }) => {
    const ext = query("external_userid");
    if (ext === undefined || ext === "") return fail(41035);
    const contact = state.contacts.get(ext) ?? fail(40096, ext);
    const follows = state.visibleFollowsOfContact(ext);
    if (follows.length === 0) return fail(84061);
    // follow_user pages only past 500 followers.
    const p = page(`follow_user:${ext}`, follows, query("cursor"), FOLLOW_PAGE);
    return { external_contact: contactJson(contact), follow_user: p.items.map((f) => followUserJson(state, f)), next_cursor: p.nextCursor };
  }),

  // A staff member without customers answers 84061 rather than an empty list.
  get("externalcontact/list", ({ state, query }) => {
    const staff = state.requireStaff(query("userid"));
    const ids = state.followsOfStaff(staff.userid).map((f) => f.externalUserId);
    if (ids.length === 0) return fail(84061);
    return { external_userid: ids };
  }),

  post("externalcontact/batch/get_by_user", ({ state, body }) => {
    const userids = body.strList("userid_list");
    if (!userids || userids.length === 0) return fail(40058, "userid_list is empty");
    if (userids.length > 100) return fail(40058, "userid_list has more than 100 userids");
    const requested = body.int("limit");
    const limit = requested === undefined || requested <= 0 ? 50 : Math.min(requested, 100);
    // One entry per (customer, staff) pair, staff in request order; unknown/invisible staff are skipped.
    const pairs = [...new Set(userids.map((u) => state.findStaff(u)).filter((s) => s?.visible).map((s) => s!.userid))].flatMap((u) =>
      state.followsOfStaff(u),
    );
    const p = page(`by_user:${userids.join("|").toLowerCase()}`, pairs, body.str("cursor"), limit);
    return {
      external_contact_list: p.items.map((f) => ({ external_contact: contactJson(state.contacts.get(f.externalUserId)!), follow_info: followInfoJson(state, f) })),
      next_cursor: p.nextCursor,
    };
  }),
];
