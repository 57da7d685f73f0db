import type { LeadConfig } from "./config";

/** What a lead's grade is computed from. */
export interface GradeInputs {
  source: string;
  /** The contact's need tags (the lead's need first). */
  needs: readonly string[];
  engagement: string | null;
  spending: string | null;
  signalScore: number;
  lastSignalAt: Date;
}

export type Grade = "A" | "B" | "C" | "D";

const DAY = 86_400_000;

/**
 * The lead score (0-100) and grade, with the points each input contributed (recorded with every
 * grade change, so a consultant can see why a lead is an A). The best-scoring need counts.
 */
export function gradeLead(input: GradeInputs, config: LeadConfig["grading"], now: Date): { score: number; grade: Grade; parts: Record<string, number> } {
  const pick = (table: Record<string, number>, key: string | null) => (key === null ? 0 : (table[key] ?? table.other ?? 0));
  const need = input.needs.length ? Math.max(...input.needs.map((n) => pick(config.needs, n))) : 0;
  const ageDays = Math.max(0, (now.getTime() - input.lastSignalAt.getTime()) / DAY);
  const fresh = config.recencyDays;
  const recency = ageDays <= fresh ? config.recencyPoints : ageDays >= 4 * fresh ? 0 : Math.round(config.recencyPoints * (1 - (ageDays - fresh) / (3 * fresh)));
  const parts: Record<string, number> = {
    need,
    source: pick(config.sources, input.source),
    engagement: input.engagement === null ? 0 : (config.engagement[input.engagement] ?? 0),
    spending: input.spending === null ? 0 : (config.spending[input.spending] ?? 0),
    signals: Math.min(config.signalMax, Math.max(0, input.signalScore)),
    recency,
  };
  const score = Math.max(0, Math.min(100, Object.values(parts).reduce((a, b) => a + b, 0)));
  const t = config.thresholds;
  const grade: Grade = score >= t.A ? "A" : score >= t.B ? "B" : score >= t.C ? "C" : "D";
  return { score, grade, parts };
}
