import { Hono } from "hono";
import { isRecord } from "../body";
import type { FakeWecomControl } from "../control";
import { FakeControlError, WecomError } from "../errors";
import { sidebarControlActions } from "../jssdk";

// /__control/*: the control surface over HTTP for a CLI or the console. POST /__control/<action>
// with a JSON object of arguments → 200 {ok: true, result} | 400 {ok: false, error[, errcode]}.
// GET /__control/state → snapshot; GET /__control/events → emitted events and delivery reports.

// Arguments arrive as untyped JSON; the control methods validate what they use.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Args = Record<string, any>;

export function controlActions(control: FakeWecomControl): Record<string, (a: Args) => unknown> {
  return {
    createStaff: (a) => control.createStaff(a as never),
    updateStaff: (a) => control.updateStaff(a),
    resignStaff: (a) => control.resignStaff(a),
    createContact: (a) => control.createContact(a),
    customerAddsStaff: (a) => control.customerAddsStaff(a),
    staffDeletesCustomer: (a) => control.staffDeletesCustomer(a as never),
    customerDeletesStaff: (a) => control.customerDeletesStaff(a as never),
    staffEditsCustomer: (a) => control.staffEditsCustomer(a as never),
    adminCreatesTags: (a) => control.adminCreatesTags({ ...a, tags: a.tags ?? [] }),
    adminEditsTag: (a) => control.adminEditsTag(a as never),
    adminDeletesTags: (a) => control.adminDeletesTags(a),
    adminShufflesTags: (a) => control.adminShufflesTags({ ...a, ids: a.ids ?? [] }),
    createGroupChat: (a) => control.createGroupChat(a as never),
    customerJoinsGroup: (a) => control.customerJoinsGroup(a as never),
    customerLeavesGroup: (a) => control.customerLeavesGroup(a as never),
    updateGroupChat: (a) => control.updateGroupChat(a as never),
    dismissGroup: (a) => control.dismissGroup(String(a.chatId)),
    staffConfirmsMassMessage: (a) => control.staffConfirmsMassMessage(String(a.msgid), String(a.userid ?? a.userId), { only: a.only }),
    recordMassMessageReceipt: (a) => control.recordMassMessageReceipt(String(a.recipient), a.at !== undefined ? new Date(a.at) : undefined),
    setMassMessageCap: (a) => control.setMassMessageCap(a as never),
    completeDueTransfers: () => control.completeDueTransfers(),
    customerRefusesTransfer: (a) => control.customerRefusesTransfer(a as never),
    revokeTokens: () => control.revokeTokens(),
    setRateLimit: (a) => control.setRateLimit(Number(a.perMinute)),
    setCallbackUrl: (a) => control.setCallbackUrl(a.url),
    configure: (a) => control.configure(a),
    verifyUrl: (a) => control.verifyUrl(a.url),
    emitRaw: (a) => control.emitRaw(String(a.plaintext)),
    redeliver: (a) => control.redeliver(String(a.plaintext)),
    holdCallbacks: () => control.holdCallbacks(),
    releaseCallbacks: (a) => control.releaseCallbacks(a.order),
    flushCallbacks: () => control.flushCallbacks(),
    ...sidebarControlActions(control.state),
  };
}

export function controlRoutes(control: FakeWecomControl): Hono {
  const app = new Hono();
  const actions = controlActions(control);
  app.get("/state", (c) => c.json(control.snapshot()));
  app.get("/events", (c) => c.json({ events: control.events, deliveries: control.deliveries }));
  app.get("/actions", (c) => c.json({ actions: Object.keys(actions) }));
  app.post("/:action", async (c) => {
    const name = c.req.param("action");
    const action = Object.hasOwn(actions, name) ? actions[name] : undefined;
    if (!action) return c.json({ ok: false, error: `unknown action ${name}`, actions: Object.keys(actions) }, 404);
    const raw = await c.req.text();
    let args: unknown = {};
    try {
      if (raw.trim() !== "") args = JSON.parse(raw);
    } catch {
      return c.json({ ok: false, error: "body is not JSON" }, 400);
    }
    if (!isRecord(args)) return c.json({ ok: false, error: "body must be a JSON object" }, 400);
    try {
      const result = await action(args);
      return c.json({ ok: true, result: result ?? null });
    } catch (err) {
      if (err instanceof WecomError) return c.json({ ok: false, errcode: err.errcode, error: err.message }, 400);
      if (err instanceof FakeControlError) return c.json({ ok: false, error: err.message }, 400);
      throw err;
    }
  });
  return app;
}
