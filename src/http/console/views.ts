import Handlebars from "handlebars";

/** Console views: server-rendered, HTML-escaped by handlebars, compiled once. */
const hb = Handlebars.create();

const layout = hb.compile(`<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>{{title}} · 私域 Siyu</title>
<style>
:root{--fg:#1f2329;--muted:#646a73;--line:#dee0e3;--brand:#07c160;--bg:#f5f6f7}
*{box-sizing:border-box}body{margin:0;font:14px/1.6 -apple-system,"PingFang SC","Microsoft YaHei",sans-serif;color:var(--fg);background:var(--bg)}
header{background:#fff;border-bottom:1px solid var(--line);padding:10px 24px;display:flex;gap:16px;align-items:center}
header b{color:var(--brand);font-size:16px}header .sp{flex:1}main{max-width:1100px;margin:24px auto;padding:0 24px}
.card{background:#fff;border:1px solid var(--line);border-radius:8px;padding:20px;margin-bottom:16px}
table{width:100%;border-collapse:collapse}th,td{text-align:left;padding:8px;border-bottom:1px solid var(--line)}th{color:var(--muted);font-weight:500}
input{width:100%;padding:8px;border:1px solid var(--line);border-radius:6px;font:inherit}label{display:block;margin:12px 0 4px;color:var(--muted)}
button{background:var(--brand);color:#fff;border:0;border-radius:6px;padding:8px 16px;font:inherit;cursor:pointer}button.link{background:none;color:var(--muted);padding:0}
.err{color:#d83931;margin:8px 0}.muted{color:var(--muted)}.empty{text-align:center;color:var(--muted);padding:32px}
.login{max-width:380px;margin:80px auto}
</style></head><body>
{{#if principal}}<header><b>私域 Siyu</b><span>{{tenant}}</span><span class="sp"></span><span>{{principal.name}} · {{roleLabel}}</span>
<a href="/docs">API</a><form method="post" action="/logout" style="margin:0"><button class="link">退出</button></form></header>{{/if}}
<main>{{{body}}}</main></body></html>`);

const login = hb.compile(`<div class="card login"><h2>登录 私域 Siyu</h2>
{{#if error}}<p class="err" role="alert">{{error}}</p>{{/if}}
<form method="post" action="/login">
<label for="tenant">机构代码</label><input id="tenant" name="tenant" value="{{tenant}}" required>
<label for="email">邮箱</label><input id="email" name="email" type="email" value="{{email}}" autocomplete="username" required>
<label for="password">密码</label><input id="password" name="password" type="password" autocomplete="current-password" required>
<p><button type="submit">登录</button></p></form>
{{#if hint}}<p class="muted">{{hint}}</p>{{/if}}</div>`);

const home = hb.compile(`{{#unless noAccess}}<div class="card"><h2>{{#if ownOnly}}我的客户{{else}}客户{{/if}}</h2>
{{#if contacts.length}}<table><thead><tr><th>姓名</th><th>手机</th><th>来源</th><th>最近互动</th><th>添加时间</th></tr></thead><tbody>
{{#each contacts}}<tr><td>{{#if name}}{{name}}{{else}}<span class="muted">未命名</span>{{/if}}</td><td>{{phone}}</td><td>{{source}}</td><td>{{lastEventAt}}</td><td>{{createdAt}}</td></tr>{{/each}}
</tbody></table>{{#if more}}<p class="muted">只显示最新 {{contacts.length}} 位；完整列表与筛选见 API <code>GET /v1/contacts</code>。</p>{{/if}}
{{else}}<p class="empty">还没有客户。{{#if canImport}}可以通过 <code>npx siyu import-contacts 文件.csv</code> 导入，或在企业微信添加客户后自动同步。{{else}}客户分配给你后会出现在这里。{{/if}}</p>{{/if}}</div>{{/unless}}
{{#if noAccess}}<div class="card"><p class="empty">你的角色（{{roleLabel}}）在这里没有客户视图；审核队列将在内容审核上线后显示。</p></div>{{/if}}`);

export const ROLE_LABELS: Record<string, string> = { admin: "管理员", marketing: "运营", consultant: "咨询师", reviewer: "合规审核" };

export function renderPage(opts: { title: string; body: string; principal?: { name: string; role: string } | undefined; tenant?: string | undefined }): string {
  return layout({ ...opts, roleLabel: opts.principal ? ROLE_LABELS[opts.principal.role] : undefined });
}

export const views = { login, home };
