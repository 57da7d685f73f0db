import type { JsonBody } from "../body";
import type { FakeWecomState } from "../state";

// An API family is a list of ApiDefs; server.ts dispatches /cgi-bin/<path> through one table, so
// token checks, 45009 counting, the JSON-warning rule and errcode rendering happen in one place.

export interface ApiContext {
  state: FakeWecomState;
  /** The JSON body (empty for GET APIs). */
  body: JsonBody;
  /** A decoded query parameter. */
  query: (name: string) => string | undefined;
}

/** Returns the success fields (errcode 0 / errmsg ok are added) or throws WecomError. */
export type ApiHandler = (ctx: ApiContext) => Record<string, unknown> | void;

export interface ApiDef {
  method: "GET" | "POST";
  /** Path below /cgi-bin/, e.g. "externalcontact/get". */
  path: string;
  /** Requires ?access_token= (everything but gettoken). */
  auth: boolean;
  handler: ApiHandler;
}

export const get = (path: string, handler: ApiHandler, auth = true): ApiDef => ({ method: "GET", path, handler, auth });
export const post = (path: string, handler: ApiHandler): ApiDef => ({ method: "POST", path, handler, auth: true });

/** Integer query parameter (undefined when absent or not a number). */
export function intQuery(query: ApiContext["query"], name: string): number | undefined {
  const v = query(name);
  return v !== undefined && /^-?\d+$/.test(v) ? Number(v) : undefined;
}
