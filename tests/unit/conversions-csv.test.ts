import { describe, expect, it } from "vitest";
import { conversionColumn, conversionRowKey, parseAmount, parseConversionRow, parseLocalDateTime, splitItems } from "../../src/domain/conversions/csv";

const TZ = "Asia/Shanghai";
const row = (r: Record<string, string>) => parseConversionRow(r, TZ);

describe("conversion CSV columns", () => {
  it.each([
    ["类型", "type"],
    ["Type", "type"],
    ["手机号", "phone"],
    ["external_user_id", "externalUserId"],
    ["客户", "contact"],
    ["时间", "occurredAt"],
    ["预约时间", "at"],
    ["金额", "amount"],
    ["项目", "items"],
    ["未成交原因", "lostReason"],
    ["lost reason", "lostReason"],
    ["门店", "clinic"],
    ["顾问", "staff"],
    ["单号", "idempotencyKey"],
    ["idempotency key", "idempotencyKey"],
  ])("%s is %s", (header, col) => expect(conversionColumn(header)).toBe(col));

  it("ignores columns it does not know", () => expect(conversionColumn("会员等级")).toBeNull());
});

describe("cell values", () => {
  it("splits items on 、 ; | (full-width too)", () => {
    expect(splitItems("光子嫩肤、水光针;热玛吉|超声刀；皮秒｜ ")).toEqual(["光子嫩肤", "水光针", "热玛吉", "超声刀", "皮秒"]);
  });
  it.each([
    ["6800", 6800],
    ["6,800.50", 6800.5],
    ["¥6800", 6800],
    ["6800元", 6800],
    ["０", 0],
  ])("reads amount %s", (v, n) => expect(parseAmount(v)).toBe(n));
  it.each(["-5", "abc", "1.234", ""])("refuses amount %s", (v) => expect(parseAmount(v)).toBeNull());

  it("reads local times in the tenant's zone and ISO times as given", () => {
    expect(parseLocalDateTime("2026-03-01 14:30", TZ)?.toISOString()).toBe("2026-03-01T06:30:00.000Z");
    expect(parseLocalDateTime("2026/3/1 14:30:15", TZ)?.toISOString()).toBe("2026-03-01T06:30:15.000Z");
    expect(parseLocalDateTime("2026年3月1日", TZ)?.toISOString()).toBe("2026-02-28T16:00:00.000Z");
    expect(parseLocalDateTime("2026-03-01T14:30:00+08:00", TZ)?.toISOString()).toBe("2026-03-01T06:30:00.000Z");
    expect(parseLocalDateTime("2026-03-01 14:30", "America/New_York")?.toISOString()).toBe("2026-03-01T19:30:00.000Z");
    // ISO without an offset is local time too.
    expect(parseLocalDateTime("2026-03-01T14:30:00", TZ)?.toISOString()).toBe("2026-03-01T06:30:00.000Z");
    for (const bad of ["2026-02-30", "2026-03-01 25:00", "next tuesday", "2026-03-01 14"]) expect(parseLocalDateTime(bad, TZ), bad).toBeNull();
  });
});

describe("parseConversionRow", () => {
  it("maps Chinese types, outcomes and modes, and finds the contact by phone, id or external id", () => {
    const r = row({ type: "咨询", contact: "138 0013 8000", occurredAt: "2026-03-01 10:00", outcome: "未成交", lostReason: "价格敏感", mode: "线上" });
    expect(r).toEqual({ ok: true, row: expect.objectContaining({ type: "consultation", contact: { phone: "+8613800138000" }, outcome: "lost", lostReason: "价格敏感", mode: "online", items: [] }) });
    expect(row({ type: "消费", contact: "0b7e7c1e-7a55-4a7c-9a55-1c1e7a554a7c", occurredAt: "2026-03-01", amount: "100" })).toMatchObject({ ok: true, row: { contact: { contactId: "0b7e7c1e-7a55-4a7c-9a55-1c1e7a554a7c" } } });
    expect(row({ type: "到诊", contact: "wmAbc123", occurredAt: "2026-03-01" })).toMatchObject({ ok: true, row: { contact: { externalUserId: "wmAbc123" } } });
  });

  it("takes an appointment's single time as both booked and appointment time", () => {
    const r = row({ type: "预约", phone: "13800138000", at: "2026-03-05 15:00" });
    expect(r).toMatchObject({ ok: true, row: { type: "appointment" } });
    if (r.ok) expect([r.row.occurredAt.toISOString(), r.row.at?.toISOString()]).toEqual(["2026-03-05T07:00:00.000Z", "2026-03-05T07:00:00.000Z"]);
  });

  it.each([
    [{ contact: "13800138000", occurredAt: "2026-03-01" }, "type"],
    [{ type: "买东西", contact: "13800138000", occurredAt: "2026-03-01" }, "type"],
    [{ type: "visit", occurredAt: "2026-03-01" }, "contact"],
    [{ type: "visit", phone: "12345", occurredAt: "2026-03-01" }, "phone"],
    [{ type: "visit", phone: "13800138000", contact: "wmX", occurredAt: "2026-03-01" }, "contact"],
    [{ type: "visit", phone: "13800138000" }, "occurredAt"],
    [{ type: "visit", phone: "13800138000", occurredAt: "yesterday" }, "occurredAt"],
    [{ type: "appointment", phone: "13800138000" }, "at"],
    [{ type: "purchase", phone: "13800138000", occurredAt: "2026-03-01", amount: "lots" }, "amount"],
    [{ type: "consultation", phone: "13800138000", occurredAt: "2026-03-01", outcome: "maybe" }, "outcome"],
    [{ type: "consultation", phone: "13800138000", occurredAt: "2026-03-01", outcome: "成交", mode: "飞鸽" }, "mode"],
  ])("names the column at fault: %j -> %s", (r, field) => {
    const out = row(r as Record<string, string>);
    expect(out.ok).toBe(false);
    if (!out.ok) expect(out.field).toBe(field);
  });

  it("derives the same key from the same content, another from other content, and namespaces a 单号", () => {
    const a = row({ type: "消费", phone: "13800138000", occurredAt: "2026-03-01 10:00", amount: "100", items: "A、B" });
    const b = row({ type: "purchase", contact: "+86 138 0013 8000", occurredAt: "2026-03-01T10:00:00+08:00", amount: "100.00", items: "A|B" });
    const c = row({ type: "消费", phone: "13800138000", occurredAt: "2026-03-01 10:00", amount: "101", items: "A、B" });
    const d = row({ type: "消费", phone: "13800138000", occurredAt: "2026-03-01 10:00", amount: "100", idempotencyKey: "HIS-001" });
    if (!a.ok || !b.ok || !c.ok || !d.ok) throw new Error("rows should parse");
    expect(conversionRowKey(a.row)).toBe(conversionRowKey(b.row));
    expect(conversionRowKey(a.row)).not.toBe(conversionRowKey(c.row));
    expect(conversionRowKey(d.row)).toBe("import-purchase-HIS-001");
  });
});
