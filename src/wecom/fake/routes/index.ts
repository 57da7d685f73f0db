import type { ApiDef } from "./api";
import { contactWayApis } from "./contact-ways";
import { contactApis } from "./contacts";
import { groupChatApis } from "./group-chats";
import { jsapiApis } from "./jsapi";
import { massMessageApis } from "./mass-messages";
import { messageApis } from "./messages";
import { tagApis } from "./tags";
import { tokenApis } from "./token";
import { transferApis } from "./transfers";
import { welcomeApis } from "./welcome";

/** Every WeCom API the fake serves, by path below /cgi-bin/. */
export const ALL_APIS: readonly ApiDef[] = [
  ...tokenApis,
  ...contactApis,
  ...tagApis,
  ...massMessageApis,
  ...welcomeApis,
  ...groupChatApis,
  ...contactWayApis,
  ...transferApis,
  ...messageApis,
  ...jsapiApis,
];
