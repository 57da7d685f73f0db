import { describe, expect, it } from "vitest";
import { checkOccurredAt, EVENT_TYPES, EventInput } from "../../src/domain/events/types";
import { zodIssues } from "../../src/errors";

const base = { occurredAt: "2026-11-20T10:00:00+08:00", idempotencyKey: "k1", contactId: "0b9f1c1e-7a55-4a7c-9a55-1c1e7a554a7c" };

const valid: Record<string, unknown> = {
  contact_added: { state: "qr_store", staffUserId: "zhangmin" },
  contact_deleted: {},
  message_received: { text: "祛痘多少钱" },
  article_read: { articleId: "a1", topic: "祛痘", dwellSeconds: 30 },
  livestream_attended: { liveId: "l1", minutes: 12 },
  appointment_booked: { at: "2026-11-25T14:00:00+08:00", item: "光子嫩肤" },
  visit: { clinicId: "c1", item: "祛痘" },
  purchase: { amount: 1999, items: ["祛痘疗程"] },
  consultation_outcome: { outcome: "converted", amount: 5000, items: ["热玛吉"] },
  group_joined: { chatId: "wr1" },
  group_left: { chatId: "wr1" },
  refund: { amount: 800, items: ["祛痘疗程"], reason: "疗程未做完" },
  survey_answered: { score: 9, comment: "护士很耐心" },
  referral_joined: { referredContactId: "1b9f1c1e-7a55-4a7c-9a55-1c1e7a554a7c" },
  referral_converted: { referredContactId: "1b9f1c1e-7a55-4a7c-9a55-1c1e7a554a7c", amount: 3000 },
};

describe("event schemas", () => {
  it("cover every type the contract names", () => {
    expect(new Set(EVENT_TYPES)).toEqual(new Set(Object.keys(valid)));
  });

  it.each(Object.entries(valid))("accepts a valid %s, keeping extra fields", (type, data) => {
    const r = EventInput.safeParse({ ...base, type, data: { ...(data as object), extra: 1 } });
    expect(r.success).toBe(true);
    expect((r.data as { data: Record<string, unknown> }).data.extra).toBe(1);
  });

  it("names the failing field", () => {
    const r = EventInput.safeParse({ ...base, type: "purchase", data: { amount: "12", items: [] } });
    expect(r.success).toBe(false);
    expect(zodIssues(r.error!.issues, "events[3]").map((i) => i.field)).toContain("events[3].data.amount");
  });

  it("keeps NPS scores whole and within 0-10", () => {
    for (const score of [-1, 11, 8.5]) expect(EventInput.safeParse({ ...base, type: "survey_answered", data: { score } }).success).toBe(false);
    expect(EventInput.safeParse({ ...base, type: "survey_answered", data: { score: 0 } }).success).toBe(true);
  });

  it("requires a lost reason for a lost consultation", () => {
    const r = EventInput.safeParse({ ...base, type: "consultation_outcome", data: { outcome: "lost" } });
    expect(r.success).toBe(false);
    expect(r.error!.issues[0]!.path).toEqual(["data", "lostReason"]);
  });

  it("needs exactly one contact reference", () => {
    const none = EventInput.safeParse({ type: "visit", occurredAt: base.occurredAt, idempotencyKey: "k", data: {} });
    const two = EventInput.safeParse({ ...base, phone: "13812341234", type: "visit", data: {} });
    expect(none.success).toBe(false);
    expect(two.success).toBe(false);
  });

  it("refuses unknown types, naming type", () => {
    const r = EventInput.safeParse({ ...base, type: "teleport", data: {} });
    expect(r.success).toBe(false);
    expect(r.error!.issues[0]!.path).toEqual(["type"]);
  });

  it("refuses times without an offset and far in the future", () => {
    expect(EventInput.safeParse({ ...base, occurredAt: "2026-11-20 10:00", type: "visit", data: {} }).success).toBe(false);
    const now = new Date("2026-11-23T00:00:00Z");
    expect(checkOccurredAt(new Date("2026-11-25T00:00:00Z"), now)).toMatch(/future/);
    expect(checkOccurredAt(new Date("2026-11-23T12:00:00Z"), now)).toBeNull();
  });
});
