import { Presets, SingleBar } from "cli-progress";
import { postChunk, prepareCsvUpload, reportRowErrors } from "./import-contacts";

interface Report {
  total: number;
  imported: number;
  duplicates: number;
  failed: number;
  errors: { row: number; field: string; message: string }[];
  byType: Record<string, number>;
  ignoredColumns?: string[];
}

const TYPE_NAMES: Record<string, string> = { appointment_booked: "预约", visit: "到诊", consultation_outcome: "咨询", purchase: "消费", refund: "退款" };

/**
 * `siyu import-conversions FILE`: appointments, visits, consultations, purchases and refunds from
 * a CSV file through the API, in chunks with a progress bar; failing rows go to FILE.errors.csv.
 * Running it again adds nothing that was imported (rows keep their keys).
 */
export async function importConversionsCommand(file: string, o: { url?: string; token?: string; batch: string; errors?: string }): Promise<number> {
  const upload = prepareCsvUpload(file, o);
  if (typeof upload === "number") return upload;
  const { chunks, totalRows } = upload;
  const bar = new SingleBar({ format: "importing {bar} {percentage}% | {value}/{total} rows | {imported} new, {duplicates} already there, {failed} failed | ETA {eta_formatted}", stream: process.stderr, noTTYOutput: false }, Presets.shades_classic);
  const sum: Report = { total: 0, imported: 0, duplicates: 0, failed: 0, errors: [], byType: {} };
  let ignored: string[] = [];
  const started = Date.now();
  bar.start(totalRows, 0, { imported: 0, duplicates: 0, failed: 0 });
  for (const chunk of chunks) {
    const res = await postChunk(upload, `/v1/conversions/import?rowOffset=${chunk.rowOffset}`, chunk, bar, "imported rows are not added twice");
    if (!res) return 1;
    const r = (await res.json()) as Report;
    for (const k of ["total", "imported", "duplicates", "failed"] as const) sum[k] += r[k] ?? 0;
    for (const [type, n] of Object.entries(r.byType ?? {})) sum.byType[type] = (sum.byType[type] ?? 0) + n;
    sum.errors.push(...r.errors);
    ignored = r.ignoredColumns ?? ignored;
    bar.increment(chunk.rows, { imported: sum.imported, duplicates: sum.duplicates, failed: sum.failed });
  }
  bar.stop();
  const secs = (Date.now() - started) / 1000;
  const kinds = Object.entries(sum.byType).map(([type, n]) => `${TYPE_NAMES[type] ?? type} ${n}`).join("、");
  process.stdout.write(`${sum.total} rows in ${secs.toFixed(1)} s: ${sum.imported} imported${kinds ? ` (${kinds})` : ""}, ${sum.duplicates} already there, ${sum.failed} failed\n`);
  if (ignored.length) process.stdout.write(`columns ignored (not known): ${ignored.join(", ")}\n`);
  return reportRowErrors(sum.errors, o.errors ?? `${file}.errors.csv`);
}
