import { and, eq, inArray } from "drizzle-orm";
import { z } from "zod";
import { clinics, contacts, staff } from "../../db/schema/index";
import { normalizePhone } from "../../domain/pii/phone";
import { AppError, ValidationError } from "../../errors";
import { audit, requirePermission, requirePii, withTransaction, type AuditEntry, type Ctx } from "../context";
import { parseCsvRecords } from "../csv";
import { findByKeys } from "./internal";
import { auditSnapshot, ContactFields, type ContactRow } from "./schemas";
import { markTagsDue } from "../tagging/tag-state";
import { signalLead } from "../leads/leads";
import { recordReferralJoined, type ReferralLink } from "../conversions/referrals";
import type { DbOrTx } from "../../db/client";

export const ImportContactsOptions = z.object({
  /** update: fill existing contacts (matched by phone or external id) with the row's values; skip: leave them. */
  onDuplicate: z.enum(["update", "skip"]).default("update"),
  /** Added to reported row numbers when a client sends a large file in parts. */
  rowOffset: z.coerce.number().int().min(0).default(0),
  source: z.string().min(1).max(64).default("import"),
});
export type ImportContactsOptions = z.infer<typeof ImportContactsOptions>;

export interface ImportRowError {
  /** Line number in the file (the header is line 1). */
  row: number;
  field: string;
  message: string;
}

export interface ImportReport {
  total: number;
  created: number;
  updated: number;
  skipped: number;
  failed: number;
  /** Leads opened or raised by rows with a lead (线索 / 意向项目) column. */
  leads: number;
  errors: ImportRowError[];
}

/** Header aliases, English and Chinese, folded to lower case without spaces or underscores. */
const HEADER_ALIASES: Record<string, string> = {
  name: "name", 姓名: "name", 客户名称: "name", 客户姓名: "name", 昵称: "name",
  phone: "phone", mobile: "phone", 手机: "phone", 手机号: "phone", 手机号码: "phone", 电话: "phone", 联系电话: "phone",
  externaluserid: "externalUserId", externalid: "externalUserId", 外部联系人id: "externalUserId",
  unionid: "unionId",
  gender: "gender", 性别: "gender",
  source: "source", 来源: "source", 渠道: "source",
  sourcestate: "sourceState", state: "sourceState", 渠道码: "sourceState",
  owner: "owner", owneremail: "owner", 归属顾问: "owner", 顾问: "owner", 咨询师: "owner",
  clinic: "clinic", 门店: "clinic", 诊所: "clinic",
  lead: "lead", 线索: "lead", 意向: "lead", 意向项目: "lead", leadneed: "lead",
  referrer: "referrer", referrercontactid: "referrer", 推荐人: "referrer", 介绍人: "referrer", 转介绍人: "referrer",
};

/** Values of the lead column that open a lead without naming a need; any other value is the need type. */
const LEAD_YES = new Set(["1", "y", "yes", "true", "是", "有", "有意向", "线索"]);
const LEAD_NO = new Set(["0", "n", "no", "false", "否", "无"]);

const GENDERS: Record<string, "male" | "female" | "unknown"> = {
  male: "male", m: "male", 男: "male", female: "female", f: "female", 女: "female", unknown: "unknown", 未知: "unknown",
};

const CHUNK = 1000;

interface Prepared {
  row: number;
  values: Omit<typeof contacts.$inferInsert, "tenantId">;
  /** Fields present in the row (empty cells leave existing values alone on update). */
  present: Set<string>;
  /** Open (or raise) a lead for the contact: null no, "" yes, else the need type. */
  lead: string | null;
  /** The referrer (转介绍) as written: a contact id, phone or external id of a contact of the tenant. */
  referrer: string | null;
}

