#!/usr/bin/env node
import { Command, InvalidArgumentError } from "commander";
import { ConfigError, loadConfig, type Config } from "../config/env";
import { WORKER_NAMES, type WorkerName } from "../jobs/workers";

/** The `siyu` command. Output here is for people (stdout); services log JSON through pino. */
function config(): Readonly<Config> {
  try {
    return loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\nSee README.md, "Configuration".\n`);
      process.exit(78);
    }
    throw err;
  }
}

const program = new Command();
program.name("siyu").description("私域 Siyu: private-domain patient engagement on WeCom").showHelpAfterError();

program
  .command("start")
  .description("everything in one process: migrations, demo clinic, API + console, all workers")
  .option("--no-seed", "do not seed the demo clinic")
  .action(async (o: { seed: boolean }) => {
    const { run } = await import("./start");
    const c = config();
    await run(c, { http: true, workers: WORKER_NAMES, migrate: true, seed: o.seed && c.SEED_DEMO });
  });

program
  .command("serve")
  .description("the API and console only (scale out: run many behind a load balancer)")
  .option("--migrate", "apply migrations first")
  .action(async (o: { migrate?: boolean }) => {
    const { run } = await import("./start");
    await run(config(), { http: true, workers: [], migrate: Boolean(o.migrate), seed: false });
  });

program
  .command("worker")
  .description(`run workers apart from the API: ${WORKER_NAMES.join(", ")} or all`)
  .argument("<name>", "worker name", (v: string) => {
    if (v !== "all" && !(WORKER_NAMES as readonly string[]).includes(v)) throw new InvalidArgumentError(`choose one of ${WORKER_NAMES.join(", ")}, all`);
    return v;
  })
  .action(async (name: string) => {
    const { run } = await import("./start");
    const workers: readonly WorkerName[] = name === "all" ? WORKER_NAMES : [name as WorkerName];
    await run(config(), { http: false, workers, migrate: false, seed: false });
  });

program
  .command("migrate")
  .description("apply database migrations (drizzle/) and exit")
  .action(async () => {
    const { openDatabase } = await import("../db/client");
    const c = config();
    const db = await openDatabase({ url: c.DATABASE_URL, dataDir: c.DATA_DIR });
    await db.migrate();
    await db.close();
    process.stdout.write(`migrations applied (${db.kind})\n`);
  });

program
  .command("import-contacts")
  .description("import contacts from a CSV file through the API, with a progress bar and a per-row error report")
  .argument("<file>", "CSV file with a header row (UTF-8; GBK exported from Excel is detected)")
  .option("--url <url>", "Siyu base URL (default: PUBLIC_URL or http://localhost:PORT)")
  .option("--token <token>", "API token (default: SIYU_TOKEN or ADMIN_TOKEN from the environment)")
  .option("--on-duplicate <mode>", "update or skip contacts that already exist (same phone or external id)", "update")
  .option("--batch <rows>", "rows per request", "5000")
  .option("--errors <file>", "where to write the per-row error report (default: FILE.errors.csv)")
  .action(async (file: string, o: { url?: string; token?: string; onDuplicate: string; batch: string; errors?: string }) => {
    const { importContactsCommand } = await import("./import-contacts");
    const code = await importContactsCommand(file, o);
    process.exit(code);
  });

program
  .command("import-conversions")
  .description("import appointments, visits, consultations, purchases and refunds from a CSV file through the API, with a progress bar and a per-row error report")
  .argument("<file>", "CSV file with a header row (UTF-8; GBK exported from Excel is detected)")
  .option("--url <url>", "Siyu base URL (default: PUBLIC_URL or http://localhost:PORT)")
  .option("--token <token>", "API token of an admin, manager or marketing account (default: SIYU_TOKEN or ADMIN_TOKEN)")
  .option("--batch <rows>", "rows per request", "5000")
  .option("--errors <file>", "where to write the per-row error report (default: FILE.errors.csv)")
  .action(async (file: string, o: { url?: string; token?: string; batch: string; errors?: string }) => {
    const { importConversionsCommand } = await import("./import-conversions");
    process.exit(await importConversionsCommand(file, o));
  });

program
  .command("tagging")
  .description("tag rules")
  .command("lint")
  .description("validate a tagging-rules folder (default: the shipped one); exit 1 on any problem")
  .argument("[dir]", "folder laid out like tagging-rules/")
  .action(async (dir?: string) => {
    const { loadRuleSet } = await import("../loaders/tagging-rules");
    const { formatRuleIssue } = await import("../domain/tagging/rules");
    const { ruleSet, issues } = await loadRuleSet(dir);
    for (const i of issues) process.stdout.write(formatRuleIssue(i) + "\n");
    process.stdout.write(issues.length ? `${issues.length} problem(s)\n` : `ok: ${ruleSet.rules.length} rules, ${Object.keys(ruleSet.needs).length} need types\n`);
    process.exit(issues.length ? 1 : 0);
  });

program
  .command("rules")
  .description("banned-word lists (compliance-rules/)")
  .command("lint")
  .description("validate a compliance-rules folder (default: the shipped one): headers, rows, categories, severities, duplicates, allow-list shadowing; exit 1 on any problem")
  .argument("[dir]", "folder laid out like compliance-rules/")
  .action(async (dir?: string) => {
    const { lintListsCommand } = await import("./check-copy");
    process.exit(await lintListsCommand(dir));
  });

program
  .command("check-copy")
  .description("check copy against the banned-word lists: one text file, or --jsonl FILE of {id, text} lines (prints {id, verdict, findings} lines); exit 1 when anything is blocked, 2 on bad input")
  .argument("[file]", "a text file to check")
  .option("--jsonl <file>", "check every {id, text} line of a JSONL file")
  .option("--rules <dir>", "check against another folder laid out like compliance-rules/")
  .action(async (file: string | undefined, o: { jsonl?: string; rules?: string }) => {
    const { checkCopyCommand } = await import("./check-copy");
    process.exit(await checkCopyCommand(file, o));
  });

const calendar = program.command("calendar").description("content calendars (content-calendars/)");
calendar
  .command("lint")
  .description("validate calendar files (default: content-calendars/): schema, template variables, banned words in every entry; prints file:line: entry: field; exit 1 on any error")
  .argument("[target]", "a calendar file or a folder of them")
  .option("--rules <dir>", "check against another folder laid out like compliance-rules/")
  .action(async (target: string | undefined, o: { rules?: string }) => {
    const { lintCalendarsCommand } = await import("./calendar");
    process.exit(await lintCalendarsCommand(target, o));
  });
calendar
  .command("publish")
  .description("create or update the calendar keyed by the file name through the API and publish it: entries become posts in review")
  .argument("<file>", "a calendar file (YAML)")
  .option("--url <url>", "Siyu base URL (default: PUBLIC_URL or http://localhost:PORT)")
  .option("--token <token>", "API token of a marketing or admin account (default: SIYU_TOKEN or ADMIN_TOKEN)")
  .action(async (file: string, o: { url?: string; token?: string }) => {
    const { publishCalendarCommand } = await import("./calendar");
    process.exit(await publishCalendarCommand(file, o));
  });

const wecom = program.command("wecom").description("WeCom: sandbox simulations");
wecom
  .command("simulate")
  .description("play what a patient does in WeCom against the sandbox: add-contact, delete-staff, join-group, leave-group, message")
  .argument("<what>", "add-contact | delete-staff | join-group | leave-group | message")
  .option("--staff <userid>", "the consultant's WeCom userid (demo: zhangmin, liuyang, chenchen)")
  .option("--external <id>", "the patient's external_userid")
  .option("--name <name>", "the patient's WeChat name (add-contact) or the group name (join-group)")
  .option("--state <state>", "channel code (渠道活码 state) the patient scanned")
  .option("--chat <chatId>", "group chat id")
  .option("--text <text>", "message text")
  .action(async (what: string, o: Record<string, string | undefined>) => {
    const { simulate } = await import("./wecom");
    process.stdout.write((await simulate(config(), what, o)) + "\n");
  });

wecom
  .command("sync")
  .description("import all external contacts and customer groups from WeCom and reconcile tags both ways (resumable)")
  .option("--url <url>", "Siyu base URL (default: PUBLIC_URL or http://localhost:PORT)")
  .option("--token <token>", "admin API token (default: SIYU_TOKEN or ADMIN_TOKEN)")
  .option("--restart", "start over instead of resuming an interrupted sync")
  .option("--no-wait", "start it and return")
  .action(async (o: { url?: string; token?: string; restart?: boolean; wait?: boolean }) => {
    const { syncCommand } = await import("./wecom");
    process.exit(await syncCommand(config(), o));
  });

program.parseAsync().catch((err: unknown) => {
  process.stderr.write(`siyu: ${(err as Error).message}\n`);
  process.exit(1);
});
