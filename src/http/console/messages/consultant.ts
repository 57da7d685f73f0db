/** Messages of tasks, the lead pool, follow-ups and the dashboard's trends. Keys start with the area's prefix; `en` has exactly the keys of `zh`. */
export const zh = {
} as const;

export const en: Record<keyof typeof zh, string> = {
};
