import { Hono } from "hono";
import { can } from "../../domain/auth/permissions";
import { NotFoundError } from "../../errors";
import { STRATEGIES, type LeadConfig } from "../../domain/leads/config";
import { listClinics, type ClinicView } from "../../services/clinics/clinics";
import { listConsultants, type ConsultantView } from "../../services/leads/consultants";
import { getLeadSettings, putLeadSettings } from "../../services/leads/leads";
import { listSopTemplates } from "../../services/leads/sop";
import type { AppEnv } from "../types";
import { doneNotice, field, formFailure, linesOf, numberOf, selectOptions, type Field } from "./admin-kit";
import type { MessageKey } from "./i18n";
import { formOf, page, type Page } from "./kit";

const GRADES4 = ["A", "B", "C", "D"] as const;
const GRADES3 = ["A", "B", "C"] as const;
const MAPS = ["needs", "sources", "engagement", "spending"] as const;
const BREACH = ["reassign", "pool"] as const;
/** Steps the form offers: at least this many rows, one more than in use, at most the schema's 8. */
const MIN_CHAIN_ROWS = 4;
const MAX_CHAIN = 8;

type Values = Record<string, string>;

/**
 * 分配策略: the lead settings of the tenant (the default) or of one clinic, as one form: the
 * assignment chain and weights, the pool's daily claim cap, the first-contact SLA by grade and
 * what happens on a breach, the grading (thresholds and points) and the lost reasons. Saving puts
 * the whole configuration (putLeadSettings replaces it); a refused value is named next to its field.
 */
