import { and, asc, eq, isNotNull, sql } from "drizzle-orm";
import { contacts, leads, leadTasks, staff, tenants } from "../../db/schema/index";
import { type EventType } from "../../domain/events/types";
import { seededRandom } from "../../domain/random";
import { systemCtx, type ServiceDeps } from "../context";
import { createClinic } from "../clinics/clinics";
import { ingestEvents } from "../events/ingest";
import { createStaff } from "../staff/create";
import { createTenant } from "../tenants/create";
import { importContacts } from "../contacts/import";
import { signalLead } from "../leads/leads";
import { completeTask, listTasks, skipTask } from "../leads/sop";
import type { Ctx } from "../context";
import { readdir, readFile } from "node:fs/promises";
import path from "node:path";
import { parse as parseYaml } from "yaml";
import { DEFAULT_CALENDARS_DIR } from "../../loaders/calendars";
import { createCalendar } from "../calendars/calendars";
import { createSegment } from "../segments/segments";

export const DEMO_STAFF = [
  { name: "王静", email: "admin@demo.siyu.local", role: "admin", wecomUserId: "wangjing" },
  { name: "李娜", email: "marketing@demo.siyu.local", role: "marketing", wecomUserId: "lina" },
  { name: "张敏", email: "zhangmin@demo.siyu.local", role: "consultant", wecomUserId: "zhangmin", skills: ["祛痘", "美白"] },
  { name: "刘洋", email: "liuyang@demo.siyu.local", role: "consultant", wecomUserId: "liuyang", skills: ["抗衰", "脱毛"] },
  { name: "陈晨", email: "chenchen@demo.siyu.local", role: "consultant", wecomUserId: "chenchen", skills: ["正畸", "种植牙"] },
  { name: "赵磊", email: "reviewer@demo.siyu.local", role: "reviewer", wecomUserId: "zhaolei" },
] as const;

const SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何林罗高".split("");
const GIVEN = "静敏丽娜婷雪琳欣怡佳颖晓宇浩然子涵梓萱一诺欣妍雨桐".split("");
const SOURCES = ["wecom", "wecom", "livestream", "import", "referral", "miniprogram"];
const TOPICS = ["祛痘", "抗衰", "美白", "脱毛", "正畸", "种植牙", "减重", "产后修复"];
const MESSAGES = ["请问祛痘要做几次？", "热玛吉多少钱", "牙齿矫正可以分期吗", "周末可以预约吗", "想了解一下光子嫩肤", "产后修复什么时候做合适"];


export interface SeedResult {
  created: boolean;
  tenantId: string;
  adminStaffId: string;
  contacts: number;
  events: number;
}

/** Seed the demo clinic when the tenant does not exist yet; otherwise return what is there. */
export async function seedDemo({ deps, slug, password, contactCount = 200 }: { deps: ServiceDeps; slug: string; password: string; contactCount?: number }): Promise<SeedResult> {
  const [existing] = await deps.db.select().from(tenants).where(eq(tenants.slug, slug));
  if (existing) {
    const [admin] = await deps.db.select().from(staff).where(and(eq(staff.tenantId, existing.id), eq(staff.role, "admin"))).orderBy(asc(staff.createdAt)).limit(1);
    return { created: false, tenantId: existing.id, adminStaffId: admin?.id ?? "", contacts: 0, events: 0 };
  }
  const tenant = await createTenant({ deps, input: { slug, name: "美丽颜医疗美容（演示）", timezone: deps.config.TIMEZONE } });
  const ctx = systemCtx(deps, tenant.id, "seed");
  const shanghai = await createClinic({ ctx, input: { name: "上海静安店", city: "上海", address: "静安区南京西路 1266 号" } });
  await createClinic({ ctx, input: { name: "杭州西湖店", city: "杭州", address: "西湖区文三路 88 号" } });
  const staffIds: Record<string, string> = {};
  for (const s of DEMO_STAFF) {
    const created = await createStaff({ ctx, input: { ...s, password, clinicId: shanghai.id, skills: "skills" in s ? [...s.skills] : undefined } });
    staffIds[s.wecomUserId] = created.id;
  }
  const rand = seededRandom(20261123);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
  const consultants = DEMO_STAFF.filter((s) => s.role === "consultant").map((s) => s.wecomUserId);
  const lines = ["姓名,手机号,external_user_id,来源,归属顾问,性别"];
  for (let i = 0; i < contactCount; i++) {
    const name = pick(SURNAMES) + pick(GIVEN) + (rand() < 0.5 ? pick(GIVEN) : "");
    const phone = `1${pick(["38", "39", "58", "86", "77", "35"])}${String(Math.floor(rand() * 1e8)).padStart(8, "0")}`;
    const owner = rand() < 0.8 ? pick(consultants) : "";
    lines.push([name, phone, `wm_demo_${String(i).padStart(4, "0")}`, pick(SOURCES), owner, rand() < 0.85 ? "女" : "男"].join(","));
  }
  await importContacts({ ctx, csv: lines.join("\n"), options: { source: "import" } });
  const people = await deps.db.select({ id: contacts.id, ext: contacts.externalUserId }).from(contacts).where(eq(contacts.tenantId, tenant.id));
  const now = deps.now().getTime();
  const batch: unknown[] = [];
  let total = 0;
  for (const p of people) {
    const n = 1 + Math.floor(rand() * 8);
    let t = now - Math.floor(rand() * 120) * 86_400_000;
    batch.push({ type: "contact_added", contactId: p.id, occurredAt: new Date(t).toISOString(), idempotencyKey: `seed-${p.ext}-0`, data: { state: `qr_${pick(["douyin", "xhs", "store", "live"])}` } });
    for (let j = 1; j < n; j++) {
      t += Math.floor(rand() * 10 * 86_400_000);
      if (t > now) break;
      const type = pick<EventType>(["article_read", "article_read", "message_received", "livestream_attended", "appointment_booked", "visit", "purchase", "consultation_outcome"]);
      batch.push({ type, contactId: p.id, occurredAt: new Date(t).toISOString(), idempotencyKey: `seed-${p.ext}-${j}`, data: demoData(type, t, pick, rand) });
    }
  }
  for (let i = 0; i < batch.length; i += 1000) {
    const r = await ingestEvents({ ctx, input: { events: batch.slice(i, i + 1000) }, source: "seed" });
    total += r.accepted;
  }
  await seedFollowUps(ctx);
  await seedCalendars(ctx);
  await seedSegments(ctx);
  return { created: true, tenantId: tenant.id, adminStaffId: staffIds.wangjing!, contacts: people.length, events: total };
}

