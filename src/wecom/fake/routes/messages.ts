import { sendAppMessage } from "../model/app-messages";
import { post, type ApiDef } from "./api";

// Doc §3.12 message/send (app messages to staff).

export const messageApis: ApiDef[] = [post("message/send", ({ state, body }) => sendAppMessage(state, body))];
