/* global window, document, location */
/*
 * The fake WeCom's JS-SDK stand-in (served at /wwopen/js/jwxwork-1.0.0.js, see README.md): a
 * faithful subset of the legacy `wx` API of jweixin + jwxwork. wx.config, wx.ready, wx.error,
 * wx.agentConfig and wx.invoke; every call goes to the fake (as the real SDK goes to the WeCom
 * client through WeixinJSBridge) by a script request to the origin this file came from, so a page
 * whose CSP allows this script needs nothing else. The fake checks the signatures against the
 * tickets it issued and answers from the chat a test opened (/__control/setChatContext).
 */
(function () {
  "use strict";
  if (window.wx && window.wx.__fakeWecom) return;
  var me = document.currentScript;
  var base = me && me.src ? new URL(me.src).origin : "";
  var seq = 0;
  var pending = {};

  window.__wecomFakeBridge = {
    deliver: function (id, result) {
      var cb = pending[id];
      delete pending[id];
      if (cb) cb(result);
    },
  };

  function pageUrl() {
    return location.href.split("#")[0];
  }

  function bridge(call, cb) {
    var id = ++seq;
    pending[id] = cb;
    var s = document.createElement("script");
    s.src = base + "/wwopen/js/bridge?id=" + id + "&call=" + encodeURIComponent(JSON.stringify(call));
    s.async = true;
    var done = function () {
      s.remove();
      if (pending[id]) {
        delete pending[id];
        cb({ err_msg: call.api + ":fail network", errMsg: call.api + ":fail network" });
      }
    };
    s.onload = done;
    s.onerror = done;
    (document.head || document.documentElement).appendChild(s);
  }

  var config = null;
  var configState = "none";
  var configResult = null;
  var readyFns = [];
  var errorFns = [];
  var agent = null;

  function later(fn, arg) {
    setTimeout(function () {
      fn(arg);
    }, 0);
  }

  var wx = {
    __fakeWecom: true,
    config: function (o) {
      o = o || {};
      config = { appId: String(o.appId || ""), timestamp: String(o.timestamp || ""), nonceStr: String(o.nonceStr || ""), signature: String(o.signature || ""), jsApiList: o.jsApiList || [] };
      configState = "pending";
      bridge({ api: "config", url: pageUrl(), config: config, agent: null, params: {} }, function (res) {
        configResult = res;
        configState = res.errMsg === "config:ok" ? "ok" : "failed";
        var fns = configState === "ok" ? readyFns : errorFns;
        readyFns = [];
        errorFns = [];
        fns.forEach(function (fn) {
          fn(configState === "ok" ? undefined : res);
        });
      });
    },
    ready: function (fn) {
      if (configState === "ok") later(fn);
      else if (configState !== "failed") readyFns.push(fn);
    },
    error: function (fn) {
      if (configState === "failed") later(fn, configResult);
      else if (configState !== "ok") errorFns.push(fn);
    },
    agentConfig: function (o) {
      o = o || {};
      var a = { corpid: String(o.corpid || ""), agentid: String(o.agentid || ""), timestamp: String(o.timestamp || ""), nonceStr: String(o.nonceStr || ""), signature: String(o.signature || ""), jsApiList: o.jsApiList || [] };
      bridge({ api: "agentConfig", url: pageUrl(), config: configState === "ok" ? config : null, agent: a, params: {} }, function (res) {
        if (res.errMsg === "agentConfig:ok") {
          agent = a;
          if (o.success) o.success(res);
        } else {
          agent = null;
          if (o.fail) o.fail(res);
        }
        if (o.complete) o.complete(res);
      });
    },
    invoke: function (api, params, cb) {
      bridge({ api: String(api), url: pageUrl(), params: params || {}, config: configState === "ok" ? config : null, agent: agent }, function (res) {
        if (cb) cb(res);
      });
    },
  };
  window.wx = wx;
  window.jWeixin = wx;
})();
