/**
 * Compliance figures for `npm run bench`: throughput of the banned-word check on realistic clinic
 * copy (the labelled set, checked post by post) with the full list and all normalisation on, side
 * by side with mint-filter on the same texts and terms; the p99 of a 2,000-character post; and
 * precision and recall on the labelled set (tests/fixtures/compliance/labelled.jsonl).
 */
import { readFileSync } from "node:fs";
import { Mint } from "mint-filter";
import { loadComplianceLists } from "../src/loaders/compliance-rules";
import type { Row } from "./tagging";

const log = (s: string) => process.stderr.write(`[bench] ${s}\n`);

interface Labelled {
  id: string;
  text: string;
  expect: "pass" | "warn" | "block";
  evasion: string | null;
}

function quality(rows: Labelled[], flags: (text: string) => "pass" | "warn" | "block"): { precision: number; recall: number; blockPrecision: number; blockRecall: number; evasionRecall: number } {
  let tp = 0, fp = 0, fn = 0, btp = 0, bfp = 0, bfn = 0, ev = 0, evCaught = 0;
  for (const r of rows) {
    const got = flags(r.text);
    const should = r.expect !== "pass";
    if (got !== "pass" && should) tp++;
    else if (got !== "pass") fp++;
    else if (should) fn++;
    if (got === "block" && r.expect === "block") btp++;
    else if (got === "block") bfp++;
    else if (r.expect === "block") bfn++;
    if (r.evasion && should) {
      ev++;
      if (got !== "pass") evCaught++;
    }
  }
  return { precision: tp / (tp + fp), recall: tp / (tp + fn), blockPrecision: btp / (btp + bfp), blockRecall: btp / (btp + bfn), evasionRecall: evCaught / ev };
}

const pct = (x: number) => `${(x * 100).toFixed(1)}%`;

export async function benchCompliance(): Promise<Row[]> {
  const lists = await loadComplianceLists();
  const rows = readFileSync(new URL("../tests/fixtures/compliance/labelled.jsonl", import.meta.url), "utf8")
    .split("\n")
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Labelled);
  const texts = rows.map((r) => r.text);
  const mint = new Mint(lists.terms.map((t) => t.term));

  // Throughput: the labelled posts, one check each, repeated to about 8 MB of UTF-8.
  const bytesPerRound = texts.reduce((n, t) => n + Buffer.byteLength(t), 0);
  const rounds = Math.ceil(8_000_000 / bytesPerRound);
  const run = (f: (t: string) => unknown) => {
    for (const t of texts) f(t); // warm up
    const t0 = performance.now();
    for (let i = 0; i < rounds; i++) for (const t of texts) f(t);
    return (bytesPerRound * rounds) / 1e6 / ((performance.now() - t0) / 1000);
  };
  log(`compliance: ${lists.terms.length} terms, ${lists.checker.patterns} patterns; ${((bytesPerRound * rounds) / 1e6).toFixed(1)} MB of posts`);
  const ours = run((t) => lists.checker.check(t));
  const theirs = run((t) => mint.filter(t));

  // A 2,000-character post: the labelled texts joined and cut into posts of exactly 2,000 UTF-16 units.
  const joined = texts.join("\n");
  const posts: string[] = [];
  for (let i = 0; posts.length < 2000; i = (i + 2000) % Math.max(1, joined.length - 2000)) posts.push(joined.slice(i, i + 2000).padEnd(2000, "。"));
  for (const p of posts) lists.checker.check(p);
  const times: number[] = [];
  for (let round = 0; round < 3; round++)
    for (const p of posts) {
      const t0 = performance.now();
      lists.checker.check(p);
      times.push(performance.now() - t0);
    }
  times.sort((a, b) => a - b);
  const p = (q: number) => times[Math.min(times.length - 1, Math.floor(q * times.length))]!;

  const q = quality(rows, (t) => lists.checker.check(t).verdict);
  const severity = new Map(lists.terms.map((t) => [t.term, t.severity]));
  const mq = quality(rows, (t) => {
    const words = mint.filter(t).words;
    return words.some((w) => severity.get(w) === "block") ? "block" : words.length ? "warn" : "pass";
  });
  const evasions = rows.filter((r) => r.evasion && r.expect !== "pass").length;
  return [
    {
      name: "Compliance check throughput (one core)",
      value: `${ours.toFixed(0)} MB/s (mint-filter ${theirs.toFixed(0)} MB/s)`,
      detail: `the ${rows.length} labelled clinic posts checked one by one, ${rounds} rounds, UTF-8 bytes; Siyu with ${lists.terms.length} terms (${lists.checker.patterns} patterns with pinyin variants and the allow-list) and every normalisation on; mint-filter 4.0.3 \`filter\` on the same texts and terms, no normalisation. Target: at least 50 MB/s`,
    },
    {
      name: "Compliance check, 2,000-character post",
      value: `p50 ${p(0.5).toFixed(3)} ms, p99 ${p(0.99).toFixed(3)} ms`,
      detail: `${times.length.toLocaleString("en")} checks of 2,000-character posts cut from the labelled texts; max ${p(1).toFixed(2)} ms. Target: p99 under 1 ms`,
    },
    {
      name: "Compliance quality, labelled set",
      value: `precision ${pct(q.precision)}, recall ${pct(q.recall)}`,
      detail: `${rows.length} realistic clinic posts and messages (${rows.filter((r) => r.expect === "pass").length} clean, ${rows.filter((r) => !r.evasion && r.expect !== "pass").length} plain violations, ${evasions} evasions of ten kinds), flagged = verdict warn or block; blocking alone: precision ${pct(q.blockPrecision)}, recall ${pct(q.blockRecall)}; evasions caught ${pct(q.evasionRecall)}. mint-filter on the same terms: precision ${pct(mq.precision)}, recall ${pct(mq.recall)}, evasions caught ${pct(mq.evasionRecall)}`,
    },
  ];
}
