/**
 * The default tag groups every tenant starts with: the four dimensions (keys are a stable contract:
 * shared/DESIGN.md section 10) and the conversion feedback groups (why a consultation was lost,
 * satisfaction, referrals). The rules that fill them live in tagging-rules/.
 */
export const DEFAULT_TAG_GROUPS = [
  { key: "visit", name: "到诊状态", exclusive: true, tags: ["潜在", "首诊", "复诊", "沉睡"] },
  { key: "spending", name: "消费能力", exclusive: true, tags: ["高消费", "中消费", "低消费"] },
  { key: "need", name: "需求类型", exclusive: false, tags: ["祛痘", "抗衰", "美白", "脱毛", "正畸", "种植牙", "减重", "产后修复"] },
  { key: "engagement", name: "活跃度", exclusive: true, tags: ["高", "中", "低"] },
  { key: "lost_reason", name: "未成交原因", exclusive: false, tags: ["价格敏感", "担心效果", "恐惧疼痛", "时间不便", "选择了其他机构"] },
  { key: "nps", name: "满意度", exclusive: true, tags: ["推荐者", "被动者", "贬损者"] },
  { key: "referral", name: "转介绍", exclusive: true, tags: ["推荐人", "推荐达人"] },
] as const;
