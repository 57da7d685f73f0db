import { eq, sql } from "drizzle-orm";
import { trackedLinks } from "../../db/schema/index";
import { isRobotRequest } from "../../domain/links/crawlers";
import { ingestEvents } from "../events/ingest";
import { systemCtx, withTransaction, type Ctx, type ServiceDeps } from "../context";

/** The codes trackLinks makes (10 URL-safe characters); anything else is not looked up. */
export const LINK_CODE_RE = /^[A-Za-z0-9_-]{6,32}$/;
/** A second open of the same link within this window is the same click (double taps, reloads). */
export const REPEAT_WINDOW_MS = 60_000;
/** The query parameter an article / landing page finds its code in, to report dwell time. */
export const CODE_PARAM = "siyu_l";

type LinkRow = typeof trackedLinks.$inferSelect;

async function findLink(deps: ServiceDeps, code: string): Promise<LinkRow | null> {
  if (!LINK_CODE_RE.test(code)) return null;
  // Codes are global (the primary key): the link names its tenant.
  const [row] = await deps.db.select().from(trackedLinks).where(eq(trackedLinks.code, code));
  return row ?? null;
}

/**
 * Where a click goes. Links to a declared article or landing page (trackLinks' `articles`) carry
 * their code as ?siyu_l=… so the page can report dwell time to POST /l/{code}/dwell; other URLs
 * are left as written (only non-ASCII characters percent-encoded).
 */
export function destination(link: Pick<LinkRow, "url" | "code" | "articleId">): string {
  // A Location header must be ASCII: raw Chinese in a link card's URL is percent-encoded.
  const ascii = (u: string) => (/^[\x21-\x7e]*$/.test(u) ? u : encodeURI(u));
  if (!link.articleId) return ascii(link.url);
  try {
    const u = new URL(link.url);
    u.searchParams.set(CODE_PARAM, link.code);
    return u.href;
  } catch {
    return ascii(link.url);
  }
}

/** What an article_read from this link reports: the declared article, else the URL itself. */
function articleData(link: LinkRow): { articleId: string; topic?: string } {
  return { articleId: (link.articleId ?? link.url).slice(0, 200), ...(link.topic ? { topic: link.topic.slice(0, 200) } : {}) };
}

export interface FollowResult {
  location: string;
  /** False for robots (link previews, scanners) and repeats within REPEAT_WINDOW_MS. */
  counted: boolean;
  /** The article_read event stored for this click, when counted and the link names a contact. */
  eventId: string | null;
}

/**
 * A click on /l/{code}: count it (clicks, first and last click) and store an article_read event for
 * the link's contact before the redirect answers, so the events worker moves their tags. Robots and
 * repeats still get the redirect but are not counted. Null for an unknown code.
 */
export async function followLink({ deps, code, method, userAgent, requestId }: { deps: ServiceDeps; code: string; method: string; userAgent: string | undefined; requestId?: string | undefined }): Promise<FollowResult | null> {
  const link = await findLink(deps, code);
  if (!link) return null;
  const location = destination(link);
  if (isRobotRequest(method, userAgent)) return { location, counted: false, eventId: null };
  const ctx = systemCtx(deps, link.tenantId, "links", requestId);
  return withTransaction(ctx, async (tx, ctx) => {
    const now = ctx.deps.now();
    // The row lock orders concurrent clicks on one link: the second sees the first's last_click_at.
    const [row] = await tx.select().from(trackedLinks).where(eq(trackedLinks.code, code)).for("update");
    if (!row) return { location, counted: false, eventId: null };
    if (row.lastClickAt && now.getTime() - row.lastClickAt.getTime() < REPEAT_WINDOW_MS) return { location, counted: false, eventId: null };
    const [updated] = await tx
      .update(trackedLinks)
      .set({ clicks: sql`${trackedLinks.clicks} + 1`, firstClickAt: row.firstClickAt ?? now, lastClickAt: now })
      .where(eq(trackedLinks.code, code))
      .returning({ clicks: trackedLinks.clicks });
    if (!row.contactId) return { location, counted: true, eventId: null };
    // One event per counted click: a retried request after a crash is the same click.
    const r = await linkRead(ctx, row, { key: `link-${code}-${updated!.clicks}`, click: updated!.clicks, at: now, via: "link" });
    return { location, counted: true, eventId: r.ids[0] ?? null };
  });
}

export type DwellOutcome = "recorded" | "duplicate" | "ignored";

/**
 * Dwell time a landing page reports for its latest click: a second article_read for the same
 * article, carrying dwellSeconds, so rules can sum or compare it (NUMERIC_FIELDS). One report per
 * counted click (later ones are duplicates: send it once, on pagehide); before any click, or for a
 * link without a contact, nothing is recorded. Null for an unknown code.
 */
export async function recordDwell({ deps, code, seconds, requestId }: { deps: ServiceDeps; code: string; seconds: number; requestId?: string | undefined }): Promise<DwellOutcome | null> {
  const link = await findLink(deps, code);
  if (!link) return null;
  if (!link.contactId || link.clicks === 0 || !link.lastClickAt) return "ignored";
  const ctx = systemCtx(deps, link.tenantId, "links", requestId);
  const r = await linkRead(ctx, link, { key: `link-${code}-${link.clicks}-dwell`, click: link.clicks, at: ctx.deps.now(), via: "link-dwell", dwellSeconds: seconds });
  return r.accepted ? "recorded" : "duplicate";
}

/** The article_read a link reports (a click, or its dwell time), stored through the events inbox. */
function linkRead(ctx: Ctx, link: LinkRow, o: { key: string; click: number; at: Date; via: string; dwellSeconds?: number }) {
  return ingestEvents({
    ctx,
    source: "link",
    input: {
      events: [
        {
          type: "article_read",
          contactId: link.contactId!,
          occurredAt: o.at.toISOString(),
          idempotencyKey: o.key,
          data: { ...articleData(link), ...(o.dwellSeconds !== undefined ? { dwellSeconds: o.dwellSeconds } : {}), via: o.via, linkCode: link.code, click: o.click, ...(link.postId ? { postId: link.postId } : {}), ...(link.sendId ? { sendId: link.sendId } : {}) },
        },
      ],
    },
  });
}
