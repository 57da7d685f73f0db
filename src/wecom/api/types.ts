/** Response and request shapes of the WeCom server APIs Siyu uses (shared/wecom-protocol.md section 3). */

export interface FollowUserTag {
  group_name?: string;
  tag_name?: string;
  tag_id?: string;
  type: number;
}

export interface FollowUser {
  userid: string;
  remark?: string;
  description?: string;
  createtime: number;
  tags?: FollowUserTag[];
  remark_mobiles?: string[];
  oper_userid?: string;
  add_way?: number;
  state?: string;
}

export interface ExternalContact {
  external_userid: string;
  name: string;
  avatar?: string;
  type: number;
  gender?: number;
  unionid?: string;
  position?: string;
  corp_name?: string;
  corp_full_name?: string;
}

export interface ExternalContactDetail {
  external_contact: ExternalContact;
  follow_user: FollowUser[];
  next_cursor?: string;
}

export interface BatchContactEntry {
  external_contact: ExternalContact;
  follow_info: { userid: string; remark?: string; createtime: number; tag_id?: string[]; oper_userid?: string; add_way?: number; state?: string };
}

export interface CorpTag {
  id: string;
  name: string;
  create_time: number;
  order: number;
  deleted?: boolean;
}

export interface CorpTagGroup {
  group_id: string;
  group_name: string;
  create_time: number;
  order: number;
  deleted?: boolean;
  tag: CorpTag[];
}

export type Attachment =
  | { msgtype: "image"; image: { media_id?: string; pic_url?: string } }
  | { msgtype: "link"; link: { title: string; picurl?: string; desc?: string; url: string } }
  | { msgtype: "miniprogram"; miniprogram: { title: string; pic_media_id: string; appid: string; page: string } }
  | { msgtype: "video"; video: { media_id: string } }
  | { msgtype: "file"; file: { media_id: string } };

export interface MsgTemplate {
  chat_type?: "single" | "group";
  external_userid?: string[];
  chat_id_list?: string[];
  tag_filter?: { group_list: { tag_list: string[] }[] };
  sender?: string;
  allow_select?: boolean;
  text?: { content: string };
  attachments?: Attachment[];
}

export interface GroupMsgSendResult {
  external_userid?: string;
  chat_id?: string;
  userid: string;
  /** 0 not sent, 1 sent, 2 not friends, 3 over the per-customer mass-message cap */
  status: 0 | 1 | 2 | 3;
  send_time?: number;
}

export interface GroupChatDetail {
  chat_id: string;
  name: string;
  owner: string;
  create_time: number;
  notice?: string;
  member_list: { userid: string; type: number; unionid?: string; join_time: number; join_scene: number; invitor?: { userid: string }; group_nickname?: string; name?: string; state?: string }[];
  admin_list?: { userid: string }[];
  member_version?: string;
}

export interface ContactWay {
  type: 1 | 2;
  scene: 1 | 2;
  style?: number;
  remark?: string;
  skip_verify?: boolean;
  state?: string;
  user?: string[];
  party?: number[];
  is_temp?: boolean;
  expires_in?: number;
  chat_expires_in?: number;
  unionid?: string;
  is_exclusive?: boolean;
}

export type AppMessage =
  | { msgtype: "text"; text: { content: string } }
  | { msgtype: "markdown"; markdown: { content: string } }
  | { msgtype: "textcard"; textcard: { title: string; description: string; url: string; btntxt?: string } };
