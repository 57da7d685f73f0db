import { readContent } from "../model/content";
import { checkWelcomeCode, sendWelcomeMsg } from "../model/welcome";
import { post, type ApiDef } from "./api";

// Doc §3.8: within 20 s of the add event, once.

export const welcomeApis: ApiDef[] = [
  post("externalcontact/send_welcome_msg", ({ state, body }) => {
    const code = body.str("welcome_code");
    checkWelcomeCode(state, code);
    sendWelcomeMsg(state, code!, readContent(body, 4000, (id) => state.mediaValid(id)));
  }),
];
