import { appendFileSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runSiyu } from "../helpers/cli";
import { client, createTestTenant, type TestTenant } from "../helpers/factories";
import { createTestRuntime, type TestRuntime } from "../helpers/runtime";

const HEADER = "term\tcategory\tseverity\tlegal_basis\tsuggested_replacement\n";
const POLICY = "block_severities: [block]\nkinds:\n  community_post: { levels: 1 }\n  mass_message: { levels: 2 }\n  welcome_message: { levels: 1 }\n  article: { levels: 2 }\n  moments: { levels: 1 }\n";

/** A small folder laid out like compliance-rules/. */
function rulesDir(rows: Record<string, string[]>, allow: string[] = ["第一次\tordinal"]): string {
  const dir = mkdtempSync(path.join(tmpdir(), "siyu-rules-"));
  for (const [category, lines] of Object.entries(rows)) writeFileSync(path.join(dir, `${category}.tsv`), HEADER + lines.map((l) => `${l}\n`).join(""));
  writeFileSync(path.join(dir, "allow.tsv"), "term\tnote\n" + allow.map((a) => `${a}\n`).join(""));
  writeFileSync(path.join(dir, "policy.yaml"), POLICY);
  return dir;
}

const dirs: string[] = [];
let t: TestRuntime;
let tenant: TestTenant;
let hotDir: string;

