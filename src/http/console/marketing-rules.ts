import { Hono } from "hono";
import { can } from "../../domain/auth/permissions";
import { AppError, ValidationError } from "../../errors";
import { contactsByIds } from "../../services/contacts/by-ids";
import { tagRuleVersionPeople } from "../../services/tagging/rule-history";
import { discardDraft, dryRunDraft, getTagRules, publishDraft, rollbackTo, saveDraft } from "../../services/tagging/tag-rules";
import { listTags } from "../../services/tags/list-tags";
import type { AppEnv } from "../types";
import type { MessageKey } from "./i18n";
import { formOf, page, type Page } from "./kit";
import { definitionYaml, parseDraftYaml, placeRefusals, ruleGroups, type Definition, type Refusal } from "./marketing-present";

const VERSIONS_SHOWN = 20;
/** Rule set statuses with a label of their own; any other (archived) reads as archived. */
const LABELLED_STATUSES = new Set(["draft", "published", "discarded"]);

interface EditorState {
  text: string;
  note: string;
  refusals: Refusal[];
  noteError?: string | undefined;
}

/**
 * Tag rules (标签规则): the published set summarised by tag group, the draft in an editor (YAML, the
 * format of tagging-rules/) whose refusals name the rule and the field next to it, a dry run
 * (per tag, who would gain and lose it), publish and roll back (each asks first; the backfill
 * that re-tags every contact is queued by the service), and the version history.
 */
export function rulePages(timeZone: string) {
  const app = new Hono<AppEnv>();

  app.get("/console/rules", page(timeZone, "rules:read", (p) => {
    const done = p.c.req.query("done");
    const v = Number(p.c.req.query("v")) || undefined;
    const flash =
      done === "rolledback"
        ? p.t("rules.done.rolledback", { v, from: Number(p.c.req.query("from")) || "?" })
        : done === "saved" || done === "published" || done === "discarded"
          ? p.t(`rules.done.${done}`, { v })
          : undefined;
    return rulesPage(p, { flash, start: p.c.req.query("start") === "1", allVersions: p.c.req.query("versions") === "all" });
  }));

  app.post("/console/rules/draft", page(timeZone, "rules:write", async (p) => {
    const f = await formOf(p.c);
    const text = f.definition ?? "";
    const note = f.note?.trim() ?? "";
    const editor = (refusals: Refusal[], noteError?: string): EditorState => ({ text, note, refusals, noteError });
    const parsed = parseDraftYaml(text);
    if ("errors" in parsed) return rulesPage(p, { editor: editor(parsed.errors) }, 422);
    const value = parsed.value;
    if (!value || typeof value !== "object" || Array.isArray(value)) return rulesPage(p, { editor: editor([{ ruleId: null, path: "(yaml)", message: p.t("rules.err.notMap"), line: 1 }]) }, 422);
    try {
      const saved = await saveDraft({ ctx: p.ctx, input: { ...value, ...(note ? { note } : {}) } });
      return p.c.redirect(`/console/rules?done=saved&v=${saved.version}#draft`, 303);
    } catch (err) {
      if (!(err instanceof ValidationError)) throw err;
      const noteIssue = err.issues.find((i) => i.field === "note");
      const refusals = placeRefusals(err.issues.filter((i) => i.field !== "note"), parsed);
      return rulesPage(p, { editor: editor(refusals, noteIssue ? p.t("rules.err.note") : undefined) }, 422);
    }
  }));

  app.post("/console/rules/draft/dry-run", page(timeZone, "rules:read", async (p) => {
    const [dry, tagOptions] = await Promise.all([dryRunDraft({ ctx: p.ctx }), can(p.principal.role, "tags:read") ? listTags({ ctx: p.ctx }) : Promise.resolve([])]);
    const groupNames = new Map(tagOptions.map((o) => [o.group, o.groupName]));
    // Names for the samples, in one query, with the signed-in person's view of contacts.
    const people = can(p.principal.role, "contacts:read") ? await contactsByIds({ ctx: p.ctx, ids: dry.changes.flatMap((c) => [...c.sampleGains, ...c.sampleLosses]) }) : new Map();
    const sample = (ids: string[]) => ids.map((id) => ({ id, name: people.get(id)?.name ?? (people.has(id) ? p.t("contacts.unnamed") : id.slice(0, 8)) }));
    const changes = dry.changes.map((c) => ({
      tag: `${c.group}:${c.tag}`,
      groupLabel: groupNames.get(c.group) ?? c.group,
      name: c.tag,
      gains: c.gains,
      losses: c.losses,
      gainsText: c.gains ? `+${c.gains}` : "0",
      lossesText: c.losses ? `−${c.losses}` : "0",
      sampleGains: sample(c.sampleGains),
      sampleLosses: sample(c.sampleLosses),
      moreGains: c.gains > c.sampleGains.length ? p.t("rules.dry.more", { n: c.gains - c.sampleGains.length }) : undefined,
      moreLosses: c.losses > c.sampleLosses.length ? p.t("rules.dry.more", { n: c.losses - c.sampleLosses.length }) : undefined,
    }));
    return p.html(
      "rules-dryrun",
      {
        version: dry.version,
        changes,
        totalGains: changes.reduce((n, c) => n + c.gains, 0),
        totalLosses: changes.reduce((n, c) => n + c.losses, 0),
        canWrite: can(p.principal.role, "rules:write"),
        publishConfirm: p.t("rules.publish.confirm", { v: dry.version }),
      },
      { title: p.t("rules.dry.title", { version: dry.version }), section: "rules" },
    );
  }));

  app.post("/console/rules/draft/publish", page(timeZone, "rules:write", async (p) => {
    const v = await publishDraft({ ctx: p.ctx });
    return p.c.redirect(`/console/rules?done=published&v=${v.version}`, 303);
  }));

  app.post("/console/rules/draft/discard", page(timeZone, "rules:write", async (p) => {
    const v = await discardDraft({ ctx: p.ctx });
    return p.c.redirect(`/console/rules?done=discarded&v=${v.version}`, 303);
  }));

  app.post("/console/rules/rollback", page(timeZone, "rules:write", async (p) => {
    const f = await formOf(p.c);
    const version = Number(f.version);
    if (!Number.isInteger(version) || version < 1) return rulesPage(p, { error: p.t("rules.err.version") }, 422);
    try {
      const v = await rollbackTo({ ctx: p.ctx, version });
      return p.c.redirect(`/console/rules?done=rolledback&v=${v.version}&from=${version}`, 303);
    } catch (err) {
      // Someone published it in the meantime: say so on the page rather than an error page.
      if (err instanceof AppError && err.code === "CONFLICT") return rulesPage(p, { error: p.t("rules.err.alreadyPublished", { v: version }) }, 409);
      throw err;
    }
  }));

  return app;
}

