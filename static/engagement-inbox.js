/*
 * The in-app inbox for a customer's web page: cards from GET /api/v1/inbox/<user_id>,
 * an unread badge, "read" when a card is shown, "clicked" when its button is, a close
 * button that dismisses it, and polling.
 *
 *   <script src="https://engage.example.com/static/engagement-inbox.js"></script>
 *   <div id="inbox"></div>
 *   <script>
 *     EngagementInbox.mount({host: "https://engage.example.com", writeKey: "wk_...",
 *       userId: "ada", userHash: "<from your server>", element: "#inbox", pollSeconds: 30});
 *   </script>
 *
 * Text from messages is set with textContent only (never innerHTML), and only http(s)
 * URLs become images or links. Requests carry the key and hash as query parameters,
 * so the browser makes simple requests (no CORS preflight). Theme it with the CSS
 * custom properties below on .ei-inbox or any parent. The root's data-state is
 * loading, ready or error (the last request failed; `onError(error)` is called, or
 * the console warns).
 */
(function (global) {
  "use strict";

  var STYLE_ID = "engagement-inbox-style";
  var STYLE = [
    ".ei-inbox{--ei-bg:#fff;--ei-fg:#1d2330;--ei-muted:#5b6475;--ei-accent:#3056d3;",
    "--ei-accent-fg:#fff;--ei-border:#e2e5ec;--ei-radius:10px;--ei-gap:12px;",
    "--ei-font:system-ui,sans-serif;font-family:var(--ei-font);color:var(--ei-fg)}",
    ".ei-header{display:flex;align-items:center;gap:8px;font-weight:600;margin-bottom:var(--ei-gap)}",
    ".ei-badge{background:var(--ei-accent);color:var(--ei-accent-fg);border-radius:999px;",
    "padding:0 8px;font-size:.8em;min-width:1.5em;text-align:center}",
    ".ei-badge[hidden]{display:none}",
    ".ei-list{list-style:none;margin:0;padding:0;display:grid;gap:var(--ei-gap)}",
    ".ei-card{position:relative;background:var(--ei-bg);border:1px solid var(--ei-border);",
    "border-radius:var(--ei-radius);padding:var(--ei-gap);overflow:hidden}",
    ".ei-card.ei-unread{border-left:4px solid var(--ei-accent)}",
    ".ei-image{display:block;max-width:100%;border-radius:calc(var(--ei-radius) - 4px);margin-bottom:8px}",
    ".ei-title{margin:0 24px 4px 0;font-size:1em}",
    ".ei-body{margin:0 0 8px;color:var(--ei-muted);white-space:pre-line}",
    ".ei-cta{display:inline-block;background:var(--ei-accent);color:var(--ei-accent-fg);",
    "border-radius:calc(var(--ei-radius) - 4px);padding:6px 12px;text-decoration:none}",
    ".ei-close{position:absolute;top:6px;right:6px;border:0;background:none;cursor:pointer;",
    "font-size:18px;line-height:1;color:var(--ei-muted)}",
    ".ei-empty{color:var(--ei-muted)}"
  ].join("");

  function isHttpUrl(value) {
    return typeof value === "string" && /^https?:\/\//i.test(value.trim());
  }

  function make(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text) node.textContent = text;
    return node;
  }

  function addStyle() {
    if (document.getElementById(STYLE_ID)) return;
    var style = make("style");
    style.id = STYLE_ID;
    style.textContent = STYLE;
    document.head.appendChild(style);
  }

  function mount(options) {
    var host = String(options.host || "").replace(/\/+$/, "");
    if (!options.writeKey) throw new Error("EngagementInbox.mount: writeKey is required");
    if (!options.userId) throw new Error("EngagementInbox.mount: userId is required");
    var element =
      typeof options.element === "string" ? document.querySelector(options.element) : options.element;
    if (!element) throw new Error("EngagementInbox.mount: element not found");
    var pollSeconds = options.pollSeconds === undefined ? 30 : Number(options.pollSeconds);
    var navigate = options.navigate || function (url) { global.location.assign(url); };
    var base = host + "/api/v1/inbox/" + encodeURIComponent(options.userId);
    var auth = "writeKey=" + encodeURIComponent(options.writeKey) +
      (options.userHash ? "&userHash=" + encodeURIComponent(options.userHash) : "");

    addStyle();
    var root = make("section", "ei-inbox");
    root.setAttribute("data-state", "loading");
    root.setAttribute("aria-label", options.title || "Inbox");
    var header = make("div", "ei-header", options.title || "Inbox");
    var badge = make("span", "ei-badge");
    badge.setAttribute("data-testid", "ei-unread");
    header.appendChild(badge);
    var list = make("ul", "ei-list");
    root.appendChild(header);
    root.appendChild(list);
    element.replaceChildren(root);

    var state = {messages: [], unread: 0};
    var marked = {};
    var timer = null;
    var stopped = false;
    var observer = "IntersectionObserver" in global
      ? new IntersectionObserver(function (entries) {
          entries.forEach(function (entry) {
            if (entry.isIntersecting) markRead(entry.target.getAttribute("data-id"));
          });
        }, {threshold: 0.5})
      : null;

    function post(id, action) {
      return fetch(base + "/messages/" + encodeURIComponent(id) + "/" + action + "?" + auth, {
        method: "POST", keepalive: true, credentials: "omit"
      });
    }

    function find(id) {
      for (var i = 0; i < state.messages.length; i++) {
        if (state.messages[i].id === id) return state.messages[i];
      }
      return null;
    }

    function markRead(id) {
      var message = find(id);
      if (!message || message.read || marked[id]) return;
      marked[id] = true;
      message.read = true;
      state.unread = Math.max(0, state.unread - 1);
      render();
      post(id, "read").catch(function () { marked[id] = false; });
    }

    function dismiss(id) {
      var message = find(id);
      if (!message) return;
      state.messages = state.messages.filter(function (m) { return m.id !== id; });
      if (!message.read) state.unread = Math.max(0, state.unread - 1);
      render();
      post(id, "dismissed").catch(function () {});
    }

    function click(message) {
      var done = function () { navigate(message.cta_url); };
      // Wait (briefly) for the click to be recorded before the page goes away;
      // keepalive carries it on if navigation wins.
      var timeout = new Promise(function (resolve) { setTimeout(resolve, 800); });
      Promise.race([post(message.id, "clicked").catch(function () {}), timeout]).then(done);
    }

    function card(message) {
      var item = make("li", "ei-card" + (message.read ? "" : " ei-unread"));
      item.setAttribute("data-id", message.id);
      var close = make("button", "ei-close", "\u00d7");
      close.type = "button";
      close.setAttribute("aria-label", "Dismiss");
      close.addEventListener("click", function () { dismiss(message.id); });
      item.appendChild(close);
      if (isHttpUrl(message.image_url)) {
        var image = make("img", "ei-image");
        image.src = message.image_url;
        image.alt = "";
        image.loading = "lazy";
        item.appendChild(image);
      }
      item.appendChild(make("h3", "ei-title", message.title));
      if (message.body) item.appendChild(make("p", "ei-body", message.body));
      if (message.cta_label && isHttpUrl(message.cta_url)) {
        var cta = make("a", "ei-cta", message.cta_label);
        cta.href = message.cta_url;
        cta.rel = "noopener";
        cta.addEventListener("click", function (event) {
          event.preventDefault();
          if (!message.read) markRead(message.id);
          click(message);
        });
        item.appendChild(cta);
      }
      return item;
    }

    function render() {
      if (observer) observer.disconnect();
      badge.textContent = String(state.unread);
      badge.hidden = state.unread === 0;
      var items = state.messages.map(card);
      list.replaceChildren.apply(list, items);
      if (!items.length) list.appendChild(make("li", "ei-empty", options.emptyText || "No messages"));
      items.forEach(function (item) {
        if (observer) observer.observe(item);
        else markRead(item.getAttribute("data-id"));
      });
    }

    function refresh() {
      return fetch(base + "?" + auth, {credentials: "omit"})
        .then(function (response) {
          if (!response.ok) throw new Error("inbox answered " + response.status);
          return response.json();
        })
        .then(function (document) {
          if (stopped) return;
          root.setAttribute("data-state", "ready");
          state.messages = document.messages;
          state.unread = document.unread;
          render();
        })
        .catch(function (error) {
          // Cards already shown stay; the page can style or report the failure.
          root.setAttribute("data-state", "error");
          if (options.onError) options.onError(error);
          else if (global.console) global.console.warn("EngagementInbox: " + error.message);
        });
    }

    function schedule() {
      if (stopped || !(pollSeconds > 0)) return;
      timer = setTimeout(function () { refresh().then(schedule); }, pollSeconds * 1000);
    }

    var ready = refresh().then(function () { schedule(); });
    return {
      ready: ready,
      refresh: refresh,
      unread: function () { return state.unread; },
      destroy: function () {
        stopped = true;
        clearTimeout(timer);
        if (observer) observer.disconnect();
        root.remove();
      }
    };
  }

  global.EngagementInbox = {mount: mount};
})(window);
