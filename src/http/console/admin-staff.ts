import { Hono } from "hono";
import { can, ROLES } from "../../domain/auth/permissions";
import { ValidationError } from "../../errors";
import { listClinics, type ClinicView } from "../../services/clinics/clinics";
import { listConsultants } from "../../services/leads/consultants";
import { offboardStaff } from "../../services/leads/transfers";
import { createStaff } from "../../services/staff/create";
import { getStaff, listStaff } from "../../services/staff/list";
import type { StaffView } from "../../services/staff/schemas";
import { updateStaff } from "../../services/staff/update";
import { createToken, listTokens, revokeToken } from "../../services/tokens/tokens";
import type { AppEnv } from "../types";
import { doneNotice, field, formFailure, idParam, numberOf, selectOptions, type Field } from "./admin-kit";
import type { MessageKey } from "./i18n";
import { formOf, page, type Page } from "./kit";
import { withQuery } from "./views";

const PAGE_SIZE = 50;
const STATUSES = ["active", "inactive"] as const;
const WECOM_MODES = ["resigned", "on_job", "none"] as const;

type Values = Record<string, string>;
interface FormState {
  values: Values;
  errors: Record<string, string>;
  formError?: string | undefined;
}
const blank = (): FormState => ({ values: {}, errors: {} });

const roleLabel = (p: Page, r: string) => p.t(`role.${r}` as MessageKey);
/** The service refuses demoting or deactivating oneself at `role` / `active`: said as such. */
const selfRefusal = (i: { message: string }): MessageKey | undefined => (/yourself/.test(i.message) ? "staff.err.self" : undefined);
const skillsOf = (v: string | undefined) => (v ?? "").split(/[,，、\s]+/).map((s) => s.trim()).filter(Boolean);

/**
 * 员工与角色: the staff list (filters, pages of 50) with the form to add someone, and a staff
 * member's page: details and role, a new password, deactivation (for a consultant: 离职继承, the
 * book handed over to a chosen successor or by the assignment strategy), API tokens.
 */
