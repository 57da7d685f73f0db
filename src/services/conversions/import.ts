import { and, eq, inArray } from "drizzle-orm";
import { z } from "zod";
import { clinics, contacts, events, staff } from "../../db/schema/index";
import { conversionColumn, conversionRowKey, parseConversionRow, type ConversionRow } from "../../domain/conversions/csv";
import { checkOccurredAt } from "../../domain/events/types";
import { AppError, ValidationError, type FieldIssue } from "../../errors";
import { audit, requirePermission, requirePii, withTransaction, type Ctx } from "../context";
import { parseCsvRecords } from "../csv";
import { ingestEvents } from "../events/ingest";
import { leadConfig, tenantTimeZone } from "../leads/internal";
import { checkRefund } from "./record";
import { CONVERSION_INPUTS, EVENT_OF_CONVERSION } from "./schemas";

export const ImportConversionsOptions = z.object({
  /** Added to reported row numbers when a client sends a large file in parts. */
  rowOffset: z.coerce.number().int().min(0).default(0),
});

export interface ImportConversionsReport {
  total: number;
  /** New events stored. */
  imported: number;
  /** Rows whose key was already stored (the file, or these rows, imported before). */
  duplicates: number;
  failed: number;
  /** Every failing row: its line in the file (the header is line 1) and the column at fault. */
  errors: { row: number; field: string; message: string }[];
  /** Imported rows by event type. */
  byType: Record<string, number>;
  /** Header cells that name no known column (left out of the import). */
  ignoredColumns: string[];
}

/** Events per ingest call (one transaction each). */
const CHUNK = 500;

/** Which column a schema field comes from, for error messages. */
const COLUMN_OF: Record<string, string> = { contactId: "contact", staffId: "staff", clinicId: "clinic" };

interface Ready {
  row: number;
  contactId: string;
  event: { type: string; contactId: string; occurredAt: string; idempotencyKey: string; data: Record<string, unknown> };
}

/**
 * Import appointments, visits, consultations, purchases and refunds from CSV (an HIS or spreadsheet
 * export). Each row becomes one event, validated like the API's records; a bad row is reported
 * (line and column) and the good rows are imported. Contacts must exist already (by phone,
 * external id or contact id): an import never creates them. Keys come from the row's own number
 * (单号) or its content, so importing the same file twice adds nothing.
 */
