import { z } from "zod";
import type { staff } from "../../db/schema/index";
import { ROLES } from "../../domain/auth/permissions";

// partialRecord: with an enum key, zod 4's z.record demands every weekday; a shift lists only working days.
const shift = z.partialRecord(
  z.enum(["mon", "tue", "wed", "thu", "fri", "sat", "sun"]),
  z.tuple([z.string().regex(/^\d{2}:\d{2}$/, "HH:MM"), z.string().regex(/^\d{2}:\d{2}$/, "HH:MM")]),
);

export const CreateStaffInput = z.object({
  name: z.string().trim().min(1).max(100),
  email: z.email().max(200),
  role: z.enum(ROLES),
  password: z.string().min(8, "must be at least 8 characters").max(200).optional(),
  wecomUserId: z.string().trim().min(1).max(64).optional(),
  clinicId: z.uuid().optional(),
  skills: z.array(z.string().trim().min(1).max(32)).max(50).optional(),
  capacity: z.number().int().min(0).max(100_000).optional(),
  shift: shift.optional(),
});
export type CreateStaffInput = z.infer<typeof CreateStaffInput>;

export const UpdateStaffInput = CreateStaffInput.partial().extend({
  active: z.boolean().optional(),
  wecomUserId: z.string().trim().min(1).max(64).nullable().optional(),
  clinicId: z.uuid().nullable().optional(),
});
export type UpdateStaffInput = z.infer<typeof UpdateStaffInput>;

export interface StaffView {
  id: string;
  name: string;
  email: string;
  role: (typeof ROLES)[number];
  wecomUserId: string | null;
  clinicId: string | null;
  skills: string[];
  capacity: number;
  shift: Record<string, [string, string]> | null;
  active: boolean;
  canSignIn: boolean;
  createdAt: string;
}

export function toStaffView(r: typeof staff.$inferSelect): StaffView {
  return {
    id: r.id,
    name: r.name,
    email: r.email,
    role: r.role,
    wecomUserId: r.wecomUserId,
    clinicId: r.clinicId,
    skills: r.skills,
    capacity: r.capacity,
    shift: r.shift ?? null,
    active: r.active,
    canSignIn: r.passwordHash !== null,
    createdAt: r.createdAt.toISOString(),
  };
}

export function staffAudit(r: typeof staff.$inferSelect): Record<string, unknown> {
  const { passwordHash, name: _name, ...rest } = r;
  return { ...rest, passwordSet: passwordHash !== null };
}
