/**
 * Roles and what each may do. Every route names the permission it needs; services check it again
 * (defence in depth) and apply row-level scope (a consultant sees only the contacts they own).
 */
export const ROLES = ["admin", "marketing", "consultant", "reviewer"] as const;
export type Role = (typeof ROLES)[number];

export const PERMISSIONS = {
  "contacts:read": ["admin", "marketing", "consultant"],
  "contacts:write": ["admin", "marketing", "consultant"],
  "contacts:import": ["admin", "marketing"],
  "events:read": ["admin", "marketing", "consultant"],
  "events:write": ["admin", "marketing"],
  "tags:read": ["admin", "marketing", "consultant"],
  "staff:read": ["admin"],
  "staff:write": ["admin"],
  "clinics:read": ["admin", "marketing", "consultant", "reviewer"],
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
  "compliance:check": ["admin", "marketing", "consultant", "reviewer"],
  "posts:read": ["admin", "marketing", "reviewer"],
  "posts:write": ["admin", "marketing"],
  "posts:review": ["admin", "reviewer"],
} as const satisfies Record<string, readonly Role[]>;

export type Permission = keyof typeof PERMISSIONS;

/** Roles that see phone numbers in clear; everyone else sees 138****1234. */
export const PII_ROLES: readonly Role[] = ["admin", "consultant"];

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