export function assignmentPages(timeZone: string) {
  const app = new Hono<AppEnv>();

  const render = async (p: Page, clinicId: string | undefined, state: { values?: Values; errors?: Record<string, string>; formError?: string } = {}, status = 200) => {
    const [clinics, config, consultants, sops] = await Promise.all([
      can(p.principal.role, "clinics:read") ? listClinics({ ctx: p.ctx }) : Promise.resolve([] as ClinicView[]),
      getLeadSettings({ ctx: p.ctx, clinicId }),
      can(p.principal.role, "leads:assign") ? listConsultants({ ctx: p.ctx }) : Promise.resolve([] as ConsultantView[]),
      listSopTemplates({ ctx: p.ctx, input: { includeInactive: false } }),
    ]);
    const v = state.values ?? valuesOf(config);
    const e = state.errors ?? {};
    const clinicName = new Map(clinics.map((c) => [c.id, c.name]));
    const scope = clinicId ? (clinicName.get(clinicId) ?? clinicId) : p.t("assign.scope.tenant");
    const chainRows = Math.min(MAX_CHAIN, Math.max(MIN_CHAIN_ROWS, config.assignment.chain.length + 1));
    const strategyLabel = (s: string) => p.t(`strategy.${s}` as MessageKey);
    const num = (name: string, label: string, hint?: string): Field => field({ id: `a-${name}`, name, label, value: v[name], error: e[name], inputmode: "numeric", hint });
    return p.html(
      "assignment",
      {
        flash: doneNotice(p, "assign"),
        scope,
        clinicId,
        action: clinicId ? `/console/assignment?clinic=${encodeURIComponent(clinicId)}` : "/console/assignment",
        clinics: clinics.length
          ? [{ value: "", label: p.t("assign.scope.tenant"), selected: !clinicId }, ...selectOptions(clinics.map((c) => ({ value: c.id, label: c.name })), clinicId)]
          : undefined,
        formError: state.formError,
        chain: {
          error: e.chain,
          rows: Array.from({ length: chainRows }, (_, i) => ({
            n: i + 1,
            strategy: field({
              id: `a-chain${i}`,
              name: `chain${i}`,
              label: p.t("assign.chain.step", { n: i + 1 }),
              options: [{ value: "", label: p.t(i === 0 ? "assign.chain.choose" : "assign.chain.none"), selected: !v[`chain${i}`] }, ...selectOptions(STRATEGIES.map((s) => ({ value: s, label: strategyLabel(s) })), v[`chain${i}`])],
            }),
            shift: field({ id: `a-chain${i}shift`, name: `chain${i}shift`, label: p.t("assign.chain.onShift"), checkbox: true, checked: v[`chain${i}shift`] === "1" }),
          })),
        },
        weights: {
          error: e.weights,
          fields: consultants.map((c) => field({ id: `a-w-${c.id}`, name: `w_${c.id}`, label: c.name, value: v[`w_${c.id}`], inputmode: "numeric", placeholder: "1", error: e[`w_${c.id}`] })),
        },
        assignFields: [num("poolDailyClaimCap", p.t("assign.poolDailyClaimCap"), p.t("assign.poolDailyClaimCap.hint"))],
        slaFields: [
          ...GRADES4.map((g) => num(`sla${g}`, p.t("assign.sla.grade", { grade: g }))),
          num("remindBeforeMinutes", p.t("assign.sla.remind"), p.t("assign.sla.remind.hint")),
          field({ id: "a-onBreach", name: "onBreach", label: p.t("assign.sla.onBreach"), error: e.onBreach, options: selectOptions(BREACH.map((b) => ({ value: b, label: p.t(`assign.sla.onBreach.${b}`) })), v.onBreach) }),
          field({ id: "a-workingHoursOnly", name: "workingHoursOnly", label: p.t("assign.sla.workingHoursOnly"), checkbox: true, checked: v.workingHoursOnly === "1", hint: p.t("assign.sla.workingHoursOnly.hint") }),
        ],
        thresholds: { error: e.thresholds, fields: GRADES3.map((g) => field({ id: `a-thr${g}`, name: `thr${g}`, label: p.t("assign.grading.threshold", { grade: g }), value: v[`thr${g}`], inputmode: "numeric" })) },
        gradingFields: [
          num("signalMax", p.t("assign.grading.signalMax"), p.t("assign.grading.signalMax.hint")),
          num("recencyPoints", p.t("assign.grading.recencyPoints")),
          num("recencyDays", p.t("assign.grading.recencyDays"), p.t("assign.grading.recency.hint")),
        ],
        mapFields: MAPS.map((m) => field({ id: `a-${m}`, name: m, label: p.t(`assign.grading.${m}`), value: v[m], error: e[m], rows: rowsFor(v[m]), hint: p.t("assign.grading.map.hint") })),
        lostReasons: field({ id: "a-lostReasons", name: "lostReasons", label: p.t("assign.outcomes.lostReasons"), value: v.lostReasons, error: e.lostReasons, rows: rowsFor(v.lostReasons), hint: p.t("assign.outcomes.lostReasons.hint") }),
        sops: sops.items.map((s) => ({
          name: s.name,
          scope: s.clinicId ? (clinicName.get(s.clinicId) ?? s.clinicId) : p.t("assign.scope.tenant"),
          match: matchText(p, s.match),
          priority: s.priority,
          steps: s.steps.map((st) => p.t("assign.sop.step", { day: st.day, at: st.at ?? "", title: st.title })).join("；"),
        })),
      },
      { title: p.t("assign.title"), section: "assignment", status },
    );
  };

  const clinicOf = (p: Page) => {
    const c = p.c.req.query("clinic") || undefined;
    // Not a clinic id at all: a bad link (a wrong id is the service's 422, shown as a 400 page).
    if (c && !/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(c)) throw new NotFoundError("clinic");
    return c;
  };

  app.get("/console/assignment", page(timeZone, "leads:settings", (p) => render(p, clinicOf(p))));

  app.post("/console/assignment", page(timeZone, "leads:settings", async (p) => {
    const clinicId = clinicOf(p);
    const f = await formOf(p.c);
    const current = await getLeadSettings({ ctx: p.ctx, clinicId });
    try {
      await putLeadSettings({ ctx: p.ctx, clinicId, input: configOf(f, current) });
    } catch (err) {
      const fail = formFailure(p, err, "assign", fieldOfPath);
      if (!fail) throw err;
      return render(p, clinicId, { values: f, errors: fail.errors, formError: fail.formError }, fail.status);
    }
    return p.c.redirect(clinicId ? `/console/assignment?clinic=${encodeURIComponent(clinicId)}&done=saved#done` : "/console/assignment?done=saved#done", 303);
  }));

  return app;
}

/** A textarea tall enough for its lines (and one more), within reason. */
const rowsFor = (text: string | undefined) => Math.min(14, Math.max(4, (text ?? "").split("\n").length + 1));

