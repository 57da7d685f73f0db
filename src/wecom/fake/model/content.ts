import { utf8Bytes, type JsonBody } from "../body";
import { fail } from "../errors";

// text + attachments, shared by add_msg_template and send_welcome_msg (doc §3.6, §3.8).

export const MAX_ATTACHMENTS = 9;
const KINDS = new Set(["image", "link", "miniprogram", "video", "file"]);

function maxBytes(value: string | undefined, max: number, field: string): void {
  if (value !== undefined && utf8Bytes(value) > max) fail(45002, `${field} longer than ${max} bytes`);
}

function required(b: JsonBody, key: string, code = 40058): string {
  const v = b.str(key);
  if (v === undefined || v === "") return fail(code, `${key} missing`);
  return v;
}

export interface Content {
  text?: { content: string };
  attachments: Array<Record<string, unknown>>;
}

/** Validates and returns the content as stored (and echoed by get_groupmsg_list_v2). */
/** `mediaOk` says whether a media_id was uploaded and is still valid (media/upload keeps it 3 days). */
export function readContent(body: JsonBody, maxTextBytes: number, mediaOk: (mediaId: string) => boolean = () => true): Content {
  const textObj = body.obj("text");
  const content = textObj?.str("content");
  maxBytes(content, maxTextBytes, "text.content");
  const attachments = body.objList("attachments") ?? [];
  if ((content === undefined || content === "") && attachments.length === 0) return fail(44004, "text and attachments are both empty");
  if (attachments.length > MAX_ATTACHMENTS) return fail(41064);
  for (const a of attachments) {
    const kind = a.str("msgtype");
    if (kind === undefined || !KINDS.has(kind)) return fail(41065, kind);
    const inner = a.obj(kind) ?? fail(40058, `${kind} missing`);
    if (kind === "image") {
      if (!inner.str("media_id") && !inner.str("pic_url")) fail(40058, "image needs media_id or pic_url");
    } else if (kind === "link") {
      maxBytes(required(inner, "title"), 128, "link.title");
      maxBytes(required(inner, "url"), 2048, "link.url");
      maxBytes(inner.str("picurl"), 2048, "link.picurl");
      maxBytes(inner.str("desc"), 512, "link.desc");
    } else if (kind === "miniprogram") {
      maxBytes(required(inner, "title"), 64, "miniprogram.title");
      if (!mediaOk(required(inner, "pic_media_id"))) fail(40007, "miniprogram.pic_media_id is not an uploaded image (or expired)");
      required(inner, "appid");
      required(inner, "page");
    } else {
      required(inner, "media_id", 41006);
    }
  }
  const out: Content = { attachments: attachments.map((a) => a.toJSON()) };
  if (content !== undefined && content !== "") out.text = { content };
  return out;
}
