import { Hono } from "hono";
import { can, seesPii } from "../../domain/auth/permissions";
import { parseSegment, SegmentSyntaxError } from "../../domain/segments/parse";
import { AppError, type FieldIssue } from "../../errors";
import type { ContactView } from "../../services/contacts/schemas";
import { createSegment, getSegment, listSegments, previewSegment, segmentMembers, segmentSizes, updateSegment } from "../../services/segments/segments";
import { latestSegmentSnapshots } from "../../services/segments/snapshots";
import type { AppEnv } from "../types";
import { formOf, page, type Page } from "./kit";
import { caretAt, sizesSvg } from "./marketing-present";
import { withQuery } from "./views";

const MEMBERS_PAGE = 25;
const EXAMPLES = ["visit:复诊 AND need:祛痘 AND NOT engagement:低", "spend_12m >= 5000", "(need:抗衰 OR need:美白) AND days_since_visit > 90", 'source = "livestream" AND NOT visit:首诊'];

interface SegmentForm {
  id?: string | undefined;
  values: { name: string; expression: string };
  errors: { name?: string | undefined; expression?: string | undefined; form?: string | undefined };
  /** A syntax error: the expression split around the position, for the caret. */
  caret?: ReturnType<typeof caretAt> | undefined;
  preview?: { count: number; sample: ContactView[] } | undefined;
}

/**
 * Segments (分群): the list with live counts (and the move since the last nightly snapshot), create
 * and edit with a preview of the count, syntax errors shown with a caret under their position, and
 * the segment page: live count, daily sizes as an SVG line, members (cursor pages, phones masked
 * per role by the service) and the CSV export (the API's own route, which takes the session cookie).
 */
export function segmentPages(timeZone: string) {
  const app = new Hono<AppEnv>();

  app.get("/console/segments", page(timeZone, "segments:read", async (p) => {
    const [items, snaps] = await Promise.all([listSegments({ ctx: p.ctx }), latestSegmentSnapshots({ ctx: p.ctx })]);
    return p.html(
      "segments",
      {
        canWrite: can(p.principal.role, "segments:write"),
        items: items.map((s) => {
          const snap = snaps[s.id];
          return {
            id: s.id,
            name: s.name,
            expression: s.expression,
            count: s.count.toLocaleString("zh-CN"),
            delta: snap ? deltaModel(p, s.count, snap) : undefined,
            updatedAt: p.fmt.dateTime(s.updatedAt),
          };
        }),
      },
      { title: p.t("seg.title"), section: "segments" },
    );
  }));

  app.get("/console/segments/new", page(timeZone, "segments:write", (p) => formPage(p, { values: { name: "", expression: p.c.req.query("expression") ?? "" }, errors: {} })));

  // Preview: the count and a sample for the expression being written, saving nothing (the API's preview).
  app.post("/console/segments/preview", page(timeZone, "segments:read", async (p) => {
    const f = await formOf(p.c);
    const values = { name: f.name ?? "", expression: f.expression ?? "" };
    const id = f.id || undefined;
    try {
      const preview = await previewSegment({ ctx: p.ctx, input: { expression: values.expression } });
      return formPage(p, { id, values, errors: {}, preview });
    } catch (err) {
      const refused = refusal(p, err, values);
      if (!refused) throw err;
      return formPage(p, { id, values, ...refused.form }, refused.status);
    }
  }));

  app.post("/console/segments", page(timeZone, "segments:write", async (p) => {
    const f = await formOf(p.c);
    const values = { name: f.name ?? "", expression: f.expression ?? "" };
    try {
      const s = await createSegment({ ctx: p.ctx, input: values });
      return p.c.redirect(`/console/segments/${s.id}?done=created`, 303);
    } catch (err) {
      const refused = refusal(p, err, values);
      if (!refused) throw err;
      return formPage(p, { values, ...refused.form }, refused.status);
    }
  }));

  app.get("/console/segments/:id/edit", page(timeZone, "segments:write", async (p) => {
    const s = await getSegment({ ctx: p.ctx, id: p.c.req.param("id")! });
    return formPage(p, { id: s.id, values: { name: s.name, expression: s.expression }, errors: {} });
  }));

  app.post("/console/segments/:id", page(timeZone, "segments:write", async (p) => {
    const id = p.c.req.param("id")!;
    const f = await formOf(p.c);
    const values = { name: f.name ?? "", expression: f.expression ?? "" };
    try {
      await updateSegment({ ctx: p.ctx, id, input: values });
      return p.c.redirect(`/console/segments/${id}?done=updated`, 303);
    } catch (err) {
      const refused = refusal(p, err, values);
      if (!refused) throw err;
      return formPage(p, { id, values, ...refused.form }, refused.status);
    }
  }));

  app.get("/console/segments/:id", page(timeZone, "segments:read", async (p) => {
    const id = p.c.req.param("id")!;
    const cursor = p.c.req.query("cursor") || undefined;
    // The segment first: an unknown id is a 404 before anything else is read.
    const s = await getSegment({ ctx: p.ctx, id });
    const [sizes, members] = await Promise.all([segmentSizes({ ctx: p.ctx, id }), segmentMembers({ ctx: p.ctx, id, input: { cursor, limit: MEMBERS_PAGE } })]);
    const last = sizes[sizes.length - 1];
    const done = p.c.req.query("done");
    return p.html(
      "segment",
      {
        segment: s,
        count: s.count.toLocaleString("zh-CN"),
        flash: done === "created" ? p.t("seg.done.created") : done === "updated" ? p.t("seg.done.updated") : undefined,
        delta: last ? deltaModel(p, s.count, last) : undefined,
        canWrite: can(p.principal.role, "segments:write"),
        chart: sizes.length ? sizesSvg(sizes, p.t("seg.chart.label", { name: s.name, from: sizes[0]!.day, to: last!.day, n: sizes.length })) : undefined,
        chartFrom: sizes[0]?.day,
        chartTo: last?.day,
        sizes: sizes.slice(-14).reverse(),
        masked: !seesPii(p.principal.role),
        members: members.items.map((c) => memberModel(p, c)),
        nextHref: members.nextCursor ? withQuery(p.url, { cursor: members.nextCursor, done: undefined }) : undefined,
        firstHref: cursor ? withQuery(p.url, { cursor: undefined, done: undefined }) : undefined,
        exportHref: `/v1/segments/${s.id}/export.csv`,
      },
      { title: s.name, section: "segments" },
    );
  }));

  return app;
}

