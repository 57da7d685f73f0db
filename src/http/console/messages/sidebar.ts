/** Messages of the WeCom chat sidebar (聊天工具栏). Keys start with the area's prefix; `en` has exactly the keys of `zh`. */
export const zh = {
} as const;

export const en: Record<keyof typeof zh, string> = {
};
