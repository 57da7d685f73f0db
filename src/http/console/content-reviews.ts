import { Hono } from "hono";
import { can } from "../../domain/auth/permissions";
import { renderPost, DEFAULT_SAMPLE_DATA, type PostFinding } from "../../domain/compliance/posts";
import { postDetail, reviewDesk, type PostDetail, type PostUse } from "../../services/posts/review-desk";
import { reviewPost, type ReviewComment } from "../../services/posts/posts";
import type { AppEnv } from "../types";
import { labelOr, refusal, reviewBadge, whenText, type FormState } from "./content-kit";
import { errorPage, formOf, page, type Page, isUuid } from "./kit";
import { withQuery } from "./views";

const QUEUE_PAGE = 25;

/** A run of the copy: plain text, or a finding marked in place with its number. */
interface Segment {
  text: string;
  mark?: { n: number; severity: string; title: string };
}

/**
 * The copy with each finding marked where it is (offsets are UTF-16, as JavaScript slices). Of
 * overlapping findings the first keeps the mark; every finding is listed below the copy all the same.
 */
export function markedSegments(text: string, marks: { n: number; start: number; end: number; severity: string; title: string }[]): Segment[] {
  const out: Segment[] = [];
  let at = 0;
  for (const m of [...marks].sort((a, b) => a.start - b.start || b.end - a.end)) {
    if (m.start < at || m.end > text.length || m.end <= m.start) continue;
    if (m.start > at) out.push({ text: text.slice(at, m.start) });
    out.push({ text: text.slice(m.start, m.end), mark: { n: m.n, severity: m.severity, title: m.title } });
    at = m.end;
  }
  if (at < text.length) out.push({ text: text.slice(at) });
  return out;
}

const sameFinding = (c: ReviewComment, f: PostFinding) => c.term === f.term && c.start === f.start && c.end === f.end && (c.in === undefined || c.in === f.in);

/** Where the post goes: its calendar entries and when they are next due. */
function usesModel(p: Page, uses: PostUse[], now: number) {
  const calendarsVisible = can(p.principal.role, "calendars:read");
  return uses.map((u) => ({
    calendar: u.calendarName,
    entry: u.entryTitle ? `${u.entryTitle}（${u.entryKey}）` : u.entryKey,
    href: calendarsVisible ? `/console/calendars/${u.calendarId}/entries/${encodeURIComponent(u.entryKey)}` : undefined,
    when: u.when && u.when.kind !== "at" ? whenText(p.t, u.when) : undefined,
    due: u.dueAt ? p.fmt.dateTime(u.dueAt) : p.t("review.due.perRecipient"),
    overdue: u.dueAt !== null && Date.parse(u.dueAt) < now,
  }));
}

/**
 * The review panel of a post: the copy with every finding marked in place, the findings (category,
 * law, suggested rewrite, the latest decision's comment on each), the review history with names,
 * and, for a reviewer who may decide now, the decision form with a comment field per finding.
 * The calendar's entry page shows the same panel read-only.
 */