function deltaModel(p: Page, count: number, snap: { day: string; size: number }) {
  const d = count - snap.size;
  const value = d > 0 ? `+${d}` : d < 0 ? `−${-d}` : "±0";
  return { value, text: p.t("seg.delta", { delta: value, day: snap.day }), since: p.t("seg.delta.since", { day: snap.day }), dir: d > 0 ? "up" : d < 0 ? "down" : "flat" };
}

function memberModel(p: Page, c: ContactView) {
  return { id: c.id, name: c.name, phone: c.phone ?? "—", source: c.source, lastEventAt: p.fmt.dateTime(c.lastEventAt), createdAt: p.fmt.dateTime(c.createdAt) };
}

/** A refused name or expression as messages next to their fields; a syntax error with its position. */
function refusal(p: Page, err: unknown, values: { name: string; expression: string }): { form: Pick<SegmentForm, "errors" | "caret">; status: number } | null {
  if (!(err instanceof AppError) || (err.code !== "VALIDATION_FAILED" && err.code !== "CONFLICT")) return null;
  const { name, expression } = values;
  const errors: SegmentForm["errors"] = {};
  let caret: SegmentForm["caret"];
  const issues: FieldIssue[] = err.issues.length ? err.issues : [{ field: "form", message: err.detail }];
  for (const i of issues) {
    if (i.field === "name") errors.name ??= p.t(err.code === "CONFLICT" ? "seg.err.nameTaken" : name.trim() ? "seg.err.nameLong" : "seg.err.nameRequired");
    else if (i.field === "expression") {
      if (errors.expression) continue;
      // The service names the field; the parser (pure) gives the exact position for the caret.
      let syntax: SegmentSyntaxError | undefined;
      try {
        if (expression.trim()) parseSegment(expression);
      } catch (e) {
        if (e instanceof SegmentSyntaxError) syntax = e;
      }
      if (syntax) {
        caret = caretAt(expression, syntax.position);
        errors.expression = p.t("seg.err.syntax", { column: caret.column, message: syntax.message.replace(/ \(at position \d+\)$/, "") });
      } else if (!expression.trim()) errors.expression = p.t("seg.err.exprRequired");
      else if (i.message.startsWith("unknown tag ")) errors.expression = p.t("seg.err.unknownTag", { tags: i.message.slice("unknown tag ".length) });
      else errors.expression = i.message;
    } else errors.form = `${errors.form ? `${errors.form}; ` : ""}${i.field}: ${i.message}`;
  }
  return { form: { errors, caret }, status: err.code === "CONFLICT" ? 409 : 422 };
}

function formPage(p: Page, f: SegmentForm, status = 200): Response {
  const editing = Boolean(f.id);
  return p.html(
    "segment-form",
    {
      id: f.id,
      editing,
      heading: editing ? p.t("seg.edit.title") : p.t("seg.new.title"),
      action: editing ? `/console/segments/${f.id}` : "/console/segments",
      cancelHref: editing ? `/console/segments/${f.id}` : "/console/segments",
      values: f.values,
      errors: f.errors,
      caret: f.caret,
      canWrite: can(p.principal.role, "segments:write"),
      examples: EXAMPLES.map((e) => ({ expression: e, href: `/console/segments/new?expression=${encodeURIComponent(e)}` })),
      preview: f.preview
        ? {
            count: f.preview.count.toLocaleString("zh-CN"),
            text: p.t("seg.preview.count", { n: f.preview.count.toLocaleString("zh-CN") }),
            sample: f.preview.sample.map((c) => memberModel(p, c)),
            more: f.preview.count > f.preview.sample.length ? p.t("seg.preview.more", { n: f.preview.sample.length }) : undefined,
          }
        : undefined,
    },
    { title: editing ? p.t("seg.edit.title") : p.t("seg.new.title"), section: "segments", status },
  );
}