/** The form's values of a configuration. */
function valuesOf(c: LeadConfig): Values {
  const v: Values = {
    poolDailyClaimCap: String(c.assignment.poolDailyClaimCap),
    remindBeforeMinutes: String(c.sla.remindBeforeMinutes),
    onBreach: c.sla.onBreach,
    workingHoursOnly: c.sla.workingHoursOnly ? "1" : "",
    signalMax: String(c.grading.signalMax),
    recencyPoints: String(c.grading.recencyPoints),
    recencyDays: String(c.grading.recencyDays),
    lostReasons: c.outcomes.lostReasons.join("\n"),
  };
  c.assignment.chain.forEach((s, i) => {
    v[`chain${i}`] = s.strategy;
    v[`chain${i}shift`] = s.onShiftOnly ? "1" : "";
  });
  for (const [id, w] of Object.entries(c.assignment.weights)) v[`w_${id}`] = String(w);
  for (const g of GRADES4) v[`sla${g}`] = String(c.sla.firstContactMinutes[g]);
  for (const g of GRADES3) v[`thr${g}`] = String(c.grading.thresholds[g]);
  for (const m of MAPS) v[m] = Object.entries(c.grading[m]).map(([k, n]) => `${k}=${n}`).join("\n");
  return v;
}

/** "name=points" lines as a map; a line that does not read so keeps its text as the value, which the service refuses. */
function mapOf(text: string | undefined): Record<string, number | string> {
  const out: Record<string, number | string> = {};
  for (const line of linesOf(text)) {
    const m = /^(.+?)\s*[=:：＝]\s*(-?\d+)$/.exec(line);
    if (m) out[m[1]!.trim()] = Number(m[2]);
    else out[line] = line;
  }
  return out;
}

/** The whole configuration from the form (weights of consultants not on the form are kept). */
function configOf(f: Values, current: LeadConfig): unknown {
  const chain: { strategy: string; onShiftOnly: boolean }[] = [];
  for (let i = 0; i < MAX_CHAIN; i++) {
    const s = f[`chain${i}`];
    if (s) chain.push({ strategy: s, onShiftOnly: f[`chain${i}shift`] === "1" });
  }
  const weights: Record<string, unknown> = { ...current.assignment.weights };
  for (const [k, val] of Object.entries(f)) {
    if (!k.startsWith("w_")) continue;
    const n = numberOf(val);
    if (n === undefined) delete weights[k.slice(2)];
    else weights[k.slice(2)] = n;
  }
  return {
    grading: {
      needs: mapOf(f.needs),
      sources: mapOf(f.sources),
      engagement: mapOf(f.engagement),
      spending: mapOf(f.spending),
      signalMax: numberOf(f.signalMax),
      recencyPoints: numberOf(f.recencyPoints),
      recencyDays: numberOf(f.recencyDays),
      thresholds: { A: numberOf(f.thrA), B: numberOf(f.thrB), C: numberOf(f.thrC) },
    },
    assignment: { chain, weights, poolDailyClaimCap: numberOf(f.poolDailyClaimCap) },
    sla: {
      firstContactMinutes: { A: numberOf(f.slaA), B: numberOf(f.slaB), C: numberOf(f.slaC), D: numberOf(f.slaD) },
      workingHoursOnly: f.workingHoursOnly === "1",
      remindBeforeMinutes: numberOf(f.remindBeforeMinutes),
      onBreach: f.onBreach || undefined,
    },
    outcomes: { lostReasons: linesOf(f.lostReasons) },
  };
}

/** The form field of a path the service names (`sla.firstContactMinutes.A` -> slaA). */
function fieldOfPath(path: string): string {
  const parts = path.replace(/\[\d+\]/g, "").split(".");
  const [group, name, sub] = parts;
  if (group === "assignment") return name === "chain" ? "chain" : name === "weights" ? (sub ? `w_${sub}` : "weights") : (name ?? "chain");
  if (group === "sla") return name === "firstContactMinutes" ? (sub ? `sla${sub}` : "slaA") : (name ?? "slaA");
  if (group === "grading") return name === "thresholds" ? "thresholds" : (name ?? "thresholds");
  if (group === "outcomes") return "lostReasons";
  return path;
}

function matchText(p: Page, m: { sources?: string[] | undefined; needs?: string[] | undefined; grades?: string[] | undefined }): string {
  const parts = [
    m.grades?.length ? p.t("assign.sop.grades", { list: m.grades.join("/") }) : "",
    m.needs?.length ? p.t("assign.sop.needs", { list: m.needs.join("、") }) : "",
    m.sources?.length ? p.t("assign.sop.sources", { list: m.sources.join("、") }) : "",
  ].filter(Boolean);
  return parts.length ? parts.join("；") : p.t("assign.sop.all");
}
