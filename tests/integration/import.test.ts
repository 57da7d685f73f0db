import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { serve, type ServerType } from "@hono/node-server";
import { parse } from "csv-parse/sync";
import { and, eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { chunkCsv, decodeCsv } from "../../src/cli/import-contacts";
import { contacts } from "../../src/db/schema/index";
import { runSiyu } from "../helpers/cli";
import { client, createTestTenant, type ApiResponse, type TestTenant } from "../helpers/factories";
import { createTestRuntime, type TestRuntime } from "../helpers/runtime";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const FIXTURES = path.join(ROOT, "tests/fixtures");
const fixture = (name: string) => readFileSync(path.join(FIXTURES, name));

let t: TestRuntime;
let tenant: TestTenant;
let clinicId: string;

beforeAll(async () => {
  t = await createTestRuntime();
  // Fixed slug: the fixture names owners by email (consultant@import-demo.test) and WeCom id.
  tenant = await createTestTenant(t.rt.deps, { slug: "import-demo" });
  const clinic = await client(t.app, tenant.tokens.admin).post("/v1/clinics", { name: "旗舰店", city: "上海" });
  expect(clinic.status).toBe(201);
  clinicId = clinic.body.id as string;
});
afterAll(async () => t?.close());

const importCsv = (token: string, body: string | Buffer, query = "", type = "text/csv; charset=utf-8"): Promise<ApiResponse> =>
  client(t.app, token).post(`/v1/contacts/import${query}`, typeof body === "string" ? body : body.toString("utf8"), { "content-type": type });

const fields = (res: ApiResponse): string[] => ((res.body?.errors ?? []) as { field: string }[]).map((e) => e.field);

/** The bad rows of tests/fixtures/contacts-zh.csv: file line (header = 1) and field. */
const ZH_ERRORS = [
  { row: 5, field: "phone" }, // 王五: 12345 (line 5: the 李四 record spans lines 3-4)
  { row: 6, field: "owner" }, // unknown owner email
  { row: 7, field: "gender" }, // 不详
  { row: 8, field: "name" }, // a row of empty cells
  { row: 9, field: "phone" }, // same phone as line 2, written another way
  { row: 11, field: "clinic" }, // unknown clinic
  { row: 14, field: "owner" }, // a reviewer cannot own contacts (line 13 is blank)
];

async function contactByName(name: string) {
  const res = await client(t.app, tenant.tokens.admin).get(`/v1/contacts?q=${encodeURIComponent(name)}`);
  expect(res.status).toBe(200);
  const items = (res.body.items as { name: string }[]).filter((c) => c.name === name);
  expect(items, name).toHaveLength(1);
  return items[0] as Record<string, unknown>;
}

async function countContacts(tenantId: string): Promise<number> {
  return (await t.rt.deps.db.select({ id: contacts.id }).from(contacts).where(eq(contacts.tenantId, tenantId))).length;
}

describe("POST /v1/contacts/import", () => {
  it("imports good rows of a Chinese-header CSV with BOM and reports each bad row by file line", async () => {
    const res = await importCsv(tenant.tokens.admin, fixture("contacts-zh.csv"));
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ total: 11, created: 4, updated: 0, skipped: 0, failed: 7 });
    expect((res.body.errors as { row: number; field: string }[]).map(({ row, field }) => ({ row, field }))).toEqual(ZH_ERRORS);
    const dup = (res.body.errors as { row: number; message: string }[]).find((e) => e.row === 9)!;
    expect(dup.message).toMatch(/row 2/);
    // No error message carries the row's phone.
    expect(JSON.stringify(res.body)).not.toContain("13800000");

    const zhang = await contactByName("张三");
    expect(zhang).toMatchObject({
      phone: "+8613800000001",
      gender: "male",
      source: "抖音",
      ownerStaffId: tenant.staff.consultant.id, // by email
      clinicId, // by name
      attributes: { 会员等级: "金卡" },
    });
    const li = await contactByName("李四, Jr.");
    expect(li).toMatchObject({
      phone: "+8613800000002",
      gender: "female",
      source: "小红书",
      ownerStaffId: tenant.staff.consultant.id, // by WeCom user id
      clinicId,
      attributes: { 会员等级: "银卡", 备注: "第一行\n第二行, 有逗号" },
    });
    const zhou = await contactByName("周九");
    expect(zhou).toMatchObject({ ownerStaffId: tenant.staff.consultant2.id, source: "import", gender: null, attributes: { 备注: '说 "你好"' } });
    const zheng = await contactByName("郑十一");
    expect(zheng).toMatchObject({ ownerStaffId: tenant.staff.admin.id, phone: "+8613800000012" });
    expect(await countContacts(tenant.id)).toBe(4);
  });

  it("updates instead of duplicating when the same file comes again, or skips with onDuplicate=skip", async () => {
    const again = await importCsv(tenant.tokens.admin, fixture("contacts-zh.csv"));
    expect(again.status).toBe(200);
    expect(again.body).toMatchObject({ total: 11, created: 0, updated: 4, skipped: 0, failed: 7 });
    expect(await countContacts(tenant.id)).toBe(4);

    const skip = await importCsv(tenant.tokens.admin, fixture("contacts-zh.csv"), "?onDuplicate=skip");
    expect(skip.status).toBe(200);
    expect(skip.body).toMatchObject({ total: 11, created: 0, updated: 0, skipped: 4, failed: 7 });
    expect(await countContacts(tenant.id)).toBe(4);
  });

  it("updates only the cells given, merges attributes, and matches by phone in another format", async () => {
    const csv = "phone,name,tier\n+86 138 0000 0001,张三丰,VIP\n";
    const res = await importCsv(tenant.tokens.admin, csv);
    expect(res.body).toMatchObject({ total: 1, created: 0, updated: 1, failed: 0 });
    const c = await contactByName("张三丰");
    // Columns the file does not have keep their values; attributes merge.
    expect(c).toMatchObject({ gender: "male", source: "抖音", ownerStaffId: tenant.staff.consultant.id, clinicId, attributes: { 会员等级: "金卡", tier: "VIP" } });
    const skipped = await importCsv(tenant.tokens.admin, "phone,name\n13800000001,不该改\n", "?onDuplicate=skip");
    expect(skipped.body).toMatchObject({ skipped: 1, updated: 0 });
    await contactByName("张三丰");
  });

  it("shifts reported rows by rowOffset", async () => {
    const res = await importCsv(tenant.tokens.admin, fixture("contacts-zh.csv"), "?rowOffset=100&onDuplicate=skip");
    expect(res.status).toBe(200);
    expect((res.body.errors as { row: number }[]).map((e) => e.row)).toEqual(ZH_ERRORS.map((e) => e.row + 100));
    const bad = await importCsv(tenant.tokens.admin, "name\nx\n", "?rowOffset=-1");
    expect(bad.status).toBe(422);
    expect(fields(bad)).toEqual(["rowOffset"]);
    const badMode = await importCsv(tenant.tokens.admin, "name\nx\n", "?onDuplicate=merge");
    expect(badMode.status).toBe(422);
    expect(fields(badMode)).toEqual(["onDuplicate"]);
  });

  it("lets admins and marketing import; consultants and reviewers get 403", async () => {
    const csv = "name,phone\n市场导入,13800000099\n";
    const marketing = await importCsv(tenant.tokens.marketing, csv);
    expect(marketing.status).toBe(200);
    expect(marketing.body).toMatchObject({ created: 1, failed: 0 });
    for (const who of ["consultant", "reviewer"] as const) {
      const res = await importCsv(tenant.tokens[who], "name,phone\n不该有,13800000098\n");
      expect(res.status, who).toBe(403);
      expect(res.body.code).toBe("FORBIDDEN");
    }
    expect((await client(t.app).post("/v1/contacts/import", "name\nx\n", { "content-type": "text/csv" })).status).toBe(401);
    const all = await client(t.app, tenant.tokens.admin).get(`/v1/contacts?q=${encodeURIComponent("不该有")}`);
    expect(all.body.items).toEqual([]);
  });

  it("answers 422 naming content-type for a body that is not CSV", async () => {
    for (const type of ["application/json", "application/octet-stream"]) {
      const res = await importCsv(tenant.tokens.admin, "name\nx\n", "", type);
      expect(res.status, type).toBe(422);
      expect(res.headers.get("content-type")).toMatch(/^application\/problem\+json/);
      expect(fields(res)).toEqual(["content-type"]);
    }
  });

  it("answers 422 naming csv for malformed CSV or a header without a name/phone/id column", async () => {
    const unterminated = await importCsv(tenant.tokens.admin, 'name,phone\n"张三,13800000055\n李四,13800000056\n');
    expect(unterminated.status).toBe(422);
    expect(fields(unterminated)).toEqual(["csv"]);
    const noKey = await importCsv(tenant.tokens.admin, "城市,年龄\n上海,30\n");
    expect(noKey.status).toBe(422);
    expect(fields(noKey)).toEqual(["csv"]);
    expect(await countContacts(tenant.id)).toBe(5);
  });

  it("answers an empty report for a header-only file", async () => {
    const res = await importCsv(tenant.tokens.admin, "姓名,手机号\n");
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ total: 0, created: 0, updated: 0, skipped: 0, failed: 0, leads: 0, errors: [] });
  });
});

