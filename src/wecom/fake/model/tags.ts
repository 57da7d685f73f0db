import { charCount } from "../body";
import { fail } from "../errors";
import { ids } from "../ids";
import type { FakeTag, FakeTagGroup, FakeWecomState } from "../state";

// Corp tag rules (doc §3.4): ≤ 3000 live tags per corp (40126), names ≤ 30 chars, duplicate names in
// one request collapse, an existing name in the group is reused, renaming onto an existing name is
// 40071, unknown ids are 40068, deleting a group's last tag deletes the group. Deleted records are
// kept (flagged) so get_corp_tag_list can report `deleted: true` when asked by id.

export const MAX_CORP_TAGS = 3000;
const MAX_NAME_CHARS = 30;

const byOrderDesc = <T extends { order: number }>(a: T, b: T) => b.order - a.order;

function tagJson(t: FakeTag, withDeleted: boolean): Record<string, unknown> {
  const out: Record<string, unknown> = { id: t.id, name: t.name, create_time: t.createTime, order: t.order };
  if (withDeleted) out.deleted = t.deleted;
  return out;
}

function groupJson(g: FakeTagGroup, tags: FakeTag[], withDeleted: boolean): Record<string, unknown> {
  const out: Record<string, unknown> = { group_id: g.groupId, group_name: g.name, create_time: g.createTime, order: g.order };
  if (withDeleted) out.deleted = g.deleted;
  out.tag = [...tags].sort(byOrderDesc).map((t) => tagJson(t, withDeleted));
  return out;
}

/** get_corp_tag_list: everything live, or the given ids (group_id wins) including deleted ones. */
export function listCorpTags(state: FakeWecomState, filter: { tagIds?: string[]; groupIds?: string[] }): Record<string, unknown>[] {
  const groups = [...state.tagGroups.values()].sort(byOrderDesc);
  if (filter.groupIds && filter.groupIds.length > 0) {
    const wanted = new Set(filter.groupIds);
    return groups.filter((g) => wanted.has(g.groupId)).map((g) => groupJson(g, g.deleted ? g.tags : g.tags.filter((t) => !t.deleted), true));
  }
  if (filter.tagIds && filter.tagIds.length > 0) {
    const wanted = new Set(filter.tagIds);
    return groups
      .map((g) => ({ g, tags: g.tags.filter((t) => wanted.has(t.id)) }))
      .filter((x) => x.tags.length > 0)
      .map((x) => groupJson(x.g, x.tags, true));
  }
  return groups.filter((g) => !g.deleted).map((g) => groupJson(g, g.tags.filter((t) => !t.deleted), false));
}

function checkName(name: string | undefined, missingCode: number): string {
  if (name === undefined || name.trim() === "") return fail(missingCode);
  if (charCount(name) > MAX_NAME_CHARS) return fail(40058, `name longer than ${MAX_NAME_CHARS} characters`);
  return name;
}

function liveGroup(state: FakeWecomState, groupId: string): FakeTagGroup {
  const g = state.tagGroups.get(groupId);
  if (!g || g.deleted) return fail(40068, groupId);
  return g;
}

export interface AddCorpTagInput {
  groupId?: string;
  groupName?: string;
  order?: number;
  tags: Array<{ name?: string; order?: number }>;
}

export interface AddCorpTagResult {
  group: FakeTagGroup;
  tags: FakeTag[];
  createdGroup: boolean;
  createdTags: FakeTag[];
  json: Record<string, unknown>;
}

export function addCorpTags(state: FakeWecomState, input: AddCorpTagInput): AddCorpTagResult {
  if (input.tags.length === 0) return fail(41018);
  const wanted: Array<{ name: string; order: number }> = [];
  for (const t of input.tags) {
    const name = checkName(t.name, 41018);
    if (!wanted.some((w) => w.name === name)) wanted.push({ name, order: t.order ?? 0 });
  }
  let group: FakeTagGroup | undefined;
  if (input.groupId !== undefined && input.groupId !== "") {
    group = liveGroup(state, input.groupId);
  } else {
    const groupName = checkName(input.groupName, 40058);
    group = [...state.tagGroups.values()].find((g) => !g.deleted && g.name === groupName);
    if (!group) {
      // Not stored until the tags are known to fit: WeCom never leaves an empty group behind.
      group = { groupId: ids.tagId(), name: groupName, createTime: state.nowSec(), order: input.order ?? 0, deleted: false, tags: [] };
    }
  }
  const createdGroup = !state.tagGroups.has(group.groupId);
  const existing = (name: string) => group.tags.find((t) => !t.deleted && t.name === name);
  const newCount = wanted.filter((w) => !existing(w.name)).length;
  if (state.liveTagCount() + newCount > MAX_CORP_TAGS) return fail(40126);
  const createdTags: FakeTag[] = [];
  const tags = wanted.map((w) => {
    const found = existing(w.name);
    if (found) return found;
    const tag: FakeTag = { id: ids.tagId(), name: w.name, createTime: state.nowSec(), order: w.order, deleted: false };
    group.tags.push(tag);
    createdTags.push(tag);
    return tag;
  });
  if (createdGroup) state.tagGroups.set(group.groupId, group);
  return { group, tags, createdGroup, createdTags, json: groupJson(group, tags, false) };
}

