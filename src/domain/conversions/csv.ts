import { createHash } from "node:crypto";
import { normalizePhone } from "../pii/phone";
import { zonedInstant } from "../delivery/schedule";

/**
 * Conversion records from a CSV file (an HIS or spreadsheet export): one row per appointment,
 * visit, consultation, purchase or refund. Pure: the service resolves contacts, staff and clinics,
 * then validates each row with the same schemas as the API.
 */

export const CONVERSION_ROW_TYPES = ["appointment", "visit", "consultation", "purchase", "refund"] as const;
export type ConversionRowType = (typeof CONVERSION_ROW_TYPES)[number];

/** Header aliases, English and Chinese, folded to lower case without spaces, underscores or dashes. */
const HEADER_ALIASES: Record<string, string> = {
  type: "type", kind: "type", 类型: "type", 记录类型: "type", 业务类型: "type",
  contact: "contact", 客户: "contact",
  contactid: "contactId", 客户id: "contactId",
  phone: "phone", mobile: "phone", 手机: "phone", 手机号: "phone", 手机号码: "phone", 电话: "phone", 联系电话: "phone",
  externaluserid: "externalUserId", externalid: "externalUserId", 外部联系人id: "externalUserId",
  occurredat: "occurredAt", time: "occurredAt", date: "occurredAt", datetime: "occurredAt", 时间: "occurredAt", 日期: "occurredAt", 发生时间: "occurredAt", 记录时间: "occurredAt",
  at: "at", appointmentat: "at", 预约时间: "at", 预约日期: "at",
  amount: "amount", 金额: "amount", 成交金额: "amount", 消费金额: "amount", 退款金额: "amount", 实收金额: "amount",
  items: "items", item: "items", 项目: "items", 治疗项目: "items", 消费项目: "items", 成交项目: "items", 到诊项目: "items",
  outcome: "outcome", 结果: "outcome", 咨询结果: "outcome",
  lostreason: "lostReason", 流失原因: "lostReason", 未成交原因: "lostReason",
  clinic: "clinic", clinicid: "clinic", 门店: "clinic", 诊所: "clinic",
  staff: "staff", staffid: "staff", consultant: "staff", 顾问: "staff", 咨询师: "staff", 接诊顾问: "staff", 成交顾问: "staff",
  mode: "mode", 方式: "mode", 咨询方式: "mode",
  idempotencykey: "idempotencyKey", key: "idempotencyKey", 幂等键: "idempotencyKey", 单号: "idempotencyKey", 订单号: "idempotencyKey", 流水号: "idempotencyKey",
  note: "note", 备注: "note",
  reason: "reason", 退款原因: "reason",
  purchaseeventid: "purchaseEventId", 原消费记录: "purchaseEventId",
};

/** The column a header names, or null (the column is ignored: exports carry many). */
export function conversionColumn(header: string): string | null {
  return HEADER_ALIASES[header.trim().toLowerCase().replace(/[\s_-]/g, "")] ?? null;
}

const TYPE_ALIASES: Record<string, ConversionRowType> = {
  appointment: "appointment", appointment_booked: "appointment", 预约: "appointment",
  visit: "visit", 到诊: "visit", 到院: "visit",
  consultation: "consultation", consultation_outcome: "consultation", 咨询: "consultation", 面诊: "consultation",
  purchase: "purchase", 消费: "purchase", 购买: "purchase",
  refund: "refund", 退款: "refund",
};
const OUTCOMES: Record<string, "converted" | "lost"> = { converted: "converted", 成交: "converted", 已成交: "converted", lost: "lost", 未成交: "lost", 流失: "lost" };
const MODES: Record<string, "online" | "in_person"> = { online: "online", 线上: "online", 在线: "online", 网络: "online", in_person: "in_person", inperson: "in_person", offline: "in_person", 到院: "in_person", 线下: "in_person", 面诊: "in_person", 现场: "in_person" };

export type ContactRef = { contactId: string } | { phone: string } | { externalUserId: string };