describe("chunkCsv and decodeCsv", () => {
  /** Parse a chunk the way the server does (src/services/contacts/import.ts). */
  const serverParse = (body: string) =>
    parse(body, { columns: true, info: true, bom: true, skip_empty_lines: true, trim: true, relax_column_count: true }) as { record: Record<string, string>; info: { lines: number } }[];

  it.each([
    ["LF", "\n"],
    ["CRLF", "\r\n"],
  ])("keeps quoted newlines inside their record and gives each chunk the offset of its first line (%s)", (_name, eol) => {
    const text = ["\ufeffname,note", 'a,"one\ntwo"', "b,x", "", 'c,"3\n4\n5"', 'd,"y, z"', "e,z"].join(eol) + eol;
    // Lines: 1 header, 2-3 a, 4 b, 5 blank, 6-8 c, 9 d, 10 e
    const { header, chunks } = chunkCsv(text, 2);
    expect(header.trimEnd()).toBe("name,note");
    expect(chunks.map((c) => c.rows)).toEqual([2, 2, 1]);
    const expectedLines = [[3, 4], [8, 9], [10]];
    const names = [["a", "b"], ["c", "d"], ["e"]];
    chunks.forEach((chunk, i) => {
      expect(chunk.body.startsWith("name,note")).toBe(true);
      const recs = serverParse(chunk.body);
      // What the server reports (its line + rowOffset) is the line in the original file.
      expect(recs.map((r) => r.info.lines + chunk.rowOffset)).toEqual(expectedLines[i]);
      expect(recs.map((r) => r.record.name)).toEqual(names[i]);
    });
    const all = chunks.flatMap((c) => serverParse(c.body).map((r) => r.record.note));
    expect(all).toEqual(["one\ntwo", "x", "3\n4\n5", "y, z", "z"]);
    // Same lines as the server reports for the whole file in one request.
    expect(serverParse(text).map((r) => r.info.lines)).toEqual(expectedLines.flat());
  });

  it("makes one chunk per batch of rows and none for a header-only or empty file", () => {
    const text = ["name", ...Array.from({ length: 10 }, (_, i) => `n${i}`)].join("\n");
    expect(chunkCsv(text, 3).chunks.map((c) => [c.rows, c.rowOffset])).toEqual([
      [3, 0],
      [3, 3],
      [3, 6],
      [1, 9],
    ]);
    expect(chunkCsv(text, 100).chunks).toHaveLength(1);
    expect(chunkCsv("name\n", 10).chunks).toEqual([]);
    expect(chunkCsv("", 10)).toEqual({ header: "", chunks: [] });
    expect(() => chunkCsv('name\n"open', 10)).toThrow();
  });

  it("decodes UTF-8 as is and falls back to GBK (Excel's Chinese CSV)", () => {
    const gbk = fixture("contacts-gbk.csv");
    // 姓名 in GBK is D0 D5 C3 FB: the fixture really is GBK, not UTF-8.
    expect([...gbk.subarray(0, 4)]).toEqual([0xd0, 0xd5, 0xc3, 0xfb]);
    expect(decodeCsv(gbk)).toBe("姓名,手机号,性别,来源\r\n张三,13600000001,男,门诊\r\n李四,13600000002,女,门诊\r\n王五,13600000003,女,转介绍\r\n");
    expect(decodeCsv(Buffer.from([0xc4, 0xd0, 0x2c, 0xc5, 0xae]))).toBe("男,女");
    // UTF-8 (the BOM is dropped by the decoder; the server would ignore it anyway).
    expect(decodeCsv(Buffer.from("\ufeff姓名,手机号\n", "utf8"))).toBe("姓名,手机号\n");
    expect(decodeCsv(Buffer.from("姓名,手机号\n", "utf8"))).toBe("姓名,手机号\n");
  });
});