beforeAll(async () => {
  hotDir = rulesDir({ absolute: ["第一\tabsolute\tblock\t广告法第九条第三项\t经验丰富"], guarantee: ["保证有效\tguarantee\tblock\t广告法第十六条第一款第一项\t效果因人而异"] });
  dirs.push(hotDir);
  t = await createTestRuntime({ COMPLIANCE_RULES_DIR: hotDir });
  tenant = await createTestTenant(t.rt.deps);
});
afterAll(async () => {
  await t?.close();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const check = (text: unknown, role: keyof TestTenant["tokens"] = "marketing") => client(t.app, tenant.tokens[role]).post("/v1/compliance/check", { text });

describe("POST /v1/compliance/check", () => {
  it("reports each banned term with law, category and a rewrite, at offsets into the text as sent", async () => {
    const text = "本院是全国第\u200b一的机构，保 证 有 效。第一次来院请预约";
    const res = await check(text);
    expect(res.status).toBe(200);
    expect(res.body.verdict).toBe("block");
    expect(res.body.listVersion).toMatch(/^[0-9a-f]{12}$/);
    const found = res.body.findings.map((f: { term: string; start: number; end: number; matched: string }) => ({ term: f.term, matched: f.matched, same: text.slice(f.start, f.end) === f.matched }));
    expect(found).toEqual([
      { term: "第一", matched: "第\u200b一", same: true },
      { term: "保证有效", matched: "保 证 有 效", same: true },
    ]);
    expect(res.body.findings[0]).toMatchObject({ category: "absolute", severity: "block", basis: "广告法第九条第三项", suggestion: "经验丰富" });
  });

  it("passes innocent copy, and every role may check", async () => {
    for (const role of ["admin", "marketing", "consultant", "reviewer"] as const) {
      const res = await check("第一次来院请提前预约", role);
      expect([role, res.status, res.body.verdict, res.body.findings]).toEqual([role, 200, "pass", []]);
    }
  });

  it("names the field when the body is wrong", async () => {
    const res = await check(42);
    expect(res.status).toBe(422);
    expect(res.body.errors[0].field).toBe("text");
  });

  it("reloads edited lists without a restart and records the version used; a broken edit keeps the previous lists", async () => {
    const before = await check("包你满意");
    expect(before.body.verdict).toBe("pass");
    appendFileSync(path.join(hotDir, "guarantee.tsv"), "包你满意\tguarantee\twarn\t广告法第十六条第一款第一项\t欢迎到院咨询\n");
    await new Promise((r) => setTimeout(r, 2100));
    const after = await check("包你满意");
    expect(after.body.verdict).toBe("warn");
    expect(after.body.listVersion).not.toBe(before.body.listVersion);
    appendFileSync(path.join(hotDir, "guarantee.tsv"), "坏行\tguarantee\tmaybe\n");
    await new Promise((r) => setTimeout(r, 2100));
    const kept = await check("包你满意");
    expect(kept.body).toMatchObject({ verdict: "warn", listVersion: after.body.listVersion });
  });
});

const runCli = (args: string[]) => runSiyu(args);

describe("siyu rules lint / siyu check-copy", () => {
  it("lints the shipped lists clean, and names file and line of every problem in a broken folder", async () => {
    const ok = await runCli(["rules", "lint"]);
    expect(ok.code, ok.stdout + ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(/^ok: \d+ terms/);
    const bad = rulesDir({ absolute: ["最佳\tabsolute\tblock\t广告法第九条第三项\t优质", "最 佳\tabsolute\tblock\t广告法第九条第三项\t优质", "顶级\tabsolute\tsometimes\t广告法第九条第三项\t高品质", "国家级\tprice\tblock\t广告法第九条第三项\t国家认证的"] }, ["第一次\tordinal", "最佳\tnot innocent"]);
    dirs.push(bad);
    const res = await runCli(["rules", "lint", bad]);
    expect(res.code).toBe(1);
    const file = path.join(bad, "absolute.tsv");
    expect(res.stdout).toContain(`${file}:3: "最 佳" is the same as "最佳" (absolute.tsv:2) once normalised`);
    expect(res.stdout).toContain(`${file}:4: severity "sometimes" is not block or warn`);
    expect(res.stdout).toContain(`${file}:5: category "price" in the absolute list`);
    expect(res.stdout).toContain(`${path.join(bad, "allow.tsv")}:3: "最佳" is banned (absolute.tsv:2)`);
  });

  it("checks one file or a JSONL batch, against the shipped lists or --rules DIR; exit 1 on any block", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "siyu-copy-"));
    dirs.push(dir);
    const rules = rulesDir({ absolute: ["第一\tabsolute\tblock\t广告法第九条第三项\t经验丰富"], efficacy: ["见效快\tefficacy\twarn\t医疗广告管理办法第七条\t效果因人而异"] });
    dirs.push(rules);
    writeFileSync(path.join(dir, "clean.txt"), "第一次来院请提前预约。");
    writeFileSync(path.join(dir, "bad.txt"), "全城第一！");
    const clean = await runCli(["check-copy", path.join(dir, "clean.txt"), "--rules", rules]);
    expect(clean.code).toBe(0);
    expect(JSON.parse(clean.stdout)).toMatchObject({ verdict: "pass", findings: [] });
    const bad = await runCli(["check-copy", path.join(dir, "bad.txt"), "--rules", rules]);
    expect(bad.code).toBe(1);
    expect(JSON.parse(bad.stdout).findings[0]).toMatchObject({ term: "第一", matched: "第一", start: 2, end: 4, severity: "block" });
    expect(bad.stderr).toContain("bad.txt:1:3: block 第一");
    const jsonl = path.join(dir, "batch.jsonl");
    writeFileSync(jsonl, [JSON.stringify({ id: "a", text: "见 效 快" }), JSON.stringify({ id: "b", text: "欢迎咨询" }), JSON.stringify({ id: 3, text: "業內第一" })].join("\n") + "\n");
    const batch = await runCli(["check-copy", "--jsonl", jsonl, "--rules", rules]);
    expect(batch.code).toBe(1);
    const lines = batch.stdout.trim().split("\n").map((l) => JSON.parse(l));
    expect(lines.map((l) => [l.id, l.verdict])).toEqual([
      ["a", "warn"],
      ["b", "pass"],
      [3, "block"],
    ]);
    const broken = path.join(dir, "broken.jsonl");
    writeFileSync(broken, `${JSON.stringify({ id: "a", text: "欢迎" })}\n{not json\n`);
    const res = await runCli(["check-copy", "--jsonl", broken, "--rules", rules]);
    expect(res.code).toBe(2);
    expect(res.stderr).toContain(`${broken}:2: not valid JSON`);
    // The shipped lists: 根治 and 永不复发 block.
    writeFileSync(path.join(dir, "claim.txt"), "根治痘痘，永不复发");
    const shipped = await runCli(["check-copy", path.join(dir, "claim.txt")]);
    expect(shipped.code).toBe(1);
    expect(JSON.parse(shipped.stdout).findings.map((f: { term: string }) => f.term)).toEqual(["根治", "永不复发"]);
  });
});
