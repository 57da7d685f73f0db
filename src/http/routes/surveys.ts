import { Hono, type Context } from "hono";
import { bodyLimit } from "hono/body-limit";
import { AppError } from "../../errors";
import { answerSurvey, findSurvey, SURVEY_COMMENT_MAX } from "../../services/conversions/surveys";
import { escapeHtml } from "../html";
import { problem } from "../problem";
import type { AppEnv, HttpDeps } from "../types";
import { clientAddress, MinuteLimiter } from "./links";

/**
 * The satisfaction survey (NPS) patients open from the link their consultant sends after a visit:
 * public and outside /v1 (no sign-in; the unguessable token is the key). GET /s/{token} shows the
 * question, POST /s/{token} (a form, or JSON) stores the answer once.
 */


const STYLE = `body{font-family:-apple-system,"PingFang SC","Microsoft YaHei",sans-serif;color:#333;margin:0;background:#f7f7f7}
main{max-width:26rem;margin:0 auto;padding:1.5rem 1rem 2rem}h1{font-size:1.2rem;margin:.5rem 0 1rem;line-height:1.5}p{line-height:1.6;color:#666;margin:.25rem 0}
.card{background:#fff;border-radius:12px;padding:1.25rem 1rem;box-shadow:0 1px 3px rgba(0,0,0,.06)}
.scores{display:grid;grid-template-columns:repeat(6,1fr);gap:.5rem;margin:1rem 0 .25rem}
.scores input{position:absolute;opacity:0;width:1px;height:1px}
.scores label{display:block;text-align:center;padding:.7rem 0;border:1px solid #ddd;border-radius:8px;font-size:1.05rem;background:#fff}
.scores input:checked+label{background:#07c160;border-color:#07c160;color:#fff}
.scores input:focus-visible+label{outline:2px solid #07c160;outline-offset:2px}
.ends{display:flex;justify-content:space-between;font-size:.8rem;color:#999;margin-bottom:1rem}
textarea{box-sizing:border-box;width:100%;min-height:6rem;border:1px solid #ddd;border-radius:8px;padding:.6rem;font:inherit;resize:vertical}
button{width:100%;margin-top:1rem;padding:.8rem;border:0;border-radius:8px;background:#07c160;color:#fff;font-size:1rem}
.error{color:#d93026;margin:.5rem 0}.center{text-align:center;padding-top:3rem}`;

function page(title: string, body: string): string {
  return `<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex"><title>${escapeHtml(title)}</title><style>${STYLE}</style></head>
<body><main>${body}</main></body></html>`;
}

function questionPage(clinicName: string, opts: { error?: string; score?: number | null; comment?: string } = {}): string {
  const radios = Array.from({ length: 11 }, (_, n) => `<input type="radio" name="score" id="s${n}" value="${n}" required${opts.score === n ? " checked" : ""}><label for="s${n}">${n}</label>`).join("");
  return page(
    "满意度调查",
    `<div class="card"><p>${escapeHtml(clinicName)}</p>
<h1>您有多大可能向朋友推荐我们？</h1>
<form method="post">
<p>请选择 0-10 分（0 = 完全不可能，10 = 非常可能）</p>
<div class="scores" role="radiogroup" aria-label="推荐可能性评分">${radios}</div>
<div class="ends"><span>完全不可能</span><span>非常可能</span></div>
<label for="comment"><p>您的意见或建议（选填，${SURVEY_COMMENT_MAX} 字以内）</p></label>
<textarea id="comment" name="comment" maxlength="${SURVEY_COMMENT_MAX}">${escapeHtml(opts.comment ?? "")}</textarea>
${opts.error ? `<p class="error" role="alert">${escapeHtml(opts.error)}</p>` : ""}
<button type="submit">提交</button>
</form></div>`,
  );
}