export function reviewPanel(p: Page, d: PostDetail, opts: { decide?: boolean; form?: FormState } = {}) {
  const post = d.post;
  const t = p.t;
  const now = p.ctx.deps.now().getTime();
  const reviews = post.reviews;
  const latest = [...reviews].reverse().find((r) => r.contentHash === post.contentHash) ?? null;
  const findings = post.findings.map((f, i) => ({ f, n: i + 1 }));
  const title = (f: PostFinding) => `${labelOr(t, `review.cat.${f.category}`, f.category)} · ${f.basis}`;
  const section = (where: PostFinding["in"], text: string | null, label: string) => {
    if (!text) return null;
    const mine = findings.filter(({ f }) => f.in === where);
    return { where, label, segments: markedSegments(text, mine.map(({ f, n }) => ({ n, start: f.start, end: f.end, severity: f.severity, title: title(f) }))) };
  };
  const rendered = (() => {
    try {
      return renderPost(post.body, { ...DEFAULT_SAMPLE_DATA, ...post.sampleData });
    } catch {
      return post.body;
    }
  })();
  const form = opts.form ?? { values: {}, errors: {} };
  const me = p.principal.staffId;
  return {
    id: post.id,
    contentHash: post.contentHash,
    kind: labelOr(t, `review.kind.${post.kind}`, post.kind),
    badge: reviewBadge(t, post.status, { at: post.reviewLevel, of: post.levelsRequired }),
    levels: post.levelsRequired,
    levelText: post.status === "in_review" && post.reviewLevel ? t("review.level", { at: post.reviewLevel, of: post.levelsRequired }) : t("review.levels", { n: post.levelsRequired }),
    author: d.authorName ?? "—",
    submitted: p.fmt.dateTime(post.submittedAt),
    listVersion: post.listVersion ? post.listVersion.slice(0, 8) : "—",
    blocking: post.blocking,
    uses: usesModel(p, d.uses, now),
    sections: [section("title", post.title, t("review.in.title")), section("body", post.body, t("review.in.body")), rendered !== post.body ? section("rendered", rendered, t("review.in.rendered")) : null].filter(Boolean),
    findings: findings.map(({ f, n }) => {
      const said = latest?.comments.find((c) => sameFinding(c, f));
      return {
        n,
        field: `c${n - 1}`,
        term: f.term,
        termShown: f.term !== f.matched ? f.term : undefined,
        matched: f.matched,
        where: t(`review.in.${f.in}`),
        category: labelOr(t, `review.cat.${f.category}`, f.category),
        severity: f.severity,
        severityLabel: labelOr(t, `review.sev.${f.severity}`, f.severity),
        basis: f.basis,
        suggestion: f.suggestion,
        comment: said?.comment,
        commentBy: said && latest ? t("review.commentBy", { name: latest.reviewerName ?? t("review.someone"), decision: t(`review.decision.${latest.decision}`) }) : undefined,
        value: form.values[`c${n - 1}`] ?? "",
        error: form.errors[`c${n - 1}`],
      };
    }),
    history: [...reviews].reverse().map((r) => ({
      level: t("review.level.n", { n: r.level }),
      who: r.reviewerStaffId === me ? t("review.me") : (r.reviewerName ?? t("review.someone")),
      at: r.at,
      atText: p.fmt.dateTime(r.at),
      decision: r.decision,
      decisionLabel: t(`review.decision.${r.decision}`),
      note: r.note,
      overrideReason: r.overrideReason,
      earlier: r.contentHash !== post.contentHash,
      comments: r.comments.map((c) => ({ term: c.term, where: c.in ? t(`review.in.${c.in}`) : "", comment: c.comment })),
    })),
    decide: opts.decide
      ? {
          action: `/console/reviews/${post.id}`,
          values: form.values,
          errors: form.errors,
          formError: form.formError,
          override: post.blocking && p.principal.role === "admin",
        }
      : undefined,
  };
}

/** Why the signed-in reviewer cannot decide on this post now, or null when they can. */
function cannotDecide(p: Page, d: PostDetail): string | null {
  const post = d.post;
  const me = p.principal.staffId;
  if (post.status !== "in_review") return p.t("review.cannot.status", { status: reviewBadge(p.t, post.status).label });
  if (post.createdByStaffId === me) return p.t("review.cannot.own");
  const mine = post.reviews.find((r) => r.contentHash === post.contentHash && r.reviewerStaffId === me);
  if (mine) return p.t("review.cannot.again", { level: mine.level });
  return null;
}

