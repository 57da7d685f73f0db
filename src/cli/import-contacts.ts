import { readFileSync, writeFileSync } from "node:fs";
import { SingleBar, Presets } from "cli-progress";
import { parse } from "csv-parse/sync";
import { loadConfig } from "../config/env";

interface Report {
  total: number;
  created: number;
  updated: number;
  leads: number;
  skipped: number;
  failed: number;
  errors: { row: number; field: string; message: string }[];
}

/** Excel in China often saves CSV as GBK; accept both. */
export function decodeCsv(buf: Buffer): string {
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(buf);
  } catch {
    return new TextDecoder("gbk").decode(buf);
  }
}

/** Split a CSV into header + chunks of whole records (quoted newlines stay inside their record). */
export function chunkCsv(text: string, rowsPerChunk: number): { header: string; chunks: { body: string; rowOffset: number; rows: number }[] } {
  const records = parse(text, { raw: true, info: true, bom: true, skip_empty_lines: true, relax_column_count: true }) as unknown as { raw: string; info: { lines: number } }[];
  if (records.length === 0) return { header: "", chunks: [] };
  const header = records[0]!.raw.replace(/\r?\n$/, "");
  const chunks: { body: string; rowOffset: number; rows: number }[] = [];
  for (let i = 1; i < records.length; i += rowsPerChunk) {
    const part = records.slice(i, i + rowsPerChunk);
    const prevEnd = records[i - 1]!.info.lines;
    chunks.push({ body: [header, ...part.map((r) => r.raw.replace(/\r?\n$/, ""))].join("\n"), rowOffset: prevEnd - 1, rows: part.length });
  }
  return { header, chunks };
}

export interface CsvUpload {
  url: string;
  token: string;
  chunks: { body: string; rowOffset: number; rows: number }[];
  totalRows: number;
}

/**
 * What both CSV import commands do before uploading: the API address and token, the batch size,
 * the file read (UTF-8 or GBK) and cut into chunks of whole records. A number is the exit code of
 * a problem already reported on stderr.
 */
export function prepareCsvUpload(file: string, o: { url?: string; token?: string; batch: string }): CsvUpload | number {
  const config = loadConfig();
  const url = (o.url ?? config.publicUrl).replace(/\/$/, "");
  const token = o.token ?? config.SIYU_TOKEN ?? config.ADMIN_TOKEN;
  if (!token) {
    process.stderr.write("No API token: pass --token, or set SIYU_TOKEN (or ADMIN_TOKEN).\n");
    return 2;
  }
  const batch = Number(o.batch);
  if (!Number.isInteger(batch) || batch < 1 || batch > 50_000) {
    process.stderr.write("--batch must be a whole number from 1 to 50000\n");
    return 2;
  }
  let text: string;
  try {
    text = decodeCsv(readFileSync(file));
  } catch (err) {
    process.stderr.write(`cannot read ${file}: ${(err as Error).message}\n`);
    return 2;
  }
  let chunks;
  try {
    chunks = chunkCsv(text, batch).chunks;
  } catch (err) {
    process.stderr.write(`${file} is not valid CSV: ${(err as Error).message}\n`);
    return 2;
  }
  const totalRows = chunks.reduce((n, c) => n + c.rows, 0);
  if (totalRows === 0) {
    process.stderr.write(`${file} has no data rows (the first row is the header).\n`);
    return 2;
  }
  return { url, token, chunks, totalRows };
}

/**
 * POST one chunk of the file; on failure, stop the bar, say where the import stopped and how to
 * go on (`again`: why running the command again is safe), and answer null.
 */
export async function postChunk(upload: CsvUpload, path: string, chunk: { body: string; rowOffset: number }, bar: SingleBar, again: string): Promise<Response | null> {
  const res = await fetch(`${upload.url}${path}`, {
    method: "POST",
    headers: { authorization: `Bearer ${upload.token}`, "content-type": "text/csv; charset=utf-8" },
    body: chunk.body,
  }).catch((err: Error) => err);
  if (!(res instanceof Error) && res.ok) return res;
  bar.stop();
  const detail = res instanceof Error ? `${res.message} (is Siyu running at ${upload.url}?)` : `${res.status} ${await res.text()}`;
  process.stderr.write(`import stopped at file line ${chunk.rowOffset + 2}: ${detail}\nRows before it were imported; run the same command again to continue (${again}).\n`);
  return null;
}

export async function importContactsCommand(file: string, o: { url?: string; token?: string; onDuplicate: string; batch: string; errors?: string }): Promise<number> {
  if (o.onDuplicate !== "update" && o.onDuplicate !== "skip") {
    process.stderr.write("--on-duplicate must be update or skip\n");
    return 2;
  }
  const upload = prepareCsvUpload(file, o);
  if (typeof upload === "number") return upload;
  const { chunks, totalRows } = upload;
  const bar = new SingleBar({ format: "importing {bar} {percentage}% | {value}/{total} rows | {created} new, {updated} updated, {failed} failed | ETA {eta_formatted}", stream: process.stderr, noTTYOutput: false }, Presets.shades_classic);
  const sum: Report = { total: 0, created: 0, updated: 0, skipped: 0, failed: 0, leads: 0, errors: [] };
  const started = Date.now();
  bar.start(totalRows, 0, { created: 0, updated: 0, failed: 0 });
  for (const chunk of chunks) {
    const res = await postChunk(upload, `/v1/contacts/import?onDuplicate=${o.onDuplicate}&rowOffset=${chunk.rowOffset}`, chunk, bar, "existing contacts are matched, not duplicated");
    if (!res) return 1;
    const r = (await res.json()) as Report;
    for (const k of ["total", "created", "updated", "skipped", "failed", "leads"] as const) sum[k] += r[k] ?? 0;
    sum.errors.push(...r.errors);
    bar.increment(chunk.rows, { created: sum.created, updated: sum.updated, failed: sum.failed });
  }
  bar.stop();
  const secs = (Date.now() - started) / 1000;
  process.stdout.write(`${sum.total} rows in ${secs.toFixed(1)} s: ${sum.created} created, ${sum.updated} updated, ${sum.skipped} skipped, ${sum.failed} failed${sum.leads ? `, ${sum.leads} leads` : ""}\n`);
  return reportRowErrors(sum.errors, o.errors ?? `${file}.errors.csv`);
}

/** Failing rows: the first ten on stdout, all of them in an errors CSV. Exit code 1 when any, else 0. */
export function reportRowErrors(errors: readonly { row: number; field: string; message: string }[], out: string): number {
  if (!errors.length) return 0;
  const esc = (s: string) => (/[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s);
  writeFileSync(out, ["row,field,message", ...errors.map((e) => `${e.row},${esc(e.field)},${esc(e.message)}`)].join("\n") + "\n");
  for (const e of errors.slice(0, 10)) process.stdout.write(`  line ${e.row}: ${e.field} ${e.message}\n`);
  if (errors.length > 10) process.stdout.write(`  … ${errors.length - 10} more\n`);
  process.stdout.write(`Every failing row is listed in ${out}\n`);
  return 1;
}