export function staffPages(timeZone: string) {
  const app = new Hono<AppEnv>();

  const clinicsOf = (p: Page) => (can(p.principal.role, "clinics:read") ? listClinics({ ctx: p.ctx }) : Promise.resolve([] as ClinicView[]));

  /** The fields of the profile form (create and edit share them). */
  const profileFields = (p: Page, prefix: string, v: Values, errors: Record<string, string>, clinics: ClinicView[], opts: { create: boolean }): Field[] => {
    const fields: Field[] = [
      field({ id: `${prefix}-name`, name: "name", label: p.t("staff.f.name"), value: v.name, error: errors.name, maxlength: 100, autocomplete: "off" }),
      field({ id: `${prefix}-email`, name: "email", label: p.t("staff.f.email"), type: "email", value: v.email, error: errors.email, maxlength: 200, autocomplete: "off" }),
      field({
        id: `${prefix}-role`,
        name: "role",
        label: p.t("staff.f.role"),
        error: errors.role,
        options: [...(opts.create ? [{ value: "", label: p.t("staff.f.choose"), selected: !v.role }] : []), ...selectOptions(ROLES.map((r) => ({ value: r, label: roleLabel(p, r) })), v.role)],
        hint: p.t("staff.f.role.hint"),
      }),
    ];
    if (opts.create) {
      fields.push(field({ id: `${prefix}-password`, name: "password", label: p.t("staff.f.password"), type: "password", value: "", error: errors.password, autocomplete: "new-password", hint: p.t("staff.f.password.hint") }));
    }
    fields.push(
      field({ id: `${prefix}-wecomUserId`, name: "wecomUserId", label: p.t("staff.f.wecomUserId"), value: v.wecomUserId, error: errors.wecomUserId, maxlength: 64, autocomplete: "off", hint: p.t("staff.f.wecomUserId.hint") }),
    );
    if (clinics.length) {
      fields.push(
        field({
          id: `${prefix}-clinicId`,
          name: "clinicId",
          label: p.t("staff.f.clinic"),
          error: errors.clinicId,
          options: [{ value: "", label: p.t("staff.f.clinic.none"), selected: !v.clinicId }, ...selectOptions(clinics.map((c) => ({ value: c.id, label: c.name })), v.clinicId)],
        }),
      );
    }
    fields.push(
      field({ id: `${prefix}-skills`, name: "skills", label: p.t("staff.f.skills"), value: v.skills, error: errors.skills, hint: p.t("staff.f.skills.hint") }),
      field({ id: `${prefix}-capacity`, name: "capacity", label: p.t("staff.f.capacity"), value: v.capacity, error: errors.capacity, inputmode: "numeric", hint: p.t("staff.f.capacity.hint") }),
    );
    return fields;
  };

  const listPage = async (p: Page, create: FormState = blank(), status = 200) => {
    const q = p.c.req.query("q")?.trim().toLowerCase() || undefined;
    const role = ROLES.find((r) => r === p.c.req.query("role"));
    const state = STATUSES.find((s) => s === p.c.req.query("status"));
    const pageNo = Math.max(1, Math.floor(Number(p.c.req.query("page")) || 1));
    const [all, clinics] = await Promise.all([listStaff({ ctx: p.ctx }), clinicsOf(p)]);
    const clinicName = new Map(clinics.map((c) => [c.id, c.name]));
    const matching = all.filter(
      (s) => (!role || s.role === role) && (!state || s.active === (state === "active")) && (!q || s.name.toLowerCase().includes(q) || s.email.includes(q) || (s.wecomUserId ?? "").toLowerCase().includes(q)),
    );
    const pages = Math.max(1, Math.ceil(matching.length / PAGE_SIZE));
    const shown = matching.slice((pageNo - 1) * PAGE_SIZE, pageNo * PAGE_SIZE);
    const base = new URL(p.url);
    base.pathname = "/console/staff";
    const filtered = Boolean(q || role || state);
    return p.html(
      "staff",
      {
        flash: doneNotice(p, "staff"),
        q: p.c.req.query("q") ?? "",
        roleFilter: [{ value: "", label: p.t("staff.filter.anyRole"), selected: !role }, ...selectOptions(ROLES.map((r) => ({ value: r, label: roleLabel(p, r) })), role)],
        statusFilter: [{ value: "", label: p.t("staff.filter.anyStatus"), selected: !state }, ...selectOptions(STATUSES.map((s) => ({ value: s, label: p.t(`staff.status.${s}`) })), state)],
        filtered,
        counts: p.t("staff.count", { shown: matching.length, total: all.length }),
        hasClinics: clinics.length > 0,
        items: shown.map((s) => ({
          id: s.id,
          name: s.name,
          email: s.email,
          role: roleLabel(p, s.role),
          clinic: s.clinicId ? (clinicName.get(s.clinicId) ?? "—") : "—",
          wecomUserId: s.wecomUserId ?? "—",
          active: s.active,
          statusLabel: p.t(s.active ? "staff.status.active" : "staff.status.inactive"),
          signIn: p.t(s.canSignIn ? "staff.signIn.yes" : "staff.signIn.no"),
        })),
        empty: p.t(filtered ? "staff.empty.filtered" : "staff.empty"),
        prevHref: pageNo > 1 ? withQuery(base, { page: pageNo === 2 ? undefined : String(pageNo - 1) }) : undefined,
        nextHref: pageNo < pages ? withQuery(base, { page: String(pageNo + 1) }) : undefined,
        pageText: pages > 1 ? p.t("staff.page", { n: pageNo, of: pages }) : undefined,
        canWrite: can(p.principal.role, "staff:write"),
        create: { fields: profileFields(p, "c", create.values, create.errors, clinics, { create: true }), formError: create.formError },
      },
      { title: p.t("staff.title"), section: "staff", status },
    );
  };

  app.get("/console/staff", page(timeZone, "staff:read", (p) => listPage(p)));

  app.post("/console/staff", page(timeZone, "staff:write", async (p) => {
    const f = await formOf(p.c);
    const skills = skillsOf(f.skills);
    const input = {
      name: f.name ?? "",
      email: (f.email ?? "").trim(),
      role: f.role || undefined,
      password: f.password || undefined,
      wecomUserId: f.wecomUserId?.trim() || undefined,
      clinicId: f.clinicId || undefined,
      skills: skills.length ? skills : undefined,
      capacity: numberOf(f.capacity),
    };
    try {
      const s = await createStaff({ ctx: p.ctx, input });
      return p.c.redirect(`/console/staff/${s.id}?done=created#done`, 303);
    } catch (err) {
      const fail = formFailure(p, err, "staff", undefined, selfRefusal);
      if (!fail) throw err;
      // The password is never sent back into the page.
      return listPage(p, { values: { ...f, password: "" }, errors: fail.errors, formError: fail.formError }, fail.status);
    }
  }));

  interface DetailState {
    edit?: FormState;
    password?: FormState;
    offboard?: FormState;
    token?: FormState;
    newToken?: { name: string; token: string };
    /** Why (de)activation was refused. */
    activation?: string;
    flash?: string | undefined;
  }

  const detailPage = async (p: Page, id: string, state: DetailState = {}, status = 200) => {
    const s = await getStaff({ ctx: p.ctx, id });
    const role = p.principal.role;
    const [clinics, successors, tokens] = await Promise.all([
      clinicsOf(p),
      s.role === "consultant" && can(role, "leads:assign") ? listConsultants({ ctx: p.ctx }) : Promise.resolve([]),
      can(role, "tokens:manage") ? listTokens({ ctx: p.ctx, staffId: id }) : Promise.resolve([]),
    ]);
    const clinicName = new Map(clinics.map((c) => [c.id, c.name]));
    const self = s.id === p.principal.staffId;
    const edit = state.edit ?? { values: profileValues(s), errors: {} };
    const pw = state.password ?? blank();
    const off = state.offboard ?? { values: { wecom: s.wecomUserId ? "resigned" : "none" }, errors: {} };
    const tok = state.token ?? blank();
    const canWrite = can(role, "staff:write");
    return p.html(
      "staff-member",
      {
        s,
        flash: state.flash ?? doneNotice(p, "staff", offboardParams(p)),
        statusLabel: p.t(s.active ? "staff.status.active" : "staff.status.inactive"),
        facts: [
          { label: p.t("staff.f.email"), value: s.email },
          { label: p.t("staff.f.role"), value: roleLabel(p, s.role) },
          { label: p.t("staff.f.clinic"), value: s.clinicId ? (clinicName.get(s.clinicId) ?? "—") : "—" },
          { label: p.t("staff.f.wecomUserId"), value: s.wecomUserId ?? "—" },
          { label: p.t("staff.f.skills"), value: s.skills.join("、") || "—" },
          { label: p.t("staff.f.capacity"), value: String(s.capacity) },
          { label: p.t("staff.col.signIn"), value: p.t(s.canSignIn ? "staff.signIn.yes" : "staff.signIn.no") },
          { label: p.t("staff.created"), value: p.fmt.dateTime(s.createdAt) },
        ],
        canWrite,
        self,
        edit: { fields: profileFields(p, "e", edit.values, edit.errors, clinics, { create: false }), formError: edit.formError },
        password: { field: field({ id: "pw-password", name: "password", label: p.t("staff.f.newPassword"), type: "password", value: "", error: pw.errors.password, autocomplete: "new-password", hint: p.t("staff.f.password.hint") }), formError: pw.formError },
        // A consultant leaves through the handover (their book moves); others are deactivated.
        consultant: s.role === "consultant",
        canDeactivate: canWrite && s.active && !self && s.role !== "consultant",
        canActivate: canWrite && !s.active,
        deactivateConfirm: p.t("staff.deactivate.confirm", { name: s.name }),
        activationError: state.activation,
        offboard:
          s.role === "consultant" && can(role, "leads:assign")
            ? {
                confirm: p.t("staff.offboard.confirm", { name: s.name }),
                formError: off.formError,
                fields: [
                  field({
                    id: "o-toStaffId",
                    name: "toStaffId",
                    label: p.t("staff.offboard.to"),
                    error: off.errors.toStaffId,
                    hint: p.t("staff.offboard.to.hint"),
                    options: [
                      { value: "", label: p.t("staff.offboard.byStrategy"), selected: !off.values.toStaffId },
                      ...selectOptions(
                        successors.filter((c) => c.id !== s.id).map((c) => ({ value: c.id, label: p.t("staff.offboard.load", { name: c.name, open: c.openLeads, capacity: c.capacity }) })),
                        off.values.toStaffId,
                      ),
                    ],
                  }),
                  field({
                    id: "o-wecom",
                    name: "wecom",
                    label: p.t("staff.offboard.wecom"),
                    error: off.errors.wecom,
                    hint: p.t("staff.offboard.wecom.hint"),
                    options: selectOptions(WECOM_MODES.map((m) => ({ value: m, label: p.t(`staff.offboard.wecom.${m}`) })), off.values.wecom),
                  }),
                  field({ id: "o-reason", name: "reason", label: p.t("staff.offboard.reason"), value: off.values.reason, error: off.errors.reason, rows: 2, maxlength: 500 }),
                ],
              }
            : undefined,
        tokens: can(role, "tokens:manage")
          ? {
              items: tokens.map((x) => ({
                id: x.id,
                name: x.name,
                prefix: x.prefix,
                created: p.fmt.dateTime(x.createdAt),
                lastUsed: p.fmt.dateTime(x.lastUsedAt),
                expires: x.expiresAt ? p.fmt.dateTime(x.expiresAt) : p.t("staff.token.never"),
                revoked: x.revokedAt ? p.t("staff.token.revokedAt", { at: p.fmt.dateTime(x.revokedAt) }) : undefined,
                confirm: p.t("staff.token.revoke.confirm", { name: x.name }),
              })),
              newToken: state.newToken,
              formError: tok.formError,
              fields: [
                field({ id: "t-name", name: "name", label: p.t("staff.token.name"), value: tok.values.name, error: tok.errors.name, maxlength: 100 }),
                field({ id: "t-expires", name: "expiresInDays", label: p.t("staff.token.expires"), value: tok.values.expiresInDays, error: tok.errors.expiresInDays, inputmode: "numeric", hint: p.t("staff.token.expires.hint") }),
              ],
              canCreate: s.active,
            }
          : undefined,
      },
      { title: s.name, section: "staff", status },
    );
  };

  app.get("/console/staff/:id", page(timeZone, "staff:read", (p) => detailPage(p, idParam(p, "staff member"))));

  app.post("/console/staff/:id", page(timeZone, "staff:write", async (p) => {
    const id = idParam(p, "staff member");
    const f = await formOf(p.c);
    const input: Record<string, unknown> = {
      name: f.name ?? "",
      email: (f.email ?? "").trim(),
      role: f.role || undefined,
      wecomUserId: f.wecomUserId?.trim() || null,
      skills: skillsOf(f.skills),
      capacity: numberOf(f.capacity),
    };
    // The clinic field is there only when the tenant has clinics.
    if ("clinicId" in f) input.clinicId = f.clinicId || null;
    try {
      await updateStaff({ ctx: p.ctx, id, input });
    } catch (err) {
      const fail = formFailure(p, err, "staff", undefined, selfRefusal);
      if (!fail) throw err;
      return detailPage(p, id, { edit: { values: f, errors: fail.errors, formError: fail.formError } }, fail.status);
    }
    return p.c.redirect(`/console/staff/${id}?done=saved#done`, 303);
  }));

  app.post("/console/staff/:id/password", page(timeZone, "staff:write", async (p) => {
    const id = idParam(p, "staff member");
    const f = await formOf(p.c);
    try {
      if (!f.password) throw new ValidationError([{ field: "password", message: "is required" }]);
      await updateStaff({ ctx: p.ctx, id, input: { password: f.password } });
    } catch (err) {
      const fail = formFailure(p, err, "staff", undefined, selfRefusal);
      if (!fail) throw err;
      return detailPage(p, id, { password: { values: {}, errors: fail.errors, formError: fail.formError } }, fail.status);
    }
    return p.c.redirect(`/console/staff/${id}?done=password#done`, 303);
  }));

  const setActive = (active: boolean) =>
    page(timeZone, "staff:write", async (p) => {
      const id = idParam(p, "staff member");
      try {
        await updateStaff({ ctx: p.ctx, id, input: { active } });
      } catch (err) {
        const fail = formFailure(p, err, "staff", undefined, selfRefusal);
        if (!fail) throw err;
        return detailPage(p, id, { activation: Object.values(fail.errors)[0] ?? fail.formError }, fail.status);
      }
      return p.c.redirect(`/console/staff/${id}?done=${active ? "activated" : "deactivated"}#done`, 303);
    });
  app.post("/console/staff/:id/deactivate", setActive(false));
  app.post("/console/staff/:id/activate", setActive(true));

  app.post("/console/staff/:id/offboard", page(timeZone, "leads:assign", async (p) => {
    const id = idParam(p, "staff member");
    const f = await formOf(p.c);
    const input = { reason: f.reason ?? "", toStaffId: f.toStaffId || undefined, wecom: f.wecom || undefined };
    try {
      const r = await offboardStaff({ ctx: p.ctx, id, input });
      return p.c.redirect(withQuery(new URL(`/console/staff/${id}`, p.url), { done: "offboarded", contacts: String(r.contacts), leads: String(r.leads), pool: String(r.toPool), wecom: String(r.wecomQueued) }) + "#done", 303);
    } catch (err) {
      const fail = formFailure(p, err, "staff.offboard");
      if (!fail) throw err;
      return detailPage(p, id, { offboard: { values: f, errors: fail.errors, formError: fail.formError } }, fail.status);
    }
  }));

  app.post("/console/staff/:id/tokens", page(timeZone, "tokens:manage", async (p) => {
    const id = idParam(p, "staff member");
    const f = await formOf(p.c);
    try {
      const t = await createToken({ ctx: p.ctx, input: { staffId: id, name: f.name ?? "", expiresInDays: numberOf(f.expiresInDays) } });
      // Shown once, in this answer only (never in a URL or a later page).
      return detailPage(p, id, { newToken: { name: t.name, token: t.token }, flash: p.t("staff.done.token") }, 201);
    } catch (err) {
      const fail = formFailure(p, err, "staff.token");
      if (!fail) throw err;
      return detailPage(p, id, { token: { values: f, errors: fail.errors, formError: fail.formError } }, fail.status);
    }
  }));

  app.post("/console/tokens/:id/revoke", page(timeZone, "tokens:manage", async (p) => {
    const t = await revokeToken({ ctx: p.ctx, id: idParam(p, "token") });
    return p.c.redirect(`/console/staff/${t.staffId}?done=revoked#done`, 303);
  }));

  return app;
}

function profileValues(s: StaffView): Values {
  return { name: s.name, email: s.email, role: s.role, wecomUserId: s.wecomUserId ?? "", clinicId: s.clinicId ?? "", skills: s.skills.join(", "), capacity: String(s.capacity) };
}

/** The handover's figures, from the redirect after it. */
function offboardParams(p: Page): Record<string, string> {
  const n = (k: string) => String(Math.max(0, Math.floor(Number(p.c.req.query(k)) || 0)));
  return { contacts: n("contacts"), leads: n("leads"), pool: n("pool"), wecom: n("wecom") };
}