/** The reviewers' pages: the queue by due time, a post with its findings marked in place, the decision. */
export function reviewPages(timeZone: string) {
  const app = new Hono<AppEnv>();

  app.get("/console/reviews", page(timeZone, "posts:review", async (p) => {
    const cursor = p.c.req.query("cursor") || undefined;
    const desk = await reviewDesk({ ctx: p.ctx, input: { limit: QUEUE_PAGE, cursor } });
    const now = p.ctx.deps.now().getTime();
    const done = p.c.req.query("done");
    const base = new URL(p.url);
    return p.html(
      "review-queue",
      {
        flash: done === "approve" ? p.t("review.done.approve") : done === "reject" ? p.t("review.done.reject") : undefined,
        items: desk.items.map(({ post, dueAt, uses }) => {
          const first = uses[0];
          const left = dueAt ? (Date.parse(dueAt) - now) / 1000 : null;
          return {
            id: post.id,
            excerpt: post.body.length > 60 ? `${post.body.slice(0, 60)}…` : post.body,
            kind: labelOr(p.t, `review.kind.${post.kind}`, post.kind),
            where: first ? `${first.calendarName} · ${first.entryTitle ?? first.entryKey}` : p.t("review.where.none"),
            more: uses.length > 1 ? p.t("review.where.more", { n: uses.length - 1 }) : undefined,
            level: p.t("review.level", { at: post.reviewLevel ?? 1, of: post.levelsRequired }),
            findings: post.findings.length,
            blocking: post.blocking,
            dueAt,
            dueText: dueAt ? p.fmt.dateTime(dueAt) : p.t("review.due.perRecipient"),
            countdown: left === null ? "" : p.t(left < 0 ? "review.due.over" : "review.due.left", { d: p.fmt.duration(left) }),
            overdue: left !== null && left < 0,
            submitted: p.fmt.dateTime(post.submittedAt),
          };
        }),
        firstHref: cursor ? withQuery(base, { cursor: undefined, done: undefined }) : undefined,
        nextHref: desk.nextCursor ? withQuery(base, { cursor: desk.nextCursor, done: undefined }) : undefined,
        truncated: desk.truncated,
      },
      { title: p.t("review.queue.title"), section: "reviews" },
    );
  }));

  const postPage = async (p: Page, id: string, form?: FormState, status = 200) => {
    const d = await postDetail({ ctx: p.ctx, id });
    const why = cannotDecide(p, d);
    const panel = reviewPanel(p, d, { decide: !why, form });
    return p.html("review-post", { panel, why, back: "/console/reviews" }, { title: p.t("review.post.title"), section: "reviews", status });
  };

  app.get("/console/reviews/:id", page(timeZone, "posts:review", async (p) => {
    const id = p.c.req.param("id");
    if (!isUuid(id)) return errorPage(p, 404);
    return postPage(p, id);
  }));

  app.post("/console/reviews/:id", page(timeZone, "posts:review", async (p) => {
    const id = p.c.req.param("id");
    if (!isUuid(id)) return errorPage(p, 404);
    const f = await formOf(p.c);
    const d = await postDetail({ ctx: p.ctx, id });
    const comments: ReviewComment[] = [];
    // comments[k] came from the form field commentField[k] (a finding's number).
    const commentField: string[] = [];
    d.post.findings.forEach((x, i) => {
      const text = (f[`c${i}`] ?? "").trim();
      if (!text) return;
      comments.push({ term: x.term, start: x.start, end: x.end, in: x.in, comment: text });
      commentField.push(`c${i}`);
    });
    const input = {
      decision: f.decision,
      // The content the reviewer read: a decision on copy changed since is refused (409).
      contentHash: f.contentHash,
      comments,
      note: f.note?.trim() || undefined,
      overrideReason: f.overrideReason?.trim() || undefined,
    };
    try {
      await reviewPost({ ctx: p.ctx, id, input });
    } catch (err) {
      const r = refusal(p, err, (path) => {
        if (path === "note" || path === "overrideReason" || path === "decision") return path;
        const m = /^comments\[(\d+)\]/.exec(path);
        return m ? (commentField[Number(m[1])] ?? null) : null;
      }, {
        prefix: "review.formError",
        // Approving banned wording: said in the reviewer's words (an admin's override reason, or why a reviewer cannot).
        message: (field) => (field === "overrideReason" ? p.t(p.principal.role === "admin" ? "review.err.overrideAdmin" : "review.err.override") : undefined),
      });
      if (!r) throw err;
      return postPage(p, id, { values: f, errors: r.errors, formError: r.formError }, r.status);
    }
    return p.c.redirect(`/console/reviews?done=${f.decision === "reject" ? "reject" : "approve"}`, 303);
  }));

  return app;
}