const THANKS = page("感谢您的反馈", `<div class="card center"><h1>感谢您的反馈！</h1><p>您的意见会帮助我们把服务做得更好。</p><p>如有任何需要，请直接在企业微信里联系您的顾问。</p></div>`);
const ALREADY = page("已提交", `<div class="card center"><h1>您已提交过这份问卷</h1><p>感谢您的反馈！每份问卷只需填写一次。</p></div>`);
const NOT_FOUND = page("问卷不存在", `<div class="card center"><h1>问卷不存在或链接已失效</h1><p>这个链接可能复制时不完整。</p><p>如需帮助，请直接在企业微信里联系您的顾问。</p></div>`);
const TOO_MANY = page("请稍后再试", `<div class="card center"><h1>提交太频繁了</h1><p>请一分钟后再试。</p></div>`);

const HEADERS = {
  "cache-control": "no-store",
  "referrer-policy": "no-referrer",
  "x-robots-tag": "noindex",
  "x-content-type-options": "nosniff",
  "content-security-policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
};

const isJson = (c: Context) => /^application\/(.+\+)?json\b/i.test(c.req.header("content-type") ?? "");

export function surveyRoutes(deps: HttpDeps) {
  const app = new Hono<AppEnv>();
  const services = deps.services;
  // Answers are few per patient: 20 a minute per address is plenty and keeps guessing slow.
  const limiter = new MinuteLimiter(20, () => services.now().getTime());

  app.get("/:token", async (c) => {
    const s = await findSurvey({ deps: services, token: c.req.param("token") });
    if (!s) return c.html(NOT_FOUND, 404, HEADERS);
    if (s.answered) return c.html(ALREADY, 200, HEADERS);
    return c.html(questionPage(s.clinicName), 200, HEADERS);
  });

  app.use("/:token", bodyLimit({ maxSize: 16 * 1024, onError: (c) => problem(c, 413, "PAYLOAD_TOO_LARGE", "the body is over the 16384-byte limit") }));
  app.post("/:token", async (c) => {
    const json = isJson(c);
    if (!limiter.allow(clientAddress(c))) return json ? problem(c, 429, "TOO_MANY_REQUESTS", "too many answers from this address; try again in a minute") : c.html(TOO_MANY, 429, HEADERS);
    let input: Record<string, unknown>;
    try {
      if (json) {
        const v: unknown = await c.req.json();
        input = typeof v === "object" && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
      } else {
        const form = await c.req.parseBody();
        input = { score: form.score, ...(typeof form.comment === "string" ? { comment: form.comment } : {}) };
      }
    } catch {
      return json ? problem(c, 400, "MALFORMED_REQUEST", "the body is not valid JSON", [{ field: "(body)", message: "is not valid JSON" }]) : c.html(NOT_FOUND, 400, HEADERS);
    }
    try {
      const r = await answerSurvey({ deps: services, token: c.req.param("token"), input, requestId: c.get("requestId") });
      if (json) return c.json({ surveyId: r.survey.id, score: r.survey.score, category: r.category }, 201);
      return c.html(THANKS, 201, HEADERS);
    } catch (err) {
      if (!(err instanceof AppError) || json) throw err;
      if (err.code === "NOT_FOUND") return c.html(NOT_FOUND, 404, HEADERS);
      if (err.code === "CONFLICT") return c.html(ALREADY, 409, HEADERS);
      if (err.code === "VALIDATION_FAILED") {
        const s = await findSurvey({ deps: services, token: c.req.param("token") });
        const field = err.issues[0]?.field;
        const message = field === "comment" ? `意见请控制在 ${SURVEY_COMMENT_MAX} 字以内` : "请选择 0 到 10 之间的一个分数";
        const score = typeof input.score === "string" && /^\d{1,2}$/.test(input.score) ? Number(input.score) : null;
        return c.html(questionPage(s?.clinicName ?? "", { error: message, score, comment: typeof input.comment === "string" ? input.comment.slice(0, SURVEY_COMMENT_MAX) : "" }), 422, HEADERS);
      }
      throw err;
    }
  });
  return app;
}