export async function importContacts({ ctx, csv, options }: { ctx: Ctx; csv: string; options?: unknown }): Promise<ImportReport> {
  requirePermission(ctx, "contacts:import");
  const opt = ImportContactsOptions.safeParse(options ?? {});
  if (!opt.success) throw new ValidationError(opt.error.issues.map((i) => ({ field: String(i.path[0]), message: i.message })));
  const { onDuplicate, rowOffset, source } = opt.data;
  const pii = requirePii(ctx);

  const records = parseCsvRecords(csv, (header) => header.map((h) => HEADER_ALIASES[h.trim().toLowerCase().replace(/[\s_-]/g, "")] ?? `attr:${h.trim()}`), rowOffset);
  const report: ImportReport = { total: records.length, created: 0, updated: 0, skipped: 0, failed: 0, leads: 0, errors: [] };
  if (records.length === 0) return report;
  const headerKeys = Object.keys(records[0]!.record);
  if (!headerKeys.some((k) => k === "name" || k === "phone" || k === "externalUserId")) {
    throw new ValidationError([{ field: "csv", message: "the header needs a name, phone or external_user_id column (姓名 / 手机号 also work)" }]);
  }

  // Owners and clinics by every name people put in a spreadsheet.
  const staffRows = await ctx.deps.db.select().from(staff).where(eq(staff.tenantId, ctx.tenantId));
  const ownerByKey = new Map<string, string>();
  for (const s of staffRows) {
    if (!s.active || (s.role !== "consultant" && s.role !== "admin")) continue;
    for (const k of [s.email, s.wecomUserId?.toLowerCase(), s.name]) if (k) ownerByKey.set(k.toLowerCase(), s.id);
  }
  const clinicRows = await ctx.deps.db.select().from(clinics).where(eq(clinics.tenantId, ctx.tenantId));
  const clinicByName = new Map(clinicRows.map((c) => [c.name, c.id]));

  const seen = new Map<string, number>();
  for (let start = 0; start < records.length; start += CHUNK) {
    const prepared: Prepared[] = [];
    for (const { record, info } of records.slice(start, start + CHUNK)) {
      const row = info.lines + rowOffset;
      const p = prepareRow(record, row, { ownerByKey, clinicByName, source }, report);
      if (!p) continue;
      const key = (p.values.phoneHash ? `p:${p.values.phoneHash}` : null) ?? (p.values.externalUserId ? `e:${p.values.externalUserId}` : null);
      const ext = p.values.externalUserId ? `e:${p.values.externalUserId}` : null;
      const dupOf = (key && seen.get(key)) ?? (ext && seen.get(ext));
      if (dupOf) {
        report.failed++;
        report.errors.push({ row, field: key?.startsWith("p:") ? "phone" : "externalUserId", message: `duplicate of row ${dupOf} in this file` });
        continue;
      }
      if (key) seen.set(key, row);
      if (ext) seen.set(ext, row);
      prepared.push(p);
    }
    if (prepared.length) await applyChunk(ctx, prepared, onDuplicate, report);
  }
  report.errors.sort((a, b) => a.row - b.row);
  return report;

  function prepareRow(
    record: Record<string, string>,
    row: number,
    refs: { ownerByKey: Map<string, string>; clinicByName: Map<string, string>; source: string },
    rep: ImportReport,
  ): Prepared | null {
    const fail = (field: string, message: string) => {
      rep.failed++;
      rep.errors.push({ row, field, message });
      return null;
    };
    const present = new Set<string>();
    const attributes: Record<string, string> = {};
    const raw: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(record)) {
      if (v === undefined || v === "") continue;
      if (k.startsWith("attr:")) attributes[k.slice(5)] = v;
      else raw[k] = v;
    }
    if (raw.name === undefined && raw.phone === undefined && raw.externalUserId === undefined) {
      return fail("name", "a row needs a name, phone or external id");
    }
    let gender: "male" | "female" | "unknown" | undefined;
    if (typeof raw.gender === "string") {
      gender = GENDERS[raw.gender.toLowerCase()];
      if (!gender) return fail("gender", "must be male/female/unknown (男/女)");
    }
    let ownerStaffId: string | undefined;
    if (typeof raw.owner === "string") {
      ownerStaffId = refs.ownerByKey.get(raw.owner.toLowerCase());
      if (!ownerStaffId) return fail("owner", `no active consultant with email, WeCom id or name "${raw.owner}"`);
    }
    let clinicId: string | undefined;
    if (typeof raw.clinic === "string") {
      clinicId = refs.clinicByName.get(raw.clinic);
      if (!clinicId) return fail("clinic", `no clinic named "${raw.clinic}"`);
    }
    let lead: string | null = null;
    if (typeof raw.lead === "string" && !LEAD_NO.has(raw.lead.toLowerCase())) {
      lead = LEAD_YES.has(raw.lead.toLowerCase()) ? "" : raw.lead;
      if (lead.length > 64) return fail("lead", "a need type has at most 64 characters");
    }
    const checked = ContactFields.pick({ name: true, externalUserId: true, unionId: true, source: true, sourceState: true }).safeParse(raw);
    if (!checked.success) {
      const i = checked.error.issues[0]!;
      return fail(String(i.path[0] ?? "row"), i.message);
    }
    let phoneCols = { phoneEnc: null as string | null, phoneHash: null as string | null, phoneMask: null as string | null };
    if (typeof raw.phone === "string") {
      const n = normalizePhone(raw.phone);
      if (!n.ok) return fail("phone", n.reason);
      phoneCols = { phoneEnc: pii.encrypt(n.e164), phoneHash: pii.hash(n.e164), phoneMask: n.masked };
      present.add("phone");
    }
    const c = checked.data;
    for (const [k, v] of Object.entries({ name: c.name, externalUserId: c.externalUserId, unionId: c.unionId, sourceState: c.sourceState, gender, ownerStaffId, clinicId })) {
      if (v !== undefined) present.add(k);
    }
    if (c.source !== undefined) present.add("source");
    if (Object.keys(attributes).length) present.add("attributes");
    return {
      row,
      present,
      lead,
      referrer: typeof raw.referrer === "string" ? raw.referrer : null,
      values: {
        name: c.name ?? null,
        ...phoneCols,
        externalUserId: c.externalUserId ?? null,
        unionId: c.unionId ?? null,
        gender: gender ?? null,
        source: c.source ?? refs.source,
        sourceState: c.sourceState ?? null,
        ownerStaffId: ownerStaffId ?? null,
        clinicId: clinicId ?? null,
        attributes,
      },
    };
  }
}

