/**
 * The four default tag dimensions every tenant starts with (keys are a stable contract:
 * shared/DESIGN.md section 10). The rules that fill them live in tagging-rules/.
 */
export const DEFAULT_TAG_GROUPS = [
  { key: "visit", name: "到诊状态", exclusive: true, tags: ["潜在", "首诊", "复诊", "沉睡"] },
  { key: "spending", name: "消费能力", exclusive: true, tags: ["高消费", "中消费", "低消费"] },
  { key: "need", name: "需求类型", exclusive: false, tags: ["祛痘", "抗衰", "美白", "脱毛", "正畸", "种植牙", "减重", "产后修复"] },
  { key: "engagement", name: "活跃度", exclusive: true, tags: ["高", "中", "低"] },
] as const;