describe("siyu import-contacts (CLI against a real HTTP server)", () => {
  let server: ServerType;
  let base: string;
  let cli: TestTenant;
  let dir: string;
  /** rowOffset of each import request the server received. */
  const offsets: string[] = [];

  beforeAll(async () => {
    cli = await createTestTenant(t.rt.deps, { slug: "cli-demo" });
    const fetch = (req: Request) => {
      const u = new URL(req.url);
      if (u.pathname === "/v1/contacts/import") offsets.push(u.searchParams.get("rowOffset") ?? "");
      return t.app.fetch(req);
    };
    server = await new Promise<ServerType>((resolve) => {
      const s = serve({ fetch, port: 0, hostname: "127.0.0.1" }, () => resolve(s));
    });
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    dir = mkdtempSync(path.join(tmpdir(), "siyu-import-"));
  });
  afterAll(async () => {
    await new Promise<void>((resolve) => {
      server?.close(() => resolve());
      (server as unknown as { closeAllConnections?: () => void })?.closeAllConnections?.();
    });
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const runCli = (args: string[]) => runSiyu(["import-contacts", ...args], t.env);

  const copy = (name: string) => {
    const to = path.join(dir, name);
    copyFileSync(path.join(FIXTURES, name), to);
    return to;
  };

  it("imports in chunks, exits 1, and writes FILE.errors.csv with file line numbers across chunks", async () => {
    const file = copy("contacts-cli.csv");
    // 10 data rows, 3 per request: 4 requests; the bad rows sit in the 2nd and 4th.
    offsets.length = 0;
    const r = await runCli([file, "--url", base, "--token", cli.tokens.admin, "--batch", "3"]);
    expect(r.code, r.stderr).toBe(1);
    // Bob's record spans lines 3-4, so the 2nd chunk starts at file line 6 (offset 4).
    expect(offsets).toEqual(["0", "4", "7", "10"]);
    expect(r.stdout).toMatch(/^10 rows in [\d.]+ s: 8 created, 0 updated, 0 skipped, 2 failed$/m);
    expect(r.stdout).toContain("line 7: phone");
    expect(r.stdout).toContain("line 12: gender");
    expect(r.stdout).toContain(`${file}.errors.csv`);
    const report = parse(readFileSync(`${file}.errors.csv`, "utf8"), { columns: true }) as { row: string; field: string; message: string }[];
    expect(report.map((e) => [e.row, e.field])).toEqual([
      ["7", "phone"],
      ["12", "gender"],
    ]);
    expect(report[0]!.message).toMatch(/valid phone/);

    const rows = await t.rt.deps.db.select().from(contacts).where(eq(contacts.tenantId, cli.id));
    expect(rows.map((c) => c.name).sort()).toEqual(["Alice Wang", 'Bob "B" Li', "Carol", "Dan", "Frank", "Grace", "Heidi", "Ivan"]);
    const bob = rows.find((c) => c.name === 'Bob "B" Li')!;
    expect(bob.attributes).toEqual({ tier: "silver\nsecond line" });
    expect(rows.find((c) => c.name === "Alice Wang")!.ownerStaffId).toBe(cli.staff.consultant.id);
    expect(rows.find((c) => c.name === "Dan")!.ownerStaffId).toBe(cli.staff.consultant.id);
    expect(rows.every((c) => c.source === "import")).toBe(true);

    // Run again with --on-duplicate skip and a custom error file: nothing new.
    const errOut = path.join(dir, "errs.csv");
    offsets.length = 0;
    const again = await runCli([file, "--url", base, "--token", cli.tokens.admin, "--batch", "4", "--on-duplicate", "skip", "--errors", errOut]);
    expect(again.code).toBe(1);
    expect(offsets).toEqual(["0", "5", "9"]);
    expect(again.stdout).toMatch(/^10 rows in [\d.]+ s: 0 created, 0 updated, 8 skipped, 2 failed$/m);
    expect(readFileSync(errOut, "utf8").split("\n").slice(1, 3).map((l) => l.split(",")[0])).toEqual(["7", "12"]);
    expect(await countContacts(cli.id)).toBe(8);
  });

  it("exits 0 on a clean GBK file and writes no error report", async () => {
    const file = copy("contacts-gbk.csv");
    const r = await runCli([file, "--url", base, "--token", cli.tokens.marketing, "--batch", "2"]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^3 rows in [\d.]+ s: 3 created, 0 updated, 0 skipped, 0 failed$/m);
    expect(existsSync(`${file}.errors.csv`)).toBe(false);
    const [zhang] = await t.rt.deps.db
      .select()
      .from(contacts)
      .where(and(eq(contacts.tenantId, cli.id), eq(contacts.name, "张三")));
    expect(zhang).toMatchObject({ gender: "male", source: "门诊", phoneMask: "136****0001" });
  });

  it("says clearly when the server cannot be reached, and exits 1", async () => {
    const port = await new Promise<number>((resolve) => {
      const s = createServer().listen(0, "127.0.0.1", () => {
        const p = (s.address() as AddressInfo).port;
        s.close(() => resolve(p));
      });
    });
    const file = path.join(dir, "one.csv");
    writeFileSync(file, "name\n无人接\n");
    const url = `http://127.0.0.1:${port}`;
    const r = await runCli([file, "--url", url, "--token", cli.tokens.admin]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`is Siyu running at ${url}?`);
    expect(r.stderr).toContain("import stopped at file line 2");
    expect(r.stdout).toBe("");
  });

  it("stops with the server's answer on a refused token", async () => {
    const file = path.join(dir, "two.csv");
    writeFileSync(file, "name\n甲\n乙\n");
    const r = await runCli([file, "--url", base, "--token", cli.tokens.consultant]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/import stopped at file line 2: 403/);
  });
});