/** Referrers named by the rows (a contact id, phone or external id), resolved to the tenant's contacts. */
async function resolveReferrers(tx: DbOrTx, ctx: Ctx, prepared: Prepared[]): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const raws = [...new Set(prepared.flatMap((p) => (p.referrer === null ? [] : [p.referrer])))];
  if (!raws.length) return out;
  const ids = raws.filter((r) => UUID.test(r));
  const phones = new Map<string, string>();
  const exts: string[] = [];
  for (const r of raws) {
    if (UUID.test(r)) continue;
    const n = normalizePhone(r);
    if (n.ok && /^[\d\s+\-()]+$/.test(r.normalize("NFKC"))) phones.set(requirePii(ctx).hash(n.e164), r);
    else exts.push(r);
  }
  const tenant = eq(contacts.tenantId, ctx.tenantId);
  if (ids.length) for (const c of await tx.select({ id: contacts.id }).from(contacts).where(and(tenant, inArray(contacts.id, ids)))) out.set(ids.find((i) => i.toLowerCase() === c.id)!, c.id);
  if (phones.size) for (const c of await tx.select({ id: contacts.id, h: contacts.phoneHash }).from(contacts).where(and(tenant, inArray(contacts.phoneHash, [...phones.keys()])))) out.set(phones.get(c.h!)!, c.id);
  if (exts.length) for (const c of await tx.select({ id: contacts.id, e: contacts.externalUserId }).from(contacts).where(and(tenant, inArray(contacts.externalUserId, exts)))) out.set(c.e!, c.id);
  return out;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

