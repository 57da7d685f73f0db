import { serve, type ServerType } from "@hono/node-server";
import { getConnInfo } from "@hono/node-server/conninfo";
import { Hono, type Context } from "hono";
import type { AddressInfo } from "node:net";
import { JsonBody } from "./body";
import { CallbackSender } from "./callbacks";
import { FakeWecomControl } from "./control";
import { ERRMSG, formatErrmsg, JSON_WARNING, WecomError } from "./errors";
import { ids } from "./ids";
import { fakeSidebar, jssdkRoutes, type FakeSidebar } from "./jssdk";
import { takeRateToken } from "./model/rate-limit";
import { checkToken } from "./model/tokens";
import { resolveOptions, type FakeWecomOptions } from "./options";
import type { ApiDef } from "./routes/api";
import { controlRoutes } from "./routes/control";
import { ALL_APIS } from "./routes/index";
import { FakeWecomState } from "./state";

export interface FakeWecom {
  /** The Hono app: WeCom's /cgi-bin/* APIs plus /__control/*. Usable without a socket via app.request. */
  app: Hono;
  state: FakeWecomState;
  control: FakeWecomControl;
  /** The chat sidebar's WeCom client: the open chat, messages the page sent, JS-SDK tickets (jssdk.ts). */
  sidebar: FakeSidebar;
}

export interface RunningFakeWecom extends FakeWecom {
  /** Base URL, e.g. http://127.0.0.1:41234 (use as the API base instead of https://qyapi.weixin.qq.com). */
  url: string;
  port: number;
  /** Waits for background callbacks, then stops listening and drops open connections. */
  close(): Promise<void>;
}

function clientIp(c: Context): string {
  try {
    const addr = getConnInfo(c).remote.address;
    if (addr) return addr.replace(/^::ffff:/, "");
  } catch {
    // app.request() has no socket
  }
  return "127.0.0.1";
}

export function createFakeWecom(options: FakeWecomOptions = {}): FakeWecom {
  const opts = resolveOptions(options);
  const state = new FakeWecomState(opts);
  const callbacks = new CallbackSender(state);
  const control = new FakeWecomControl(state, callbacks);
  const registry = new Map<string, ApiDef>(ALL_APIS.map((d) => [d.path, d]));
  const app = new Hono();

  // Errors are HTTP 200 with {errcode, errmsg} (headers error-code/error-msg mirror them, as observed).
  const reply = (c: Context, errcode: number, text: string, data: Record<string, unknown> = {}, status = 200, jsonWarning = false) => {
    const errmsg = formatErrmsg(errcode, text, ids.hint(state.nowSec()), clientIp(c)) + (jsonWarning ? JSON_WARNING : "");
    const body = JSON.stringify({ errcode, errmsg, ...data });
    return c.body(body, status as 200, { "content-type": "application/json; charset=UTF-8", "error-code": String(errcode), "error-msg": errmsg });
  };

  if (opts.controlRoutes) app.route("/__control", controlRoutes(control));
  // The browser side of the chat sidebar: OAuth authorize page, JS-SDK stand-in and its bridge.
  app.route("/", jssdkRoutes(state));

  // media/upload (doc 90253) is multipart, not JSON: its own route, with the same token and rate checks.
  app.post("/cgi-bin/media/upload", async (c) => {
    let errcode = 0;
    try {
      checkToken(state, c.req.query("access_token"));
      if (!takeRateToken(state, "media/upload")) throw new WecomError(45009);
      const type = c.req.query("type");
      if (!type || !["image", "voice", "video", "file"].includes(type)) throw new WecomError(40004, "invalid media type");
      const form = await c.req.parseBody();
      const file = form.media;
      if (!(file instanceof File) || file.size === 0) throw new WecomError(41005, "media data missing");
      if (type === "image" && (file.size > 10 * 1024 * 1024 || !/^image\/(jpeg|png)$/.test(file.type))) throw new WecomError(40005, "images are JPG or PNG up to 10 MB");
      const media_id = ids.mediaId();
      const createdAtSec = state.nowSec();
      state.media.set(media_id, { type, filename: file.name, contentType: file.type, bytes: file.size, createdAtSec });
      return reply(c, 0, "ok", { type, media_id, created_at: String(createdAtSec) });
    } catch (err) {
      if (!(err instanceof WecomError)) throw err;
      errcode = err.errcode;
      return reply(c, err.errcode, ERRMSG[err.errcode] ?? err.message);
    } finally {
      state.apiCalls.push({ method: "POST", path: "media/upload", errcode, at: state.nowSec() });
    }
  });

  app.all("/cgi-bin/*", async (c) => {
    const path = c.req.path.slice("/cgi-bin/".length);
    const def = registry.get(path);
    if (!def) return reply(c, 48001, ERRMSG[48001]!, {}, 404);
    let body = JsonBody.of({});
    let errcode = 0;
    try {
      if (def.auth) checkToken(state, c.req.query("access_token"));
      if (!takeRateToken(state, path)) throw new WecomError(45009);
      if (def.method === "POST") {
        // A POST API called with GET has no body: WeCom answers 40058 (doc 90313, 40058 item 5).
        if (c.req.method !== "POST") throw new WecomError(40058, "this API takes POST");
        body = JsonBody.parse(await c.req.text());
      }
      control.tick();
      const data = def.handler({ state, body, query: (name) => c.req.query(name) }) ?? {};
      return reply(c, 0, "ok", data, 200, body.warned);
    } catch (err) {
      if (!(err instanceof WecomError)) throw err;
      errcode = err.errcode;
      return reply(c, err.errcode, ERRMSG[err.errcode] ?? err.message, {}, 200, body.warned);
    } finally {
      if (def.auth) state.apiCalls.push({ method: c.req.method, path, errcode, at: state.nowSec() });
    }
  });

  app.notFound((c) => reply(c, 48001, ERRMSG[48001]!, {}, 404));
  app.onError((err, c) => reply(c, -1, `${ERRMSG[-1]} (${err.message})`, {}, 500));
  return { app, state, control, sidebar: fakeSidebar(state) };
}

/** Start the fake on 127.0.0.1 (port 0 = a free port). */
export async function startFakeWecom(options: FakeWecomOptions & { port?: number; host?: string } = {}): Promise<RunningFakeWecom> {
  const fake = createFakeWecom(options);
  const host = options.host ?? "127.0.0.1";
  const server = await new Promise<ServerType>((resolve, reject) => {
    const s = serve({ fetch: fake.app.fetch, port: options.port ?? 0, hostname: host }, () => resolve(s));
    s.once("error", reject);
  });
  const port = (server.address() as AddressInfo).port;
  const urlHost = host === "0.0.0.0" ? "127.0.0.1" : host.includes(":") ? `[${host === "::" ? "::1" : host}]` : host;
  return {
    ...fake,
    url: `http://${urlHost}:${port}`,
    port,
    close: async () => {
      await fake.control.flushCallbacks();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        (server as unknown as { closeAllConnections?: () => void }).closeAllConnections?.();
      });
    },
  };
}
