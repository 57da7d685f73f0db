/* global document, window, location, setInterval -- runs in the browser */
/* Siyu chat sidebar (聊天工具栏): register with the WeCom JS-SDK (wx.config, wx.agentConfig), find the
   chat that is open (getContext, getCurExternalContact / getCurExternalChat), show its page, and put
   scripts the server released into the chat (sendChatMessage). Progressive: the pages render on the
   server; this only talks to WeCom. Messages come from data-msg-* on <main>, in the page's language. */
(function () {
  "use strict";
  var main = document.querySelector("main[data-sb]");
  if (!main) return;
  var d = main.dataset;
  var base = "/sidebar/" + d.slug;
  var statusEl = document.getElementById("sb-status");
  var errorEl = document.getElementById("sb-error");

  function msg(name, params) {
    var text = main.getAttribute("data-msg-" + name) || name;
    if (!params) return text;
    return text.replace(/\{(\w+)\}/g, function (all, k) {
      return params[k] === undefined || params[k] === null ? all : String(params[k]);
    });
  }
  function say(text, kind) {
    if (!statusEl) return;
    statusEl.textContent = text;
    statusEl.className = "sb-status" + (kind ? " " + kind : "");
  }
  function fail(text) {
    say(text, "error");
    if (errorEl) {
      errorEl.querySelector(".sb-error-msg").textContent = text;
      errorEl.hidden = false;
    }
    main.setAttribute("data-state", "error");
  }
  function pageUrl() {
    return location.href.split("#")[0];
  }
  function postJson(url, data) {
    return fetch(url, { method: "POST", credentials: "same-origin", headers: { "content-type": "application/json", accept: "application/json" }, body: JSON.stringify(data) }).then(function (r) {
      return r
        .json()
        .catch(function () {
          return {};
        })
        .then(function (body) {
          return { status: r.status, body: body };
        });
    });
  }
  /** The errcode of a JS-SDK refusal: errCode, else `e=NNNNN` in errMsg, else 40093 for "invalid signature". */
  function errcodeOf(res) {
    if (res && typeof res.errCode === "number") return res.errCode;
    var text = (res && (res.errMsg || res.err_msg)) || "";
    var m = /[?&]e=(\d+)/.exec(text);
    if (m) return Number(m[1]);
    return /invalid signature/.test(text) ? 40093 : null;
  }
  function detailOf(res) {
    return (res && (res.errMsg || res.err_msg)) || JSON.stringify(res);
  }

  // The outcome sheets: opening one closes the other.
  main.querySelectorAll("details.sb-sheet").forEach(function (sheet) {
    sheet.addEventListener("toggle", function () {
      if (!sheet.open) return;
      main.querySelectorAll("details.sb-sheet").forEach(function (other) {
        if (other !== sheet) other.open = false;
      });
      var first = sheet.querySelector("input:not([type=hidden]), button");
      if (first) first.focus();
    });
  });

  // First-contact countdowns tick while the page is open.
  function duration(seconds) {
    var m = Math.max(1, Math.round(Math.abs(seconds) / 60));
    if (m < 60) return msg("dur-min", { m: m });
    if (m < 1440) return msg("dur-hmin", { h: Math.floor(m / 60), m: m % 60 });
    return msg("dur-dh", { d: Math.floor(m / 1440), h: Math.floor((m % 1440) / 60) });
  }
  function tick() {
    main.querySelectorAll(".sla[data-due]").forEach(function (el) {
      var left = (Date.parse(el.getAttribute("data-due")) - Date.now()) / 1000;
      if (isNaN(left)) return;
      el.textContent = msg(left < 0 ? "sla-over" : "sla-left", { d: duration(left) });
      el.classList.toggle("overdue", left < 0);
    });
  }
  setInterval(tick, 30000);

  var wx = window.wx;
  if (!wx || typeof wx.agentConfig !== "function" || typeof wx.invoke !== "function") {
    fail(msg("no-sdk"));
    return;
  }

  var sig = null;
  function signatures() {
    return fetch(base + "/jsapi?url=" + encodeURIComponent(pageUrl()), { credentials: "same-origin", headers: { accept: "application/json" } }).then(function (r) {
      if (!r.ok) throw new Error(msg("signatures", { status: r.status }));
      return r.json();
    });
  }
  function register(s) {
    return new Promise(function (resolve, reject) {
      wx.config({ beta: true, debug: false, appId: s.corpId, timestamp: s.config.timestamp, nonceStr: s.config.nonceStr, signature: s.config.signature, jsApiList: s.jsApiList });
      wx.error(function (res) {
        reject({ kind: "corp", res: res });
      });
      wx.ready(function () {
        wx.agentConfig({
          corpid: s.corpId,
          agentid: String(s.agentId),
          timestamp: s.agentConfig.timestamp,
          nonceStr: s.agentConfig.nonceStr,
          signature: s.agentConfig.signature,
          jsApiList: s.jsApiList,
          success: function () {
            resolve();
          },
          fail: function (res) {
            reject({ kind: "agent", res: res });
          },
        });
      });
    });
  }
  /** Register; `refreshed` holds the ticket kinds already refreshed once on this page. */
  function connect(refreshed) {
    return signatures()
      .then(function (s) {
        sig = s;
        return register(s);
      })
      .catch(function (e) {
        if (!e || !e.res || !sig || refreshed[e.kind]) throw e;
        var code = errcodeOf(e.res);
        if (code === null) throw e;
        var signed = e.kind === "corp" ? sig.config : sig.agentConfig;
        // WeCom may no longer accept the ticket behind the signature: the server drops it when so,
        // and the page registers once more with a fresh signature (once per ticket).
        refreshed[e.kind] = true;
        return postJson(base + "/jsapi/refused", { kind: e.kind, errcode: code, url: sig.url, timestamp: signed.timestamp, nonceStr: signed.nonceStr, signature: signed.signature }).then(function (r) {
          if (r.status === 200 && r.body && r.body.refreshed) return connect(refreshed);
          throw e;
        });
      });
  }
  function invoke(api, params) {
    return new Promise(function (resolve) {
      wx.invoke(api, params || {}, resolve);
    });
  }
  function ok(res, api) {
    return Boolean(res) && res.err_msg === api + ":ok";
  }
  function need(api, res) {
    if (!ok(res, api)) throw { stage: "context", res: res };
    return res;
  }
  function identify() {
    say(msg("identifying"));
    return invoke("getContext").then(function (c) {
      need("getContext", c);
      if (c.entry === "group_chat_tools") {
        return invoke("getCurExternalChat").then(function (r) {
          return { chat: need("getCurExternalChat", r).chatId };
        });
      }
      if (c.entry === "single_chat_tools" || c.entry === "contact_profile" || c.entry === "single_kf_tools") {
        return invoke("getCurExternalContact").then(function (r) {
          return { ext: need("getCurExternalContact", r).userId };
        });
      }
      return { entry: c.entry };
    });
  }

  function ready() {
    say(msg("ready"), "ok");
    document.body.classList.add("sb-ready");
    main.setAttribute("data-state", "ready");
    main.querySelectorAll("button[data-script]").forEach(function (b) {
      b.disabled = false;
      b.addEventListener("click", function () {
        insert(b);
      });
    });
  }

  /** Ask the server to release the script (it checks the gate again), then put the text into the chat. */
  function insert(b) {
    var title = b.getAttribute("data-title") || msg("untitled");
    var body = { contentHash: b.getAttribute("data-hash") };
    if (d.contactId) body.contactId = d.contactId;
    if (d.chat) body.chatId = d.chat;
    var row = b.closest("li");
    var note = row && row.querySelector(".sb-script-note");
    // The outcome shows at the top (the status line stays in view) and under the script itself.
    function tell(text, kind) {
      say(text, kind);
      if (!note) return;
      note.textContent = text;
      note.className = "sb-script-note " + kind;
      note.hidden = false;
    }
    b.disabled = true;
    b.classList.remove("sent", "refused");
    if (note) note.hidden = true;
    say(msg("releasing"));
    postJson(base + "/scripts/" + encodeURIComponent(b.getAttribute("data-script")) + "/release", body)
      .then(function (r) {
        if (r.status !== 200) {
          b.classList.add("refused");
          tell((r.body && r.body.message) || msg("refused-other", { detail: (r.body && r.body.detail) || r.status }), "error");
          return;
        }
        return invoke("sendChatMessage", { msgtype: "text", enterChat: true, text: { content: r.body.text } }).then(function (res) {
          if (ok(res, "sendChatMessage")) {
            b.classList.add("sent");
            tell(msg("sent", { title: title }), "ok");
          } else {
            tell(msg("send-failed", { detail: detailOf(res) }), "error");
          }
        });
      })
      .catch(function (e) {
        tell(msg("refused-other", { detail: (e && e.message) || String(e) }), "error");
      })
      .then(function () {
        b.disabled = false;
      });
  }

  connect({})
    .then(identify)
    .then(function (found) {
      if (found.ext !== undefined) {
        if (d.ext !== found.ext) return location.replace(base + "/contact/" + encodeURIComponent(found.ext));
      } else if (found.chat !== undefined) {
        if (d.chat !== found.chat) return location.replace(base + "/group/" + encodeURIComponent(found.chat));
      } else {
        // Not beside a customer chat: nothing to identify, and nowhere to insert scripts.
        say(msg("no-chat", { entry: found.entry }));
        main.setAttribute("data-state", "no-chat");
        return;
      }
      ready();
    })
    .catch(function (e) {
      if (e && e.res) fail(msg(e.stage === "context" ? "context" : "sdk", { detail: detailOf(e.res) }));
      else fail((e && e.message) || String(e));
    });
})();
