import { describe, expect, it } from "vitest";
import { hasMessage, translator } from "../../src/http/console/i18n";
import { navFor, sectionsFor } from "../../src/http/console/nav";
import { renderPage, templateSources } from "../../src/http/console/views";
import { ROLES } from "../../src/domain/auth/permissions";

const placeholders = (s: string) => [...s.matchAll(/\{(\w+)\}/g)].map((m) => m[1]).sort();

describe("console views and catalogue", () => {
  it("every key a template asks for exists in the catalogue", () => {
    const missing: string[] = [];
    for (const [name, src] of Object.entries(templateSources())) {
      for (const m of src.matchAll(/\{\{t "([^"]+)"/g)) if (!hasMessage(m[1]!)) missing.push(`${name}: ${m[1]}`);
    }
    expect(missing).toEqual([]);
  });

  it("English fills the same placeholders as Chinese", () => {
    const zh = translator("zh-CN");
    const en = translator("en");
    const keys = Object.entries(templateSources()).flatMap(([, src]) => [...src.matchAll(/\{\{t "([^"]+)"/g)].map((m) => m[1]!));
    for (const key of new Set(keys)) {
      if (!hasMessage(key)) continue;
      expect(placeholders(en(key)), key).toEqual(placeholders(zh(key)));
    }
  });

  it("escapes what it prints: a name is text, never markup", () => {
    const t = translator("zh-CN");
    const html = renderPage(
      "home",
      { name: `<script>alert(1)</script>`, sections: [{ href: "/console/contacts", label: `"><img src=x onerror=alert(1)>`, desc: "d" }] },
      { locale: "zh-CN", t, title: `<b>x</b>`, url: new URL("http://localhost/console?q=%22%3E"), principal: { name: `<i>王</i>`, role: "admin" }, tenant: "demo", nav: navFor("admin", t, "home") },
    );
    expect(html).not.toMatch(/<script>alert|<img src=x|<i>王|<b>x<\/b>/);
    expect(html).toContain("&lt;script&gt;alert(1)&lt;/script&gt;");
    expect(html).toContain('lang="zh-CN"');
  });

  it("the nav of each role offers exactly the sections its permissions allow", () => {
    const got = Object.fromEntries(ROLES.map((r) => [r, sectionsFor(r).map((s) => s.key)]));
    expect(got).toEqual({
      admin: ["home", "workspace", "followups", "dashboard", "contacts", "rules", "segments", "calendars", "reviews", "sends", "staff", "assignment", "wecom", "sandbox", "queues", "audit"],
      manager: ["home", "workspace", "followups", "dashboard", "contacts", "calendars", "sends", "assignment"],
      marketing: ["home", "dashboard", "contacts", "rules", "segments", "calendars", "sends"],
      consultant: ["workspace", "followups", "pool", "contacts"],
      reviewer: ["home", "reviews"],
    });
  });
});
