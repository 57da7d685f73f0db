/**
 * Roles and what each may do. Every route names the permission it needs; services check it again
 * (defence in depth) and apply row-level scope (a consultant sees only the contacts they own).
 */
/** manager (顾问主管): sees and routes every lead and contact, without admin settings. */
export const ROLES = ["admin", "manager", "marketing", "consultant", "reviewer"] as const;
export type Role = (typeof ROLES)[number];

export const PERMISSIONS = {
  "contacts:read": ["admin", "manager", "marketing", "consultant"],
  "contacts:write": ["admin", "manager", "marketing", "consultant"],
  "contacts:import": ["admin", "marketing"],
  "events:read": ["admin", "manager", "marketing", "consultant"],
  "events:write": ["admin", "marketing"],
  "tags:read": ["admin", "manager", "marketing", "consultant"],
  "staff:read": ["admin"],
  "staff:write": ["admin"],
  "clinics:read": ["admin", "manager", "marketing", "consultant", "reviewer"],
  "clinics:write": ["admin"],
  "tokens:manage": ["admin"],
  "audit:read": ["admin"],
  "queues:read": ["admin"],
  "wecom:manage": ["admin"],
  "channels:manage": ["admin", "marketing"],
  "segments:read": ["admin", "marketing"],
  "rules:read": ["admin", "marketing"],
  "rules:write": ["admin", "marketing"],
  "segments:write": ["admin", "marketing"],
  "compliance:check": ["admin", "manager", "marketing", "consultant", "reviewer"],
  "posts:read": ["admin", "marketing", "reviewer"],
  "posts:write": ["admin", "marketing"],
  "posts:review": ["admin", "reviewer"],
  "leads:read": ["admin", "manager", "consultant"],
  "leads:write": ["admin", "manager", "marketing", "consultant"],
  /** Work a lead: record contact attempts and consultation outcomes, do SOP tasks (consultants: their own). */
  "leads:work": ["admin", "manager", "consultant"],
  "leads:claim": ["consultant"],
  "leads:assign": ["admin", "manager"],
  "leads:settings": ["admin", "manager"],
  /** Content calendars: read them and lint a definition; write: create, edit and publish (entries become posts in review). */
  "calendars:read": ["admin", "manager", "marketing"],
  "calendars:write": ["admin", "marketing"],
  /** Enroll a contact in a relative calendar by hand (e.g. aftercare the patient asked for); consultants their own contacts. */
  "calendars:enroll": ["admin", "manager", "marketing", "consultant"],
  /** Record appointments, visits, consultations, purchases and refunds (consultants: for their own contacts). */
  "conversions:write": ["admin", "manager", "marketing", "consultant"],
  /** Import conversions from a CSV file. */
  "conversions:import": ["admin", "manager", "marketing"],
  /** The WeCom chat sidebar (聊天工具栏): its group-chat panel and the script library (话术库), releasing approved scripts into a chat through the gate (consultants: their own contacts and groups). */
  "scripts:use": ["admin", "manager", "consultant"],
  /** Post-visit follow-ups (回访): see and complete them (consultants: their own). */
  "followups:work": ["admin", "manager", "consultant"],
  /** Funnel metrics, attribution, scorecards and alerts on the dashboard. */
  "metrics:read": ["admin", "manager", "marketing"],
  /** A consultant's own scorecard. */
  "scorecard:own": ["admin", "manager", "consultant"],
  /** Anomaly alert rules and analytics settings (attribution window, follow-up timing). */
  "analytics:manage": ["admin", "manager"],
} as const satisfies Record<string, readonly Role[]>;

export type Permission = keyof typeof PERMISSIONS;

/** Roles that see phone numbers in clear; everyone else sees 138****1234. */
export const PII_ROLES: readonly Role[] = ["admin", "manager", "consultant"];

export function can(role: Role, permission: Permission): boolean {
  return (PERMISSIONS[permission] as readonly Role[]).includes(role);
}

export function seesPii(role: Role): boolean {
  return PII_ROLES.includes(role);
}

/** Consultants work only their own book of contacts; other roles see the whole tenant. */
export function ownsOnly(role: Role): boolean {
  return role === "consultant";
}
