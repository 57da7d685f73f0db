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

  // ---- content ----

  // ---- consultant ----

  // ---- admin ----
});