async function applyChunk(ctx: Ctx, prepared: Prepared[], onDuplicate: "update" | "skip", report: ImportReport): Promise<void> {
  await withTransaction(ctx, async (tx, ctx) => {
    const existing = await findByKeys(tx, ctx.tenantId, {
      phoneHashes: prepared.flatMap((p) => (p.values.phoneHash ? [p.values.phoneHash] : [])),
      externalUserIds: prepared.flatMap((p) => (p.values.externalUserId ? [p.values.externalUserId] : [])),
    });
    const inserts: Prepared[] = [];
    const audits: AuditEntry[] = [];
    const leadsFor: { contactId: string; need: string }[] = [];
    const referrerOf = await resolveReferrers(tx, ctx, prepared);
    const referrals: ReferralLink[] = [];
    for (const p of prepared) {
      const a = p.values.phoneHash ? existing.byPhone.get(p.values.phoneHash) : undefined;
      const b = p.values.externalUserId ? existing.byExternal.get(p.values.externalUserId) : undefined;
      if (a && b && a.id !== b.id) {
        report.failed++;
        report.errors.push({ row: p.row, field: "externalUserId", message: "phone and external id belong to two different contacts" });
        continue;
      }
      const match: ContactRow | undefined = a ?? b;
      const referrer = p.referrer === null ? null : (referrerOf.get(p.referrer) ?? null);
      if (p.referrer !== null && (!referrer || referrer === match?.id)) {
        report.failed++;
        report.errors.push({ row: p.row, field: "referrer", message: referrer ? "a contact cannot refer itself" : "no contact with this id, phone or external id (the referrer must be a contact already)" });
        continue;
      }
      if (!match) {
        inserts.push(referrer ? { ...p, values: { ...p.values, referrerContactId: referrer } } : p);
        continue;
      }
      if (onDuplicate === "skip") {
        report.skipped++;
        continue;
      }
      const set: Record<string, unknown> = { updatedAt: ctx.deps.now() };
      for (const f of p.present) {
        if (f === "phone") Object.assign(set, { phoneEnc: p.values.phoneEnc, phoneHash: p.values.phoneHash, phoneMask: p.values.phoneMask });
        else if (f === "attributes") set.attributes = { ...match.attributes, ...p.values.attributes };
        else set[f] = (p.values as Record<string, unknown>)[f];
      }
      // The first referrer stands (as for a WeCom add through a referral code).
      if (referrer && !match.referrerContactId) {
        set.referrerContactId = referrer;
        referrals.push({ referredContactId: match.id, referrerContactId: referrer, at: ctx.deps.now() });
      }
      const [row] = await tx
        .update(contacts)
        .set(set)
        .where(and(eq(contacts.tenantId, ctx.tenantId), eq(contacts.id, match.id)))
        .returning();
      report.updated++;
      if (p.lead !== null) leadsFor.push({ contactId: match.id, need: p.lead });
      await markTagsDue(tx, ctx.tenantId, [match.id]);
      audits.push({ action: "contact.update", entityType: "contact", entityId: match.id, before: auditSnapshot(match), after: { ...auditSnapshot(row!), via: "import" } });
    }
    if (inserts.length) {
      const rows = await tx
        .insert(contacts)
        .values(inserts.map((p) => ({ tenantId: ctx.tenantId, ...p.values })))
        .returning();
      report.created += rows.length;
      rows.forEach((r, i) => {
        audits.push({ action: "contact.create", entityType: "contact", entityId: r.id, after: { ...auditSnapshot(r), via: "import" } });
        if (inserts[i]!.lead !== null) leadsFor.push({ contactId: r.id, need: inserts[i]!.lead! });
        if (r.referrerContactId) referrals.push({ referredContactId: r.id, referrerContactId: r.referrerContactId, at: ctx.deps.now() });
      });
    }
    await audit(tx, ctx, audits);
    // 转介绍: referrers are credited (referral_joined), once per referred contact.
    await recordReferralJoined(ctx, referrals);
    // Leads in the same transaction as their contacts: routed like any other (owner first, else the chain).
    for (const l of leadsFor) {
      await signalLead({ ctx, input: { contactId: l.contactId, source: "import", ...(l.need ? { need: l.need } : {}) } });
      report.leads++;
    }
  }).catch((err: unknown) => {
    if (err instanceof AppError) throw err;
    throw new AppError("INTERNAL", "import failed; no rows of the failing part were written", { cause: err });
  });
}