export async function importConversions({ ctx, csv, options }: { ctx: Ctx; csv: string; options?: unknown }): Promise<ImportConversionsReport> {
  requirePermission(ctx, "conversions:import");
  const opt = ImportConversionsOptions.safeParse(options ?? {});
  if (!opt.success) throw new ValidationError(opt.error.issues.map((i) => ({ field: String(i.path[0]), message: i.message })));
  const { rowOffset } = opt.data;
  const ignored: string[] = [];
  const records = parseCsvRecords(
    csv,
    (header) =>
      header.map((h, i) => {
        const col = conversionColumn(h);
        if (!col) ignored.push(h);
        return col ?? `ignored:${i}`;
      }),
    rowOffset,
  );
  const report: ImportConversionsReport = { total: records.length, imported: 0, duplicates: 0, failed: 0, errors: [], byType: {}, ignoredColumns: ignored };
  if (!records.length) return report;
  const cols = new Set(Object.keys(records[0]!.record));
  const missing: FieldIssue[] = [];
  if (!cols.has("type")) missing.push({ field: "csv", message: "the header needs a type column (类型): appointment, visit, consultation, purchase or refund" });
  if (!["contact", "phone", "externalUserId", "contactId"].some((c) => cols.has(c))) missing.push({ field: "csv", message: "the header needs a contact column (客户: phone, external user id or contact id), or phone / external_user_id / contact_id" });
  if (missing.length) throw new ValidationError(missing);

  const fail = (row: number, field: string, message: string) => {
    report.failed++;
    report.errors.push({ row, field, message });
  };
  const db = ctx.deps.db;
  const tz = await tenantTimeZone(db, ctx.tenantId);
  const parsed: { row: number; r: ConversionRow }[] = [];
  for (const { record, info } of records) {
    const row = info.lines + rowOffset;
    const r = parseConversionRow(record, tz);
    if (!r.ok) fail(row, r.field, r.message);
    else parsed.push({ row, r: r.row });
  }

  // Staff and clinics by every name people put in a spreadsheet; former staff too (history).
  const staffRows = await db.select({ id: staff.id, email: staff.email, wecomUserId: staff.wecomUserId, name: staff.name }).from(staff).where(eq(staff.tenantId, ctx.tenantId));
  const staffByKey = new Map<string, string>();
  for (const s of staffRows) for (const k of [s.id, s.email, s.wecomUserId, s.name]) if (k) staffByKey.set(k.toLowerCase(), s.id);
  const clinicRows = await db.select({ id: clinics.id, name: clinics.name }).from(clinics).where(eq(clinics.tenantId, ctx.tenantId));
  const clinicByKey = new Map<string, string>();
  for (const c of clinicRows) for (const k of [c.id, c.name]) clinicByKey.set(k.toLowerCase(), c.id);
  const contactOf = await resolveContacts(ctx, parsed.map((p) => p.r));
  const reasonsByClinic = new Map<string | null, string[]>();
  const lostReasons = async (clinicId: string | null) => {
    if (!reasonsByClinic.has(clinicId)) reasonsByClinic.set(clinicId, (await leadConfig(db, ctx.tenantId, clinicId)).outcomes.lostReasons);
    return reasonsByClinic.get(clinicId)!;
  };

  // Rows stored before (the same file imported again) are duplicates, whatever has happened since.
  const keyed = parsed.map((p) => ({ ...p, key: conversionRowKey(p.r) }));
  const stored = await existingKeys(ctx, [...new Set(keyed.map((k) => k.key))]);
  const now = ctx.deps.now();
  const ready: Ready[] = [];
  const inFile = new Set<string>();
  /** Refunds of a purchase earlier in this file, not yet stored. */
  const pendingRefunds = new Map<string, number>();
  for (const { row, r, key } of keyed) {
    if (stored.has(key) || inFile.has(key)) {
      report.duplicates++;
      continue;
    }
    const contact = contactOf(r);
    if (!contact) {
      fail(row, "contact", "no such contact: import it first (siyu import-contacts), or check the phone / external id");
      continue;
    }
    const staffId = r.staff ? staffByKey.get(r.staff.toLowerCase()) : undefined;
    if (r.staff && !staffId) {
      fail(row, "staff", `no staff member with email, WeCom id or name "${r.staff}"`);
      continue;
    }
    const clinicId = r.clinic ? clinicByKey.get(r.clinic.toLowerCase()) : undefined;
    if (r.clinic && !clinicId) {
      fail(row, "clinic", `no clinic named "${r.clinic}"`);
      continue;
    }
    const tooLate = checkOccurredAt(r.occurredAt, now);
    if (tooLate || r.occurredAt.getTime() > now.getTime() + 5 * 60_000) {
      fail(row, "occurredAt", tooLate ?? "is in the future");
      continue;
    }
    if (r.type === "consultation" && !r.outcome) {
      fail(row, "outcome", "is required for a consultation: converted or lost (成交/未成交)");
      continue;
    }
    if ((r.type === "purchase" || r.type === "refund") && r.amount === undefined) {
      fail(row, "amount", `is required for a ${r.type}`);
      continue;
    }
    // The same checks as the API's records, on the same schemas.
    const body: Record<string, unknown> = { contactId: contact.id, occurredAt: r.occurredAt.toISOString(), ...(staffId ? { staffId } : {}), ...(clinicId ? { clinicId } : {}), ...(r.note ? { note: r.note } : {}) };
    const item = r.items.length ? { item: r.items.join("、").slice(0, 200) } : {};
    if (r.type === "appointment") Object.assign(body, { at: r.at!.toISOString(), ...item });
    else if (r.type === "visit") Object.assign(body, item);
    else if (r.type === "consultation") Object.assign(body, { outcome: r.outcome, ...(r.amount !== undefined ? { amount: r.amount } : {}), ...(r.items.length ? { items: r.items } : {}), ...(r.lostReason ? { lostReason: r.lostReason } : {}), ...(r.mode ? { mode: r.mode } : {}) });
    else if (r.type === "purchase") Object.assign(body, { amount: r.amount, items: r.items });
    else Object.assign(body, { amount: r.amount, ...(r.items.length ? { items: r.items } : {}), ...(r.purchaseEventId ? { purchaseEventId: r.purchaseEventId } : {}), ...(r.reason ? { reason: r.reason } : {}) });
    const checked = CONVERSION_INPUTS[r.type].safeParse(body);
    if (!checked.success) {
      const i = checked.error.issues[0]!;
      const f = String(i.path[0] ?? "row");
      fail(row, COLUMN_OF[f] ?? f, i.message);
      continue;
    }
    const v = checked.data as Record<string, unknown>;
    if (r.type === "consultation" && v.outcome === "lost") {
      const reasons = await lostReasons(clinicId ?? contact.clinicId);
      if (!reasons.includes(String(v.lostReason))) {
        fail(row, "lostReason", `must be one of ${reasons.join("、")}`);
        continue;
      }
    }
    if (r.type === "refund" && r.purchaseEventId) {
      const pending = pendingRefunds.get(r.purchaseEventId) ?? 0;
      try {
        await checkRefund(db, ctx, contact.id, { purchaseEventId: r.purchaseEventId, amount: r.amount! + pending });
      } catch (err) {
        if (!(err instanceof ValidationError)) throw err;
        fail(row, err.issues[0]?.field ?? "purchaseEventId", err.issues[0]?.message ?? err.detail);
        continue;
      }
      pendingRefunds.set(r.purchaseEventId, pending + r.amount!);
    }
    const { contactId: _c, occurredAt: _o, staffId: _s, clinicId: _k, note: _n, ...fields } = v;
    const data = { ...fields, ...(staffId ? { staffId } : {}), ...(clinicId ? { clinicId } : {}), ...(r.note ? { note: r.note } : {}) };
    inFile.add(key);
    ready.push({ row, contactId: contact.id, event: { type: EVENT_OF_CONVERSION[r.type], contactId: contact.id, occurredAt: r.occurredAt.toISOString(), idempotencyKey: key, data } });
  }

  for (let i = 0; i < ready.length; i += CHUNK) {
    const part = ready.slice(i, i + CHUNK);
    await withTransaction(ctx, async (tx, ctx) => {
      const r = await ingestEvents({ ctx: { ...ctx, actor: { kind: "system", name: "conversions-import" } }, source: "import", input: { events: part.map((p) => p.event) } });
      report.imported += r.accepted;
      // Only another import running at the same time makes duplicates here.
      report.duplicates += part.length - r.accepted;
      if (r.accepted === part.length) for (const p of part) report.byType[p.event.type] = (report.byType[p.event.type] ?? 0) + 1;
      await audit(tx, ctx, { action: "conversion.import", entityType: "import", entityId: ctx.requestId ?? "import", after: { rows: part.length, imported: r.accepted, firstRow: part[0]!.row, lastRow: part[part.length - 1]!.row } });
    }).catch((err: unknown) => {
      if (err instanceof AppError) throw err;
      throw new AppError("INTERNAL", `import failed at line ${part[0]!.row}; rows before it were imported, run the same file again to continue`, { cause: err });
    });
  }
  report.errors.sort((a, b) => a.row - b.row);
  return report;
}

