// Siyu console: small progressive enhancements. Every page works without this file.
/* global document, window, setInterval -- runs in the browser */
document.documentElement.classList.add("js");

document.addEventListener("DOMContentLoaded", () => {
  // Phones: the nav folds behind the menu button.
  const toggle = document.querySelector(".nav-toggle");
  const nav = document.getElementById("sidenav");
  if (toggle && nav) {
    toggle.hidden = false;
    toggle.addEventListener("click", () => {
      const open = !nav.hasAttribute("data-open");
      nav.toggleAttribute("data-open", open);
      toggle.setAttribute("aria-expanded", String(open));
      if (open) nav.querySelector("a")?.focus();
    });
  }

  // Destructive or final actions ask first.
  for (const form of document.querySelectorAll("form[data-confirm]")) {
    form.addEventListener("submit", (e) => {
      if (!window.confirm(form.getAttribute("data-confirm"))) e.preventDefault();
    });
  }

  // The outcome form shows the fields of the chosen outcome only.
  for (const form of document.querySelectorAll("form[data-outcome-form]")) {
    const sync = () => {
      const chosen = form.querySelector("input[name=outcome]:checked")?.value;
      for (const set of form.querySelectorAll("fieldset[data-when]")) set.hidden = Boolean(chosen) && set.getAttribute("data-when") !== chosen;
    };
    form.addEventListener("change", sync);
    sync();
  }

  // First-contact countdowns tick while the page is open.
  const body = document.body;
  const fill = (tpl, values) => tpl.replace(/\{(\w+)\}/g, (all, k) => (k in values ? String(values[k]) : all));
  const duration = (seconds) => {
    const m = Math.max(1, Math.round(Math.abs(seconds) / 60));
    if (m < 60) return fill(body.dataset.durMin, { m });
    if (m < 24 * 60) return fill(body.dataset.durHmin, { h: Math.floor(m / 60), m: m % 60 });
    return fill(body.dataset.durDh, { d: Math.floor(m / 1440), h: Math.floor((m % 1440) / 60) });
  };
  const tick = () => {
    for (const el of document.querySelectorAll(".sla[data-due]")) {
      const left = (Date.parse(el.getAttribute("data-due")) - Date.now()) / 1000;
      el.textContent = fill(left < 0 ? body.dataset.slaOver : body.dataset.slaLeft, { d: duration(left) });
      el.classList.toggle("overdue", left < 0);
      el.closest("tr")?.classList.toggle("overdue", left < 0);
    }
  };
  if (document.querySelector(".sla[data-due]")) setInterval(tick, 30_000);

  // ---- marketing ----
  // A refusal's "line N" link puts the cursor on that line of the rules editor.
  const rulesEditor = document.getElementById("r-definition");
  if (rulesEditor) {
    for (const link of document.querySelectorAll("#r-refusals a[data-line]")) {
      link.addEventListener("click", (e) => {
        e.preventDefault();
        const line = Number(link.getAttribute("data-line"));
        const lines = rulesEditor.value.split("\n");
        const start = lines.slice(0, line - 1).reduce((n, l) => n + l.length + 1, 0);
        rulesEditor.focus();
        rulesEditor.setSelectionRange(start, start + (lines[line - 1] ?? "").length);
        const lineHeight = parseFloat(window.getComputedStyle(rulesEditor).lineHeight) || 20;
        rulesEditor.scrollTop = Math.max(0, (line - 5) * lineHeight);
      });
    }
  }

  // ---- content ----
  // Calendar entry forms: only the fields of the chosen timing and kind of entry (a field the server refused stays visible).
  for (const form of document.querySelectorAll("form[data-entry-form]")) {
    const keep = (el) => el.querySelector("[aria-invalid=true]") !== null;
    const sync = () => {
      const when = form.querySelector("input[name=whenKind]:checked")?.value;
      for (const el of form.querySelectorAll("[data-when]")) el.hidden = Boolean(when) && !el.getAttribute("data-when").split(" ").includes(when) && !keep(el);
      const kind = form.querySelector("select[data-entry-kind]")?.value;
      for (const el of form.querySelectorAll("fieldset[data-kinds]")) el.hidden = Boolean(kind) && !el.getAttribute("data-kinds").split(" ").includes(kind) && !keep(el);
    };
    form.addEventListener("change", sync);
    sync();
  }


  // ---- consultant ----
  // A disclosure with a form (skip a task or a follow-up, reassign a lead): opening it puts the
  // cursor in its first field; a refused one comes back open with the cursor on the refused field.
  const disclosures = document.querySelectorAll("details.task-skip, details.fu-skip, details.team-reassign");
  for (const d of disclosures) {
    d.addEventListener("toggle", () => {
      if (d.open) (d.querySelector("[aria-invalid=true]") ?? d.querySelector("input:not([type=hidden]), select, textarea"))?.focus();
    });
  }
  const refused = document.querySelector(".task-skip [aria-invalid=true], .fu-skip [aria-invalid=true], .fu-done [aria-invalid=true], .team-reassign [aria-invalid=true]");
  if (refused) refused.focus();

  // ---- admin ----
  // Pages that wait for background work (a WeCom sync, callbacks being processed) reload
  // themselves every few seconds, unless someone is typing in a form on them.
  const waiting = document.querySelector("[data-admin-refresh]");
  if (waiting) {
    let typed = false;
    document.addEventListener("input", () => (typed = true));
    const seconds = Math.max(2, Number(waiting.getAttribute("data-admin-refresh")) || 5);
    window.setTimeout(function again() {
      const active = document.activeElement;
      const busy = typed || (active && /^(INPUT|SELECT|TEXTAREA)$/.test(active.tagName));
      if (busy) window.setTimeout(again, seconds * 1000);
      else window.location.reload();
    }, seconds * 1000);
  }
});
