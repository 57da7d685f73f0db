import { z } from "zod";

/**
 * Typed events: one zod schema per type for `data`. Types may carry more fields than listed
 * (loose objects); the names listed here are a stable contract (shared/DESIGN.md section 10).
 */
const yuan = z.number().finite().min(0).max(100_000_000);
const shortText = z.string().trim().min(1).max(200);

export const EventData = {
  contact_added: z.looseObject({ state: z.string().max(200).optional(), staffUserId: z.string().max(100).optional() }),
  contact_deleted: z.looseObject({
    by: z.enum(["contact", "staff"]).optional(),
    staffUserId: z.string().max(100).optional(),
  }),
  message_received: z.looseObject({ text: z.string().min(1).max(20_000), chatId: z.string().max(100).optional() }),
  article_read: z.looseObject({
    articleId: shortText,
    topic: z.string().max(200).optional(),
    dwellSeconds: z.number().int().min(0).max(86_400).optional(),
  }),
  livestream_attended: z.looseObject({ liveId: shortText, minutes: z.number().min(0).max(24 * 60) }),
  appointment_booked: z.looseObject({ at: z.iso.datetime({ offset: true }), item: z.string().max(200).optional() }),
  visit: z.looseObject({ clinicId: z.string().max(100).optional(), item: z.string().max(200).optional() }),
  purchase: z.looseObject({ amount: yuan, items: z.array(shortText).max(100) }),
  consultation_outcome: z
    .looseObject({
      outcome: z.enum(["converted", "lost"]),
      amount: yuan.optional(),
      items: z.array(shortText).max(100).optional(),
      lostReason: z.string().max(200).optional(),
    })
    .superRefine((v, ctx) => {
      if (v.outcome === "lost" && !v.lostReason) {
        ctx.addIssue({ code: "custom", path: ["lostReason"], message: "is required when outcome is lost" });
      }
    }),
  group_joined: z.looseObject({ chatId: shortText }),
  group_left: z.looseObject({ chatId: shortText }),
  /** Money given back for a purchase: spending sums subtract it. */
  refund: z.looseObject({ amount: yuan, items: z.array(shortText).max(100).optional(), purchaseEventId: z.uuid().optional(), reason: z.string().max(200).optional() }),
  /** An answer to the satisfaction survey after a visit: NPS 0-10 ("how likely are you to recommend us"). */
  survey_answered: z.looseObject({ score: z.number().int().min(0).max(10), surveyId: z.uuid().optional(), comment: z.string().max(2000).optional() }),
  /** On the referrer: a contact they referred (their personal channel code, 转介绍) was added. */
  referral_joined: z.looseObject({ referredContactId: z.uuid() }),
  /** On the referrer: a contact they referred converted (consultation or purchase). */
  referral_converted: z.looseObject({ referredContactId: z.uuid(), amount: yuan.optional() }),
} as const;

export type EventType = keyof typeof EventData;
export const EVENT_TYPES = Object.keys(EventData) as EventType[];

/** How an event names its contact: exactly one of these. */
export const ContactRef = z.object({
  contactId: z.uuid().optional(),
  externalUserId: z.string().min(1).max(128).optional(),
  phone: z.string().min(3).max(32).optional(),
});

const envelope = {
  occurredAt: z.iso.datetime({ offset: true }),
  idempotencyKey: z.string().min(1).max(200),
  ...ContactRef.shape,
};

function variant<T extends EventType>(type: T) {
  return z.object({ type: z.literal(type), ...envelope, data: EventData[type] });
}

export const EventInput = z
  .discriminatedUnion("type", [
    variant("contact_added"),
    variant("contact_deleted"),
    variant("message_received"),
    variant("article_read"),
    variant("livestream_attended"),
    variant("appointment_booked"),
    variant("visit"),
    variant("purchase"),
    variant("consultation_outcome"),
    variant("group_joined"),
    variant("group_left"),
    variant("refund"),
    variant("survey_answered"),
    variant("referral_joined"),
    variant("referral_converted"),
  ])
  .superRefine((v, ctx) => {
    const refs = [v.contactId, v.externalUserId, v.phone].filter((x) => x !== undefined).length;
    if (refs !== 1) {
      ctx.addIssue({
        code: "custom",
        path: ["contactId"],
        message: "give exactly one of contactId, externalUserId or phone",
      });
    }
  });
export type EventInput = z.infer<typeof EventInput>;

export const MAX_EVENTS_PER_BATCH = 1000;
/** Events dated further ahead than this are refused: a clock or unit error upstream. */
export const MAX_FUTURE_SKEW_MS = 24 * 3600 * 1000;

export function checkOccurredAt(occurredAt: Date, now: Date): string | null {
  if (occurredAt.getTime() - now.getTime() > MAX_FUTURE_SKEW_MS) return "is more than 24 hours in the future";
  if (occurredAt.getUTCFullYear() < 2000) return "is before the year 2000";
  return null;
}
