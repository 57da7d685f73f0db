import { z } from "zod";

/**
 * Request bodies of the conversion recording endpoints (POST /v1/appointments, /v1/visits,
 * /v1/consultations, /v1/purchases, /v1/refunds). Each becomes one event for the rules engine.
 */

const yuan = z.number().finite().min(0).max(100_000_000);
const itemList = z.array(z.string().trim().min(1).max(200)).max(100);

const common = {
  contactId: z.uuid(),
  /** When it happened (ISO 8601 with offset); default now. Not in the future. */
  occurredAt: z.iso.datetime({ offset: true }).optional(),
  /** Sent again with the same key, the record is stored once (200 with the first one's id). Default: derived from the body. */
  idempotencyKey: z.string().trim().min(1).max(200).optional(),
  /** The consultant credited. Consultants record for themselves (leave it out); others may name any staff member of the tenant. */
  staffId: z.uuid().optional(),
  /** The clinic it happened at (a clinic of the tenant); default the contact's. */
  clinicId: z.uuid().optional(),
  note: z.string().trim().max(1000).optional(),
};

export const AppointmentInput = z
  .object({
    ...common,
    /** When the patient is booked to come (the appointment itself); occurredAt is when it was booked. */
    at: z.iso.datetime({ offset: true }),
    item: z.string().trim().min(1).max(200).optional(),
  })
  .strict();
export type AppointmentInput = z.infer<typeof AppointmentInput>;

export const VisitInput = z
  .object({
    ...common,
    /** What the visit was for (到诊项目). */
    item: z.string().trim().min(1).max(200).optional(),
  })
  .strict();
export type VisitInput = z.infer<typeof VisitInput>;

export const CONSULTATION_MODES = ["online", "in_person"] as const;

export const ConsultationInput = z
  .object({
    ...common,
    outcome: z.enum(["converted", "lost"]),
    /** Converted: the amount in yuan and the items bought. */
    amount: yuan.optional(),
    items: itemList.optional(),
    /** Lost: one of the lead settings' `outcomes.lostReasons` (GET /v1/lead-settings). */
    lostReason: z.string().trim().min(1).max(200).optional(),
    /** Online (WeCom, phone, video) or in person at the clinic. */
    mode: z.enum(CONSULTATION_MODES).default("in_person"),
  })
  .strict()
  .superRefine((v, c) => {
    if (v.outcome === "converted" && v.amount === undefined) c.addIssue({ code: "custom", path: ["amount"], message: "is required when the outcome is converted" });
    if (v.outcome === "lost" && !v.lostReason) c.addIssue({ code: "custom", path: ["lostReason"], message: "is required when the outcome is lost" });
    if (v.outcome === "lost" && (v.amount !== undefined || v.items?.length)) c.addIssue({ code: "custom", path: ["amount"], message: "only a converted consultation has an amount and items" });
    if (v.outcome === "converted" && v.lostReason) c.addIssue({ code: "custom", path: ["lostReason"], message: "only a lost consultation has a lost reason" });
  });
export type ConsultationInput = z.infer<typeof ConsultationInput>;

export const PurchaseInput = z
  .object({
    ...common,
    amount: yuan,
    items: itemList.default([]),
  })
  .strict();
export type PurchaseInput = z.infer<typeof PurchaseInput>;

export const RefundInput = z
  .object({
    ...common,
    amount: yuan.refine((v) => v > 0, "must be more than 0"),
    items: itemList.optional(),
    /** The purchase refunded (an event id of the same contact); the refund may not exceed what is left of it. */
    purchaseEventId: z.uuid().optional(),
    reason: z.string().trim().min(1).max(200).optional(),
  })
  .strict();
export type RefundInput = z.infer<typeof RefundInput>;

export const CONVERSION_TYPES = ["appointment", "visit", "consultation", "purchase", "refund"] as const;
export type ConversionType = (typeof CONVERSION_TYPES)[number];

export const CONVERSION_INPUTS = {
  appointment: AppointmentInput,
  visit: VisitInput,
  consultation: ConsultationInput,
  purchase: PurchaseInput,
  refund: RefundInput,
} as const;

/** The event type each record becomes. */
export const EVENT_OF_CONVERSION = {
  appointment: "appointment_booked",
  visit: "visit",
  consultation: "consultation_outcome",
  purchase: "purchase",
  refund: "refund",
} as const satisfies Record<ConversionType, string>;

export const ConversionResult = z.object({
  eventId: z.uuid(),
  type: z.enum(["appointment_booked", "visit", "consultation_outcome", "purchase", "refund"]),
  contactId: z.uuid(),
  occurredAt: z.string(),
  idempotencyKey: z.string(),
  /** True when the idempotency key was already used: nothing new was stored. */
  duplicate: z.boolean(),
  data: z.record(z.string(), z.unknown()),
});
export type ConversionResult = z.infer<typeof ConversionResult>;
