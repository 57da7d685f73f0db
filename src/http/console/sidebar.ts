import { Hono } from "hono";
import type { AppEnv, HttpDeps } from "../types";

/** Console pages: the WeCom chat sidebar (聊天工具栏, /sidebar/*). */
export function sidebarPages(deps: HttpDeps) {
  const app = new Hono<AppEnv>();
  void deps;
  return app;
}