export function editCorpTag(state: FakeWecomState, input: { id?: string; name?: string; order?: number }): { kind: "tag" | "tag_group"; id: string } {
  if (input.id === undefined || input.id === "") return fail(40068);
  const group = state.tagGroups.get(input.id);
  if (group) {
    if (group.deleted) return fail(40068, input.id);
    if (input.name !== undefined) {
      const name = checkName(input.name, 41018);
      if ([...state.tagGroups.values()].some((g) => !g.deleted && g !== group && g.name === name)) return fail(40071);
      group.name = name;
    }
    if (input.order !== undefined) group.order = input.order;
    return { kind: "tag_group", id: group.groupId };
  }
  const found = state.findTag(input.id);
  if (!found || found.tag.deleted || found.group.deleted) return fail(40068, input.id);
  if (input.name !== undefined) {
    const name = checkName(input.name, 41018);
    if (found.group.tags.some((t) => !t.deleted && t !== found.tag && t.name === name)) return fail(40071);
    found.tag.name = name;
  }
  if (input.order !== undefined) found.tag.order = input.order;
  return { kind: "tag", id: found.tag.id };
}

export interface DeleteResult {
  /** Tags deleted by id. */
  tagIds: string[];
  /** Groups deleted by id, or because their last tag went. */
  groupIds: string[];
}

export function deleteCorpTags(state: FakeWecomState, input: { tagIds?: string[]; groupIds?: string[] }): DeleteResult {
  const tagIds = [...new Set(input.tagIds ?? [])];
  const groupIds = [...new Set(input.groupIds ?? [])];
  if (tagIds.length === 0 && groupIds.length === 0) return fail(40068);
  // Validate everything first: one bad id fails the whole call.
  for (const id of groupIds) liveGroup(state, id);
  const found = tagIds.map((id) => {
    const f = state.findTag(id);
    if (!f || f.tag.deleted || f.group.deleted) return fail(40068, id);
    return f;
  });
  const result: DeleteResult = { tagIds: [], groupIds: [] };
  for (const id of groupIds) {
    const g = state.tagGroups.get(id)!;
    g.deleted = true;
    for (const t of g.tags) t.deleted = true;
    result.groupIds.push(id);
  }
  for (const { tag, group } of found) {
    if (tag.deleted) continue;
    tag.deleted = true;
    result.tagIds.push(tag.id);
    if (!group.deleted && group.tags.every((t) => t.deleted)) {
      group.deleted = true;
      result.groupIds.push(group.groupId);
    }
  }
  return result;
}

/** mark_tag: API-side, so it never produces a callback. */
export function markTags(state: FakeWecomState, input: { userid?: string; externalUserId?: string; addTag?: string[]; removeTag?: string[] }): void {
  const staff = state.requireStaff(input.userid);
  if (input.externalUserId === undefined || input.externalUserId === "") return fail(41035);
  if (!state.contacts.has(input.externalUserId)) return fail(40096, input.externalUserId);
  const follow = state.follow(input.externalUserId, staff.userid);
  if (!follow) return fail(84061);
  const add = input.addTag ?? [];
  const remove = input.removeTag ?? [];
  if (add.length === 0 && remove.length === 0) return fail(40058, "add_tag and remove_tag are both empty");
  for (const id of [...add, ...remove]) {
    const f = state.findTag(id);
    if (!f || f.tag.deleted || f.group.deleted) return fail(40068, id);
  }
  const removeSet = new Set(remove);
  follow.tagIds = [...new Set([...follow.tagIds.filter((id) => !removeSet.has(id)), ...add])];
}

/** Admin-console reordering: the first id gets the largest order. Tags of one group, or the groups. */
export function reorderTags(state: FakeWecomState, input: { groupId?: string; ids: string[] }): void {
  const items: Array<{ order: number }> = input.groupId
    ? input.ids.map((id) => liveGroup(state, input.groupId!).tags.find((t) => t.id === id && !t.deleted) ?? fail(40068, id))
    : input.ids.map((id) => liveGroup(state, id));
  items.forEach((item, i) => {
    item.order = items.length - i;
  });
}