/** Which of these idempotency keys the tenant's events hold already. */
async function existingKeys(ctx: Ctx, keys: string[]): Promise<Set<string>> {
  const out = new Set<string>();
  for (let i = 0; i < keys.length; i += 5000) {
    const rows = await ctx.deps.db.select({ key: events.idempotencyKey }).from(events).where(and(eq(events.tenantId, ctx.tenantId), inArray(events.idempotencyKey, keys.slice(i, i + 5000))));
    for (const r of rows) out.add(r.key);
  }
  return out;
}

/** Contacts of the tenant named by the rows (phone, external id or id), in a few queries. */
async function resolveContacts(ctx: Ctx, rows: ConversionRow[]): Promise<(r: ConversionRow) => { id: string; clinicId: string | null } | undefined> {
  const db = ctx.deps.db;
  const ids = [...new Set(rows.flatMap((r) => ("contactId" in r.contact ? [r.contact.contactId] : [])))];
  const exts = [...new Set(rows.flatMap((r) => ("externalUserId" in r.contact ? [r.contact.externalUserId] : [])))];
  const phones = [...new Set(rows.flatMap((r) => ("phone" in r.contact ? [r.contact.phone] : [])))];
  const hashOf = new Map<string, string>();
  if (phones.length) {
    const pii = requirePii(ctx);
    for (const p of phones) hashOf.set(p, pii.hash(p));
  }
  const cols = { id: contacts.id, clinicId: contacts.clinicId, ext: contacts.externalUserId, hash: contacts.phoneHash };
  const byId = new Map<string, { id: string; clinicId: string | null }>();
  const byExt = new Map<string, { id: string; clinicId: string | null }>();
  const byHash = new Map<string, { id: string; clinicId: string | null }>();
  for (let i = 0; i < ids.length; i += 5000) {
    for (const c of await db.select(cols).from(contacts).where(and(eq(contacts.tenantId, ctx.tenantId), inArray(contacts.id, ids.slice(i, i + 5000))))) byId.set(c.id, c);
  }
  for (let i = 0; i < exts.length; i += 5000) {
    for (const c of await db.select(cols).from(contacts).where(and(eq(contacts.tenantId, ctx.tenantId), inArray(contacts.externalUserId, exts.slice(i, i + 5000))))) if (c.ext) byExt.set(c.ext, c);
  }
  const hashes = [...hashOf.values()];
  for (let i = 0; i < hashes.length; i += 5000) {
    for (const c of await db.select(cols).from(contacts).where(and(eq(contacts.tenantId, ctx.tenantId), inArray(contacts.phoneHash, hashes.slice(i, i + 5000))))) if (c.hash) byHash.set(c.hash, c);
  }
  return (r) => ("contactId" in r.contact ? byId.get(r.contact.contactId) : "externalUserId" in r.contact ? byExt.get(r.contact.externalUserId) : byHash.get(hashOf.get(r.contact.phone)!));
}
