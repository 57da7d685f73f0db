import { can, ownsOnly, type Permission, type Role } from "../../domain/auth/permissions";
import type { MessageKey, Translate } from "./i18n";
import type { NavItem } from "./views";

/**
 * The console's sections: the left nav and the overview tiles. A role sees a section when it
 * holds the section's permission (the same one the API routes and services check), so the nav
 * never offers a page that would answer 403. Add a page: add its section here.
 */
export interface Section {
  key: string;
  href: string;
  /** null: every signed-in role. */
  permission: Permission | null;
  label: (role: Role) => MessageKey;
  desc: MessageKey;
  /** Roles for which /console is this section (their home), so no separate overview item. */
  homeOf?: Role[];
}

export const SECTIONS: readonly Section[] = [
  { key: "home", href: "/console", permission: null, label: () => "nav.home", desc: "nav.home.desc" },
  { key: "workspace", href: "/console/workspace", permission: "leads:read", label: (r) => (ownsOnly(r) ? "nav.workspace" : "nav.workspace.all"), desc: "nav.workspace.desc", homeOf: ["consultant"] },
  { key: "followups", href: "/console/follow-ups", permission: "followups:work", label: () => "nav.followups", desc: "nav.followups.desc" },
  { key: "pool", href: "/console/pool", permission: "leads:claim", label: () => "nav.pool", desc: "nav.pool.desc" },
  { key: "dashboard", href: "/console/dashboard", permission: "metrics:read", label: () => "nav.dashboard", desc: "nav.dashboard.desc" },
  { key: "contacts", href: "/console/contacts", permission: "contacts:read", label: (r) => (ownsOnly(r) ? "nav.contacts.own" : "nav.contacts"), desc: "nav.contacts.desc" },
  { key: "rules", href: "/console/rules", permission: "rules:read", label: () => "nav.rules", desc: "nav.rules.desc" },
  { key: "segments", href: "/console/segments", permission: "segments:read", label: () => "nav.segments", desc: "nav.segments.desc" },
  { key: "calendars", href: "/console/calendars", permission: "calendars:read", label: () => "nav.calendars", desc: "nav.calendars.desc" },
  { key: "reviews", href: "/console/reviews", permission: "posts:review", label: () => "nav.reviews", desc: "nav.reviews.desc" },
  { key: "sends", href: "/console/sends", permission: "calendars:read", label: () => "nav.sends", desc: "nav.sends.desc" },
  { key: "staff", href: "/console/staff", permission: "staff:read", label: () => "nav.staff", desc: "nav.staff.desc" },
  { key: "assignment", href: "/console/assignment", permission: "leads:settings", label: () => "nav.assignment", desc: "nav.assignment.desc" },
  { key: "wecom", href: "/console/wecom", permission: "wecom:manage", label: () => "nav.wecom", desc: "nav.wecom.desc" },
  { key: "sandbox", href: "/console/sandbox", permission: "wecom:manage", label: () => "nav.sandbox", desc: "nav.sandbox.desc" },
  { key: "queues", href: "/console/queues", permission: "queues:read", label: () => "nav.queues", desc: "nav.queues.desc" },
  { key: "audit", href: "/console/audit", permission: "audit:read", label: () => "nav.audit", desc: "nav.audit.desc" },
];

/** The section /console shows to this role. */
export function homeSection(role: Role): Section {
  return SECTIONS.find((s) => s.homeOf?.includes(role)) ?? SECTIONS[0]!;
}

/** The sections this role may open, in nav order (the overview only when it is the role's home). */
export function sectionsFor(role: Role): Section[] {
  const home = homeSection(role);
  return SECTIONS.filter((s) => (s.key === "home" ? home.key === "home" : s.permission === null || can(role, s.permission)));
}

export function navFor(role: Role, t: Translate, current: string | undefined): NavItem[] {
  return sectionsFor(role).map((s) => ({ key: s.key, href: s.href, label: t(s.label(role)), current: s.key === current }));
}