export interface ConversionRow {
  type: ConversionRowType;
  contact: ContactRef;
  /** Absent only for an appointment that gives `at` (then booked at that time too). */
  occurredAt: Date;
  at?: Date;
  amount?: number;
  items: string[];
  outcome?: "converted" | "lost";
  lostReason?: string;
  /** A clinic's name (or id) and a staff member's email, WeCom userid or name, resolved by the service. */
  clinic?: string;
  staff?: string;
  mode?: "online" | "in_person";
  idempotencyKey?: string;
  note?: string;
  reason?: string;
  purchaseEventId?: string;
}

export type RowResult = { ok: true; row: ConversionRow } | { ok: false; field: string; message: string };

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Items separated by 、 ; | (full-width too). */
export function splitItems(v: string): string[] {
  return v
    .split(/[、;；|｜]/)
    .map((s) => s.trim())
    .filter(Boolean);
}

/** Yuan as people write it: 6800, 6,800.00, ¥6800, 6800元. Null when not a non-negative number. */
export function parseAmount(v: string): number | null {
  const s = v.normalize("NFKC").replace(/[¥￥,\s]|元$|RMB|CNY/gi, "");
  if (!/^\d+(\.\d{1,2})?$/.test(s)) return null;
  const n = Number(s);
  return Number.isFinite(n) ? n : null;
}

/**
 * A date and time as spreadsheets write it: ISO 8601 with an offset (taken as is), or a local
 * `2026-03-01 14:30[:00]`, `2026/3/1 14:30`, `2026年3月1日 14:30`, or a date alone (local midnight),
 * in the tenant's time zone. Null when it is none of these.
 */
export function parseLocalDateTime(v: string, timeZone: string): Date | null {
  const s = v.normalize("NFKC").trim();
  if (/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})$/i.test(s)) {
    const d = new Date(s);
    return Number.isNaN(d.getTime()) ? null : d;
  }
  const m = /^(\d{4})[-/.年](\d{1,2})[-/.月](\d{1,2})日?(?:[ T]+(\d{1,2})[:：](\d{2})(?:[:：](\d{2}))?)?$/.exec(s);
  if (!m) return null;
  const [y, mo, d, h = "0", mi = "0", sec = "0"] = m.slice(1);
  const date = `${y}-${mo!.padStart(2, "0")}-${d!.padStart(2, "0")}`;
  const probe = new Date(`${date}T00:00:00Z`);
  if (Number.isNaN(probe.getTime()) || probe.toISOString().slice(0, 10) !== date) return null;
  if (Number(h) > 23 || Number(mi) > 59 || Number(sec) > 59) return null;
  return new Date(zonedInstant(date, `${h!.padStart(2, "0")}:${mi!.padStart(2, "0")}`, timeZone).getTime() + Number(sec) * 1000);
}

/** How the row names its contact: contactId, phone or externalUserId columns, or `contact` (an id, a phone, else an external id). */
function contactRef(r: Record<string, string>): ContactRef | { error: string; field: string } {
  const given = [r.contactId ? "contactId" : null, r.phone ? "phone" : null, r.externalUserId ? "externalUserId" : null, r.contact ? "contact" : null].filter(Boolean);
  if (given.length === 0) return { field: "contact", error: "is required: a phone, external user id or contact id" };
  if (given.length > 1) return { field: given[1]!, error: `give one of contact, phone, external_user_id or contact_id, not ${given.join(" and ")}` };
  if (r.contactId) return UUID.test(r.contactId) ? { contactId: r.contactId.toLowerCase() } : { field: "contactId", error: "is not a contact id" };
  if (r.phone) {
    const n = normalizePhone(r.phone);
    return n.ok ? { phone: n.e164 } : { field: "phone", error: n.reason };
  }
  if (r.externalUserId) return { externalUserId: r.externalUserId };
  const v = r.contact!;
  if (UUID.test(v)) return { contactId: v.toLowerCase() };
  const n = normalizePhone(v);
  if (n.ok && /^[\d\s+\-()]+$/.test(v.normalize("NFKC"))) return { phone: n.e164 };
  return { externalUserId: v };
}

