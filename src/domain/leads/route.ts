import type { LeadConfig, Strategy } from "./config";

/** A consultant as routing sees them. */
export interface Candidate {
  id: string;
  skills: readonly string[];
  capacity: number;
  /** Open leads they own now. */
  openLeads: number;
  /** Assignments received in this scope (round-robin and weighted turns). */
  turns: number;
  lastAt: Date | null;
  /** Working hours per weekday ("mon".."sun" -> ["09:00", "18:00"]); null: always on shift. */
  shift: Record<string, [string, string]> | null;
}

// Building a DateTimeFormat costs far more than using one: one per time zone.
const formats = new Map<string, Intl.DateTimeFormat>();

/** Weekday and minutes after midnight of `at` in a time zone. */
export function localTime(at: Date, timeZone: string): { weekday: string; minutes: number } {
  let format = formats.get(timeZone);
  if (!format) {
    format = new Intl.DateTimeFormat("en-US", { timeZone, weekday: "short", hour: "2-digit", minute: "2-digit", hourCycle: "h23" });
    formats.set(timeZone, format);
  }
  const parts = format.formatToParts(at);
  const get = (t: string) => parts.find((p) => p.type === t)?.value ?? "";
  const weekday = get("weekday").toLowerCase().slice(0, 3);
  return { weekday, minutes: Number(get("hour")) * 60 + Number(get("minute")) };
}

/** Midnight of `at`'s local day in a time zone, as an instant. */
export function startOfLocalDay(at: Date, timeZone: string): Date {
  const { minutes } = localTime(at, timeZone);
  return new Date(at.getTime() - minutes * 60_000 - at.getUTCSeconds() * 1000 - at.getUTCMilliseconds());
}

/** Minutes after midnight of "HH:MM". */
export const minutesOf = (hhmm: string) => {
  const [h, m] = hhmm.split(":").map(Number);
  return (h ?? 0) * 60 + (m ?? 0);
};

/** Whether a consultant is working at `at` (tenant time zone). No shift set: always. */
export function onShift(shift: Candidate["shift"], at: Date, timeZone: string): boolean {
  if (!shift) return true;
  const { weekday, minutes } = localTime(at, timeZone);
  const hours = shift[weekday];
  if (!hours) return false;
  const from = minutesOf(hours[0]);
  const to = minutesOf(hours[1]);
  return from <= to ? minutes >= from && minutes < to : minutes >= from || minutes < to;
}

/** Stable tie-break: fewer turns, then longest since the last assignment, then id. */
function byTurns(a: Candidate, b: Candidate): number {
  return a.turns - b.turns || (a.lastAt?.getTime() ?? 0) - (b.lastAt?.getTime() ?? 0) || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
}

const load = (c: Candidate) => (c.capacity > 0 ? c.openLeads / c.capacity : Infinity);

/**
 * Choose a consultant for a lead by the configured chain: each step filters the consultants who
 * have room (open leads below capacity) and, when asked, are on shift; the first step that finds
 * someone wins. Returns null when nobody fits (the lead goes to the pool).
 */
export function chooseConsultant(
  candidates: readonly Candidate[],
  lead: { needs: readonly string[] },
  config: LeadConfig["assignment"],
  at: Date,
  timeZone: string,
  exclude: ReadonlySet<string> = new Set(),
): { staffId: string; strategy: Strategy } | null {
  for (const step of config.chain) {
    const pool = candidates.filter((c) => !exclude.has(c.id) && c.openLeads < c.capacity && (!step.onShiftOnly || onShift(c.shift, at, timeZone)));
    if (!pool.length) continue;
    let chosen: Candidate | undefined;
    switch (step.strategy) {
      case "skill": {
        const skilled = pool.filter((c) => lead.needs.some((n) => c.skills.includes(n)));
        chosen = [...skilled].sort((a, b) => load(a) - load(b) || byTurns(a, b))[0];
        break;
      }
      case "round_robin":
        chosen = [...pool].sort(byTurns)[0];
        break;
      case "weighted": {
        // Smooth weighted round-robin: the next turn goes to the lowest (turns + 1) / weight.
        const w = (c: Candidate) => config.weights[c.id] ?? 1;
        const weighted = pool.filter((c) => w(c) > 0);
        chosen = [...weighted].sort((a, b) => (a.turns + 1) / w(a) - (b.turns + 1) / w(b) || byTurns(a, b))[0];
        break;
      }
      case "least_loaded":
        chosen = [...pool].sort((a, b) => load(a) - load(b) || byTurns(a, b))[0];
        break;
    }
    if (chosen) return { staffId: chosen.id, strategy: step.strategy };
  }
  return null;
}