/**
 * A few leads one to four days old, so the consultants' SOP task lists show done, skipped, overdue
 * and today's steps from the start (leads the rules open from the seeded events are new).
 */
async function seedFollowUps(ctx: Ctx): Promise<void> {
  const db = ctx.deps.db;
  const owned = await db.select({ id: contacts.id }).from(contacts).where(and(eq(contacts.tenantId, ctx.tenantId), isNotNull(contacts.ownerStaffId))).orderBy(asc(contacts.createdAt)).limit(6);
  for (const [i, c] of owned.entries()) {
    const { lead } = await signalLead({ ctx, input: { contactId: c.id, source: ["referral", "wecom_qr", "livestream"][i % 3], need: TOPICS[i % TOPICS.length], score: 20 } });
    const days = 1 + (i % 4);
    await db.update(leads).set({ createdAt: sql`${leads.createdAt} - ${days}::int * interval '1 day'` }).where(eq(leads.id, lead.id));
    await db.update(leadTasks).set({ dueAt: sql`${leadTasks.dueAt} - ${days}::int * interval '1 day'` }).where(eq(leadTasks.leadId, lead.id));
    const [greeting, next] = (await listTasks({ ctx, input: { leadId: lead.id } })).items;
    if (greeting) {
      await completeTask({ ctx, id: greeting.id });
      await db.update(leadTasks).set({ completedAt: sql`${leadTasks.dueAt} - interval '40 minutes'` }).where(eq(leadTasks.id, greeting.id));
    }
    if (next && i % 3 === 2) await skipTask({ ctx, id: next.id, input: { reason: "客户已主动预约面诊" } });
  }
}

function demoData(type: EventType, t: number, pick: <T>(xs: readonly T[]) => T, rand: () => number): Record<string, unknown> {
  switch (type) {
    case "article_read":
      return { articleId: `art-${Math.floor(rand() * 40)}`, topic: pick(TOPICS), dwellSeconds: Math.floor(rand() * 300) };
    case "message_received":
      return { text: pick(MESSAGES) };
    case "livestream_attended":
      return { liveId: `live-${Math.floor(rand() * 6)}`, minutes: Math.floor(rand() * 60) };
    case "appointment_booked":
      return { at: new Date(t + 3 * 86_400_000).toISOString(), item: pick(TOPICS) };
    case "visit":
      return { item: pick(TOPICS) };
    case "purchase":
      return { amount: Math.round(500 + rand() * 20000), items: [pick(TOPICS)] };
    default:
      return rand() < 0.5
        ? { outcome: "converted", amount: Math.round(1000 + rand() * 30000), items: [pick(TOPICS)] }
        : { outcome: "lost", lostReason: pick(["价格敏感", "担心效果", "恐惧疼痛", "时间不便"]) };
  }
}

/**
 * The shipped calendars (content-calendars/) as drafts of the demo clinic, so marketing finds
 * something to preview, edit and publish (publishing sends their copy to review). A file that no
 * longer validates is skipped with a warning: the demo still starts.
 */
async function seedCalendars(ctx: Ctx): Promise<void> {
  const files = (await readdir(DEFAULT_CALENDARS_DIR)).filter((n) => n.endsWith(".yaml")).sort();
  for (const name of files) {
    try {
      const raw = parseYaml(await readFile(path.join(DEFAULT_CALENDARS_DIR, name), "utf8")) as Record<string, unknown>;
      await createCalendar({ ctx, input: { ...raw, key: name.replace(/\.yaml$/, ""), source: "file" } });
    } catch (err) {
      ctx.logger.warn({ file: name, err: (err as Error).message }, "demo calendar not seeded");
    }
  }
}

/**
 * Saved segments a clinic's marketing lead would start with (over the default tag groups), so the
 * segment list, metrics by segment and the dashboard's segment sizes have something to show. Their
 * members fill in as the events worker applies the seeded events; the first size snapshot comes
 * with the next 04:00 job (one taken now would read 0).
 */
export const DEMO_SEGMENTS = [
  { name: "祛痘意向·未到诊", expression: "need:祛痘 AND visit:潜在" },
  { name: "高消费复诊客户", expression: "spending:高消费 AND visit:复诊" },
  { name: "沉睡客户", expression: "visit:沉睡" },
  { name: "因价格未成交", expression: "lost_reason:价格敏感" },
] as const;

async function seedSegments(ctx: Ctx): Promise<void> {
  for (const g of DEMO_SEGMENTS) {
    try {
      await createSegment({ ctx, input: g });
    } catch (err) {
      ctx.logger.warn({ segment: g.name, err: (err as Error).message }, "demo segment not seeded");
    }
  }
}