/** One CSV record (canonical column -> trimmed cell) as a conversion row, or the first problem with its column. */
export function parseConversionRow(record: Readonly<Record<string, string>>, timeZone: string): RowResult {
  const r: Record<string, string> = {};
  for (const [k, v] of Object.entries(record)) if (v !== undefined && v.trim() !== "") r[k] = v.trim();
  const fail = (field: string, message: string): RowResult => ({ ok: false, field, message });
  if (!r.type) return fail("type", "is required: appointment, visit, consultation, purchase or refund (预约/到诊/咨询/消费/退款)");
  const type = TYPE_ALIASES[r.type.toLowerCase()];
  if (!type) return fail("type", `"${r.type}" is not one of appointment, visit, consultation, purchase, refund (预约/到诊/咨询/消费/退款)`);
  const contact = contactRef(r);
  if ("error" in contact) return fail(contact.field, contact.error);
  let at: Date | undefined;
  if (r.at !== undefined) {
    const d = parseLocalDateTime(r.at, timeZone);
    if (!d) return fail("at", "is not a date and time (2026-03-01 14:30, or ISO 8601)");
    at = d;
  }
  let occurredAt: Date | undefined;
  if (r.occurredAt !== undefined) {
    const d = parseLocalDateTime(r.occurredAt, timeZone);
    if (!d) return fail("occurredAt", "is not a date and time (2026-03-01 14:30, or ISO 8601)");
    occurredAt = d;
  }
  if (type === "appointment") {
    // A spreadsheet of appointments usually has one time: the appointment's.
    at ??= occurredAt;
    if (!at) return fail("at", "is required for an appointment (预约时间)");
  }
  occurredAt ??= type === "appointment" ? at : undefined;
  if (!occurredAt) return fail("occurredAt", "is required (时间)");
  let amount: number | undefined;
  if (r.amount !== undefined) {
    const n = parseAmount(r.amount);
    if (n === null) return fail("amount", `"${r.amount}" is not an amount in yuan`);
    amount = n;
  }
  let outcome: "converted" | "lost" | undefined;
  if (r.outcome !== undefined) {
    outcome = OUTCOMES[r.outcome.toLowerCase()];
    if (!outcome) return fail("outcome", `"${r.outcome}" is not converted or lost (成交/未成交)`);
  }
  let mode: "online" | "in_person" | undefined;
  if (r.mode !== undefined) {
    mode = MODES[r.mode.toLowerCase()];
    if (!mode) return fail("mode", `"${r.mode}" is not online or in_person (线上/到院)`);
  }
  if (r.purchaseEventId !== undefined && !UUID.test(r.purchaseEventId)) return fail("purchaseEventId", "is not an event id");
  return {
    ok: true,
    row: {
      type,
      contact,
      occurredAt,
      ...(at ? { at } : {}),
      ...(amount !== undefined ? { amount } : {}),
      items: r.items ? splitItems(r.items) : [],
      ...(outcome ? { outcome } : {}),
      ...(r.lostReason ? { lostReason: r.lostReason } : {}),
      ...(r.clinic ? { clinic: r.clinic } : {}),
      ...(r.staff ? { staff: r.staff } : {}),
      ...(mode ? { mode } : {}),
      ...(r.idempotencyKey ? { idempotencyKey: r.idempotencyKey } : {}),
      ...(r.note ? { note: r.note } : {}),
      ...(r.reason ? { reason: r.reason } : {}),
      ...(r.purchaseEventId ? { purchaseEventId: r.purchaseEventId.toLowerCase() } : {}),
    },
  };
}

/**
 * The row's idempotency key: its own (单号, namespaced by type) or one derived from its content, so
 * importing the same file again adds nothing.
 */
export function conversionRowKey(row: ConversionRow): string {
  if (row.idempotencyKey) return `import-${row.type}-${row.idempotencyKey}`.slice(0, 200);
  const canonical = JSON.stringify([
    row.type,
    row.contact,
    row.occurredAt.toISOString(),
    row.at?.toISOString() ?? null,
    row.amount ?? null,
    row.items,
    row.outcome ?? null,
    row.lostReason ?? null,
    row.clinic ?? null,
    row.staff ?? null,
    row.mode ?? null,
    row.reason ?? null,
    row.purchaseEventId ?? null,
    row.note ?? null,
  ]);
  return `import-${row.type}-${createHash("sha256").update(canonical).digest("hex").slice(0, 40)}`;
}