async function rulesPage(p: Page, state: { flash?: string | undefined; error?: string; editor?: EditorState; start?: boolean; allVersions?: boolean }, status = 200): Promise<Response> {
  const [rules, people, tagOptions] = await Promise.all([getTagRules({ ctx: p.ctx }), tagRuleVersionPeople({ ctx: p.ctx }), can(p.principal.role, "tags:read") ? listTags({ ctx: p.ctx }) : Promise.resolve([])]);
  const groupNames = new Map(tagOptions.map((o) => [o.group, o.groupName]));
  const canWrite = can(p.principal.role, "rules:write");
  const pub = rules.published;
  const pubDef = pub.definition as Definition;
  const draft = rules.draft;
  const by = (name: string | null | undefined) => name ?? p.t("rules.by.system");

  const showEditor = Boolean(draft || state.editor || (state.start && canWrite));
  const editor = showEditor
    ? {
        text: state.editor?.text ?? definitionYaml((draft?.definition ?? pubDef) as Definition),
        note: state.editor?.note ?? draft?.note ?? "",
        noteError: state.editor?.noteError,
        refusals: (state.editor?.refusals ?? []).map((r) => ({ ...r, lineText: r.line ? p.t("rules.refusal.line", { line: r.line }) : undefined })),
        unsaved: Boolean(state.editor),
      }
    : undefined;

  const versions = rules.versions.map((v) => {
    const who = people[v.version];
    return {
      version: v.version,
      status: v.status,
      statusLabel: p.t(`rules.status.${LABELLED_STATUSES.has(v.status) ? v.status : "archived"}` as MessageKey),
      current: v.version === pub.version,
      note: v.note ?? "",
      created: p.t("rules.whoWhen", { who: by(who?.createdBy), at: p.fmt.dateTime(v.createdAt) }),
      published: v.publishedAt ? p.t("rules.whoWhen", { who: by(who?.publishedBy), at: p.fmt.dateTime(v.publishedAt) }) : "—",
      rules: v.rules,
      canRollback: canWrite && v.status !== "draft" && v.version !== pub.version && v.publishedAt !== null,
      confirm: p.t("rules.rollback.confirm", { v: v.version }),
    };
  });
  const shown = state.allVersions ? versions : versions.slice(0, VERSIONS_SHOWN);

  return p.html(
    "rules",
    {
      flash: state.flash,
      error: state.error,
      published: {
        version: pub.version,
        note: pub.note,
        meta: p.t("rules.published.meta", { v: pub.version, who: by(people[pub.version]?.publishedBy), at: p.fmt.dateTime(pub.publishedAt), n: pub.rules }),
      },
      params: Object.entries(pubDef.params ?? {}).map(([name, value]) => ({ name, value })),
      needs: Object.entries(pubDef.needs ?? {}).map(([name, words]) => ({ name, words: words.join("、") })),
      groups: ruleGroups(p.t, pubDef, groupNames),
      canWrite,
      draft: draft ? { version: draft.version, meta: p.t("rules.draft.meta", { v: draft.version, who: by(people[draft.version]?.createdBy), at: p.fmt.dateTime(draft.createdAt), n: draft.rules }) } : undefined,
      editor,
      fromPublished: !draft ? p.t("rules.draft.fromPublished", { v: pub.version }) : undefined,
      canDryRun: Boolean(draft) && !editor?.refusals.length,
      canPublish: Boolean(draft) && canWrite && !editor?.refusals.length,
      canDiscard: Boolean(draft) && canWrite,
      publishConfirm: draft ? p.t("rules.publish.confirm", { v: draft.version }) : "",
      discardConfirm: draft ? p.t("rules.discard.confirm", { v: draft.version }) : "",
      versions: shown,
      moreVersions: !state.allVersions && versions.length > shown.length ? p.t("rules.versions.all", { n: versions.length }) : undefined,
    },
    { title: p.t("rules.title"), section: "rules", status },
  );
}
