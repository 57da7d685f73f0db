import { randomBytes } from "node:crypto";
import { and, desc, eq } from "drizzle-orm";
import { z } from "zod";
import { clinics, surveys, tenants } from "../../db/schema/index";
import { isSurveyToken, npsCategory, parseScore, type NpsCategory } from "../../domain/analytics/follow-ups";
import { ConflictError, NotFoundError, ValidationError } from "../../errors";
import { loadVisibleContact } from "../contacts/internal";
import { audit, dbOf, requirePermission, systemCtx, withTransaction, type Ctx, type ServiceDeps } from "../context";
import { ingestEvents } from "../events/ingest";

/** Patient comments are short: a sentence or two (the page says so). */
export const SURVEY_COMMENT_MAX = 500;

/** 18 random bytes: 24 base64url characters (144 bits), the survey page's only key. */
export function newSurveyToken(): string {
  return randomBytes(18).toString("base64url");
}

export function surveyUrl(publicUrl: string, token: string): string {
  return `${publicUrl.replace(/\/$/, "")}/s/${token}`;
}

/** Control characters other than tab and newlines are dropped from patients' comments. */
function stripControls(s: string): string {
  let out = "";
  for (const ch of s) {
    const c = ch.codePointAt(0)!;
    if (c === 9 || c === 10 || c === 13 || (c >= 32 && c !== 127)) out += ch;
  }
  return out;
}

export const AnswerSurveyInput = z.object({
  score: z.unknown().transform((v, c) => {
    const n = parseScore(v);
    if (n === null) {
      c.addIssue({ code: "custom", message: "must be a whole number from 0 to 10" });
      return z.NEVER;
    }
    return n;
  }),
  comment: z
    .string()
    .max(SURVEY_COMMENT_MAX * 2, `is at most ${SURVEY_COMMENT_MAX} characters`)
    .optional()
    .transform((s) => stripControls(s ?? "").trim())
    .pipe(z.string().max(SURVEY_COMMENT_MAX, `is at most ${SURVEY_COMMENT_MAX} characters`)),
});
export type AnswerSurveyInput = z.input<typeof AnswerSurveyInput>;

/** What the public survey page shows: whose survey (the clinic's name), and whether it was answered. */
export interface PublicSurvey {
  id: string;
  /** The clinic's name, else the tenant's. */
  clinicName: string;
  answered: boolean;
  score: number | null;
}

async function byToken(deps: ServiceDeps, token: string) {
  if (!isSurveyToken(token)) return null;
  // The token is the key across tenants (unique, unguessable), as a tracked link's code is.
  const [row] = await deps.db
    .select({ survey: surveys, tenantName: tenants.name, clinicName: clinics.name })
    .from(surveys)
    .innerJoin(tenants, eq(tenants.id, surveys.tenantId))
    .leftJoin(clinics, and(eq(clinics.id, surveys.clinicId), eq(clinics.tenantId, surveys.tenantId)))
    .where(eq(surveys.token, token));
  return row ?? null;
}

/** The survey behind a link, or null for an unknown token. */
export async function findSurvey({ deps, token }: { deps: ServiceDeps; token: string }): Promise<PublicSurvey | null> {
  const row = await byToken(deps, token);
  if (!row) return null;
  return { id: row.survey.id, clinicName: row.clinicName ?? row.tenantName, answered: row.survey.answeredAt !== null, score: row.survey.score };
}

/**
 * A patient's answer through the public link: stored once (a second answer is a ConflictError), and
 * ingested as a survey_answered event on the contact (the nps tags follow: 推荐者 / 被动者 /
 * 贬损者), crediting the consultant and clinic of the visit.
 */
export async function answerSurvey({ deps, token, input, requestId }: { deps: ServiceDeps; token: string; input: unknown; requestId?: string }): Promise<{ survey: PublicSurvey; eventId: string; category: NpsCategory }> {
  const found = await byToken(deps, token);
  if (!found) throw new NotFoundError("survey");
  const p = AnswerSurveyInput.safeParse(input ?? {});
  if (!p.success) throw new ValidationError(p.error.issues.map((i) => ({ field: String(i.path[0] ?? "score"), message: i.message })));
  const { score, comment } = p.data;
  const ctx = systemCtx(deps, found.survey.tenantId, "survey", requestId);
  const eventId = await withTransaction(ctx, async (tx, ctx) => {
    const [s] = await tx.select().from(surveys).where(and(eq(surveys.tenantId, ctx.tenantId), eq(surveys.id, found.survey.id))).for("update");
    if (!s) throw new NotFoundError("survey");
    if (s.answeredAt) throw new ConflictError("this survey was answered already", [{ field: "score", message: "already answered" }]);
    const now = ctx.deps.now();
    const ingested = await ingestEvents({
      ctx,
      source: "survey",
      input: {
        events: [
          {
            type: "survey_answered",
            contactId: s.contactId,
            occurredAt: now.toISOString(),
            idempotencyKey: `survey-${s.id}`,
            data: { score, surveyId: s.id, ...(comment ? { comment } : {}), ...(s.staffId ? { staffId: s.staffId } : {}), ...(s.clinicId ? { clinicId: s.clinicId } : {}), ...(s.visitEventId ? { visitEventId: s.visitEventId } : {}) },
          },
        ],
      },
    });
    const id = ingested.ids[0]!;
    await tx.update(surveys).set({ answeredAt: now, score, comment: comment || null, eventId: id }).where(eq(surveys.id, s.id));
    // The patient's words stay in the survey row and the event, not in the audit log.
    await audit(tx, ctx, { action: "survey.answer", entityType: "survey", entityId: s.id, after: { score, category: npsCategory(score), eventId: id } });
    return id;
  });
  return { survey: { id: found.survey.id, clinicName: found.clinicName ?? found.tenantName, answered: true, score }, eventId, category: npsCategory(score) };
}

export interface SurveyView {
  id: string;
  /** The link to send the patient (PUBLIC_URL/s/{token}). */
  url: string;
  contactId: string;
  staffId: string | null;
  clinicId: string | null;
  visitEventId: string | null;
  createdAt: string;
  sentAt: string | null;
  answeredAt: string | null;
  score: number | null;
  category: NpsCategory | null;
  comment: string | null;
}

type SurveyRow = typeof surveys.$inferSelect;
const iso = (d: Date | null) => (d ? d.toISOString() : null);

export function surveyView(publicUrl: string, s: SurveyRow): SurveyView {
  return {
    id: s.id,
    url: surveyUrl(publicUrl, s.token),
    contactId: s.contactId,
    staffId: s.staffId,
    clinicId: s.clinicId,
    visitEventId: s.visitEventId,
    createdAt: s.createdAt.toISOString(),
    sentAt: iso(s.sentAt),
    answeredAt: iso(s.answeredAt),
    score: s.score,
    category: s.score === null ? null : npsCategory(s.score),
    comment: s.comment,
  };
}

/** A contact's surveys, newest first, with the links to send (consultants: their own contacts; others 404). */
export async function listContactSurveys({ ctx, contactId }: { ctx: Ctx; contactId: string }): Promise<{ items: SurveyView[] }> {
  requirePermission(ctx, "followups:work");
  const db = dbOf(ctx);
  const contact = await loadVisibleContact(db, ctx, contactId);
  const rows = await db.select().from(surveys).where(and(eq(surveys.tenantId, ctx.tenantId), eq(surveys.contactId, contact.id))).orderBy(desc(surveys.createdAt), desc(surveys.id)).limit(200);
  return { items: rows.map((s) => surveyView(ctx.deps.config.publicUrl, s)) };
}
