/* Aisle support chat: the widget on every storefront page and the full-size chat at /support/.
 *
 * Markup contract: an element with [data-chat] (data-chat-mode="widget" | "page", data-api="/api/support/")
 * holding [data-chat-log], [data-chat-form], [data-chat-input], [data-chat-typing], [data-chat-banner],
 * [data-chat-quick], [data-chat-rate], [data-chat-end] and, in the widget, [data-chat-close] and the
 * launcher [data-chat-launcher]. Any [data-chat-open] link on the page opens the widget.
 *
 * Every text from the server (the shopper's own, the assistant's, an agent's) is set with textContent,
 * never parsed as HTML. The conversation lives on the server (GET current/ resumes it on every page);
 * only whether the panel is open is kept in sessionStorage.
 */
(function () {
  "use strict";

  var OPEN_KEY = "aisle.chat.open";
  var RATED_KEY = "aisle.chat.rated.";
  var POLL_MS = 3000;
  var IDLE_POLL_MS = 15000;
  var WITH_PEOPLE = { waiting: true, assigned: true };
  var NO_FEEDBACK_KINDS = { handoff: true, rephrase: true, small_talk: true };
  var LABELS = { bot: "Aisle assistant", agent: "Aisle team", shopper: "You" };
  var STARTERS = [
    { label: "Where is my order?", reply: "Where is my order?" },
    { label: "Return an item", reply: "How do I return an item?" },
    { label: "Shipping costs", reply: "How much is shipping?" },
    { label: "Talk to a person", reply: "I'd like to talk to a person, please." }
  ];

  function storage() {
    try { return window.sessionStorage; } catch (e) { return null; }
  }
  function remember(key, value) {
    var store = storage();
    try { if (store) { store.setItem(key, value); } } catch (e) { /* private mode */ }
  }
  function recall(key) {
    var store = storage();
    try { return store ? store.getItem(key) : null; } catch (e) { return null; }
  }

  function csrfToken() {
    var match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    if (match) { return decodeURIComponent(match[1]); }
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : "";
  }

  // Only same-site paths and http(s) links become hrefs (a "javascript:" url would run on click).
  function safeUrl(url) {
    if (typeof url !== "string") { return null; }
    if (url.charAt(0) === "/" && url.charAt(1) !== "/") { return url; }
    return /^https?:\/\//i.test(url) ? url : null;
  }

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) { node.className = className; }
    if (text !== undefined && text !== null) { node.textContent = text; }
    return node;
  }

  function clock(iso) {
    var date = iso ? new Date(iso) : new Date();
    if (isNaN(date.getTime())) { return ""; }
    return date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  }

  function Chat(root) {
    this.root = root;
    this.mode = root.getAttribute("data-chat-mode") || "widget";
    this.base = root.getAttribute("data-api") || "/api/support/";
    this.log = root.querySelector("[data-chat-log]");
    this.form = root.querySelector("[data-chat-form]");
    this.input = root.querySelector("[data-chat-input]");
    this.sendButton = this.form.querySelector("button[type=submit]");
    this.typing = root.querySelector("[data-chat-typing]");
    this.banner = root.querySelector("[data-chat-banner]");
    this.quick = root.querySelector("[data-chat-quick]");
    this.rate = root.querySelector("[data-chat-rate]");
    this.panel = root.querySelector("[data-chat-panel]") || root;
    this.launcher = root.querySelector("[data-chat-launcher]");
    this.subtitle = root.querySelector("[data-chat-subtitle]");
    this.token = null;
    this.status = null;
    this.lastId = 0;
    this.seen = {};
    this.loaded = false;
    this.busy = false;
    this.timer = null;
    this.bind();
    if (this.mode === "page" || recall(OPEN_KEY) === "1") { this.open(false); }
  }

  Chat.prototype.bind = function () {
    var chat = this;
    if (chat.launcher) {
      chat.launcher.addEventListener("click", function () {
        if (chat.panel.hidden) { chat.open(true); } else { chat.close(); }
      });
    }
    var closer = chat.root.querySelector("[data-chat-close]");
    if (closer) { closer.addEventListener("click", function () { chat.close(); }); }
    var ender = chat.root.querySelector("[data-chat-end]");
    if (ender) { ender.addEventListener("click", function () { chat.end(); }); }
    chat.form.addEventListener("submit", function (event) {
      event.preventDefault();
      chat.send(chat.input.value);
    });
    // Enter sends, Shift+Enter makes a new line, as in every shop's chat.
    chat.input.addEventListener("keydown", function (event) {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        chat.send(chat.input.value);
      }
    });
    if (chat.rate) {
      chat.rate.addEventListener("submit", function (event) {
        event.preventDefault();
        chat.submitRating();
      });
      var skip = chat.rate.querySelector("[data-chat-rate-skip]");
      if (skip) { skip.addEventListener("click", function () { chat.finishRating(false); }); }
    }
    if (chat.mode === "widget") {
      document.addEventListener("keydown", function (event) {
        if (event.key === "Escape" && !chat.panel.hidden) { chat.close(); if (chat.launcher) { chat.launcher.focus(); } }
      });
    }
  };

  Chat.prototype.request = function (method, path, body) {
    var options = {
      method: method, credentials: "same-origin",
      headers: { "Accept": "application/json", "X-CSRFToken": csrfToken() }
    };
    if (body !== undefined) {
      options.headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(body);
    }
    return fetch(this.base + path, options).then(function (response) {
      return response.text().then(function (text) {
        var data = null;
        try { data = text ? JSON.parse(text) : null; } catch (e) { data = null; }
        return { status: response.status, ok: response.ok, data: data };
      });
    });
  };

  // --- open, close, resume ----------------------------------------------------------------------
  Chat.prototype.open = function (focus) {
    this.panel.hidden = false;
    this.root.classList.add("is-open");
    if (this.launcher) { this.launcher.setAttribute("aria-expanded", "true"); }
    if (this.mode === "widget") { remember(OPEN_KEY, "1"); }
    if (!this.loaded) { this.resume(); } else { this.schedule(); }
    if (focus) { this.input.focus(); }
    this.scroll();
  };

  Chat.prototype.close = function () {
    if (this.mode !== "widget") { return; }
    this.panel.hidden = true;
    this.root.classList.remove("is-open");
    if (this.launcher) { this.launcher.setAttribute("aria-expanded", "false"); }
    remember(OPEN_KEY, "0");
    this.stopPolling();
  };

  Chat.prototype.resume = function () {
    var chat = this;
    chat.loaded = true;
    chat.request("GET", "conversations/current/").then(function (result) {
      if (result.ok && result.data && result.data.token) {
        chat.adopt(result.data);
        if (!chat.log.querySelector(".chat-msg")) { chat.welcome(); }
      } else {
        chat.welcome();
      }
    }).catch(function () { chat.welcome(); });
  };

  // A greeting drawn locally: no conversation is created until the shopper writes.
  Chat.prototype.welcome = function () {
    if (this.log.querySelector(".chat-msg--welcome")) { return; }
    this.renderMessage({ id: null, sender: "bot", kind: "small_talk",
      text: "Hi! I'm the Aisle assistant. Ask me about your orders, returns, shipping or any product — or ask for a person.",
      sources: [], created_at: null }, "chat-msg--welcome");
    this.showQuick(STARTERS);
  };

  Chat.prototype.adopt = function (conversation) {
    this.token = conversation.token;
    if (conversation.satisfaction) { remember(RATED_KEY + this.token, "1"); }
    var messages = conversation.messages || [];
    // The greeting is shown once: a new conversation's stored greeting takes the place of the one
    // drawn locally before the shopper wrote (it used to be drawn again, after their first message).
    var welcome = this.log.querySelector(".chat-msg--welcome");
    if (welcome && messages.length && messages[0].sender === "bot" && messages[0].kind === "small_talk") {
      var greeting = messages[0];
      welcome.querySelector(".chat-text").textContent = greeting.text;
      welcome.setAttribute("data-message-id", greeting.id);
      welcome.classList.remove("chat-msg--welcome");
      this.seen[greeting.id] = true;
      if (greeting.id > this.lastId) { this.lastId = greeting.id; }
    }
    this.renderAll(messages);
    this.setStatus(conversation.status, conversation.wait);
  };

  Chat.prototype.ensureConversation = function () {
    var chat = this;
    if (chat.token && chat.status !== "resolved") { return Promise.resolve(chat.token); }
    return chat.request("POST", "conversations/", {}).then(function (result) {
      if (!result.ok || !result.data || !result.data.token) { throw new Error("Could not start a chat"); }
      if (result.data.token !== chat.token) { chat.clearRating(); }
      chat.adopt(result.data);
      return chat.token;
    });
  };

  // --- sending ----------------------------------------------------------------------------------
  // One id per send: a retry of a send whose answer was lost reuses it, so the server stores it once.
  function sendId() {
    if (window.crypto && window.crypto.randomUUID) { return window.crypto.randomUUID(); }
    return Date.now().toString(36) + "-" + Math.random().toString(36).slice(2, 12);
  }

  Chat.prototype.send = function (raw, ref) {
    var chat = this;
    var text = (raw || "").trim();
    if (!text || chat.busy) { return; }
    ref = ref || sendId();
    chat.busy = true;
    chat.sendButton.disabled = true;
    chat.input.value = "";
    chat.clearQuick();
    chat.hideRating();
    var pending = chat.renderMessage({ id: null, sender: "shopper", kind: "text", text: text, sources: [],
                                       created_at: null }, "is-pending");
    chat.pending = { item: pending, text: text };
    chat.showTyping(true);
    chat.ensureConversation().then(function () {
      return chat.request("POST", "conversations/" + chat.token + "/messages/", { text: text, client_ref: ref });
    }).then(function (result) {
      if (!result.ok || !result.data) {
        var detail = result.data && (result.data.detail || result.data.text || result.data.error);
        throw new Error(typeof detail === "string" ? detail : "Your message was not sent.");
      }
      pending.remove();
      chat.pending = null;
      chat.renderAll(result.data.messages || []);
      chat.setStatus(result.data.status || chat.status, result.data.wait);
    }).catch(function (error) {
      chat.pending = null;
      pending.classList.remove("is-pending");
      pending.classList.add("is-failed");
      var note = el("p", "chat-msg-error", (error && error.message) || "Your message was not sent.");
      var retry = el("button", "chat-retry", "Try again");
      retry.type = "button";
      retry.addEventListener("click", function () { pending.remove(); chat.send(text, ref); });
      note.appendChild(document.createTextNode(" "));
      note.appendChild(retry);
      pending.appendChild(note);
    }).then(function () {
      chat.busy = false;
      chat.sendButton.disabled = false;
      chat.showTyping(false);
      chat.scroll();
    });
  };

  // --- rendering --------------------------------------------------------------------------------
  Chat.prototype.renderAll = function (messages) {
    var latestActions = null;
    for (var i = 0; i < messages.length; i++) {
      var message = messages[i];
      if (message.id !== null && message.id !== undefined && this.seen[message.id]) { continue; }
      // A poll can return the shopper's message before the POST that sent it has answered: the stored
      // copy replaces the greyed-out one, so it is never shown twice.
      if (message.sender === "shopper" && this.pending && this.pending.text === (message.text || "").trim()) {
        this.pending.item.remove();
        this.pending = null;
      }
      this.renderMessage(message);
      if (message.sender !== "shopper") { latestActions = message.actions || []; }
      else { latestActions = []; }
    }
    if (latestActions !== null) { this.showQuick(latestActions); }
    this.scroll();
  };

  Chat.prototype.renderMessage = function (message, extraClass) {
    var chat = this;
    var sender = message.sender || "bot";
    var item = el("li", "chat-msg chat-msg--" + sender + (extraClass ? " " + extraClass : ""));
    if (message.id !== null && message.id !== undefined) {
      chat.seen[message.id] = true;
      item.setAttribute("data-message-id", message.id);
      if (message.id > chat.lastId) { chat.lastId = message.id; }
    }
    if (message.kind) { item.setAttribute("data-kind", message.kind); }
    if (sender === "system") {
      item.appendChild(el("p", "chat-system", message.text));
      chat.log.appendChild(item);
      return item;
    }
    if (sender !== "shopper") {
      var meta = el("p", "chat-meta");
      meta.appendChild(el("span", "chat-avatar chat-avatar--" + sender));
      meta.appendChild(el("span", "chat-who", LABELS[sender] || sender));
      item.appendChild(meta);
    }
    var bubble = el("div", "chat-bubble");
    bubble.appendChild(el("p", "chat-text", message.text));
    var cards = (message.cards || []).filter(function (c) { return c && safeUrl(c.url); });
    if (cards.length) { bubble.appendChild(chat.renderCards(cards)); }
    // A product's card is its link: its source is not listed a second time under it.
    var sources = (message.sources || []).filter(function (s) {
      return s && safeUrl(s.url) && !(cards.length && s.type === "product");
    });
    if (sources.length) {
      var list = el("ul", "chat-sources");
      list.setAttribute("aria-label", "Sources");
      sources.forEach(function (source) {
        var li = el("li", "chat-source chat-source--" + (source.type || "article"));
        var link = el("a", "", source.title || source.url);
        link.href = safeUrl(source.url);
        li.appendChild(link);
        list.appendChild(li);
      });
      bubble.appendChild(list);
    }
    item.appendChild(bubble);
    var footer = el("div", "chat-msg-foot");
    var time = el("time", "chat-time", clock(message.created_at));
    if (message.created_at) { time.dateTime = message.created_at; }
    footer.appendChild(time);
    if (sender === "bot" && message.id && !NO_FEEDBACK_KINDS[message.kind]) {
      footer.appendChild(chat.feedbackButtons(message));
    }
    item.appendChild(footer);
    chat.log.appendChild(item);
    return item;
  };

  // Product answers: one short card per product (title once, price, availability, link), all as text.
  Chat.prototype.renderCards = function (cards) {
    var list = el("ul", "chat-cards");
    list.setAttribute("aria-label", "Products");
    cards.forEach(function (card) {
      var item = el("li", "chat-card");
      var link = el("a", "chat-card-title", card.title || card.url);
      link.href = safeUrl(card.url);
      item.appendChild(link);
      var facts = el("p", "chat-card-facts");
      if (card.price) { facts.appendChild(el("span", "chat-card-price", card.price)); }
      if (card.availability) { facts.appendChild(el("span", "chat-card-stock", card.availability)); }
      if (typeof card.rating === "number") {
        facts.appendChild(el("span", "chat-card-rating", "★ " + card.rating.toFixed(1) +
                             (card.reviews ? " (" + card.reviews + ")" : "")));
      }
      item.appendChild(facts);
      list.appendChild(item);
    });
    return list;
  };

  Chat.prototype.feedbackButtons = function (message) {
    var chat = this;
    var group = el("span", "chat-feedback");
    group.setAttribute("role", "group");
    group.setAttribute("aria-label", "Was this answer helpful?");
    [[1, "Helpful", "chat-thumb--up"], [-1, "Not helpful", "chat-thumb--down"]].forEach(function (spec) {
      var button = el("button", "chat-thumb " + spec[2]);
      button.type = "button";
      button.setAttribute("aria-label", spec[1]);
      button.title = spec[1];
      button.setAttribute("aria-pressed", message.feedback === spec[0] ? "true" : "false");
      button.setAttribute("data-feedback", spec[0]);
      button.addEventListener("click", function () {
        chat.request("POST", "messages/" + message.id + "/feedback/", { value: spec[0] }).then(function (result) {
          if (!result.ok) { return; }
          group.querySelectorAll(".chat-thumb").forEach(function (b) { b.setAttribute("aria-pressed", "false"); });
          button.setAttribute("aria-pressed", "true");
          group.classList.add("is-sent");
        });
      });
      group.appendChild(button);
    });
    return group;
  };

  Chat.prototype.showQuick = function (actions) {
    var chat = this;
    chat.clearQuick();
    if (!actions || !actions.length || chat.status === "resolved") { return; }
    actions.forEach(function (action) {
      if (!action || !action.reply) { return; }
      var button = el("button", "chat-chip", action.label || action.reply);
      button.type = "button";
      button.addEventListener("click", function () { chat.send(action.reply); });
      chat.quick.appendChild(button);
    });
    chat.quick.hidden = !chat.quick.children.length;
  };

  Chat.prototype.clearQuick = function () {
    while (this.quick.firstChild) { this.quick.removeChild(this.quick.firstChild); }
    this.quick.hidden = true;
  };

  Chat.prototype.showTyping = function (on) {
    this.typing.hidden = !on;
    if (on) { this.scroll(); }
  };

  Chat.prototype.scroll = function () {
    var log = this.log;
    window.requestAnimationFrame(function () { log.scrollTop = log.scrollHeight; });
  };

  // --- status, polling --------------------------------------------------------------------------
  Chat.prototype.setStatus = function (status, wait) {
    var chat = this;
    this.status = status;
    this.waitText = wait && wait.text ? wait.text : "";
    this.root.setAttribute("data-chat-status", status || "");
    var texts = {
      waiting: "You're in the queue for a person. Keep browsing — we'll reply right here.",
      assigned: "You're chatting with a member of the Aisle team.",
      resolved: "This chat is resolved. Write again any time to start a new one."
    };
    if (texts[status]) {
      var text = texts[status];
      // Waiting: the place in the queue and the recent typical wait, from the server.
      if (status === "waiting" && wait && wait.text) { text = wait.text + " Keep browsing — we'll reply right here."; }
      this.banner.textContent = text;
      this.banner.className = "chat-banner chat-banner--" + status;
      if (status === "waiting") {
        var back = el("button", "chat-back link-button", "Back to the assistant");
        back.type = "button";
        back.setAttribute("data-chat-back", "");
        back.addEventListener("click", function () { chat.backToAssistant(back); });
        this.banner.appendChild(document.createTextNode(" "));
        this.banner.appendChild(back);
      }
      this.banner.hidden = false;
    } else {
      this.banner.hidden = true;
    }
    if (this.subtitle) {
      this.subtitle.textContent = WITH_PEOPLE[status] ? "A person will answer here" : "Replies in seconds";
    }
    if (status === "resolved") {
      this.clearQuick();
      if (!recall(RATED_KEY + this.token)) { this.askRating(); }
    }
    this.schedule();
  };

  // Leave the queue for a person: the assistant answers the next message again.
  Chat.prototype.backToAssistant = function (button) {
    var chat = this;
    if (!chat.token) { return; }
    button.disabled = true;
    chat.request("POST", "conversations/" + chat.token + "/assistant/", {}).then(function (result) {
      if (result.ok && result.data) {
        chat.renderAll(result.data.messages || []);
        chat.setStatus(result.data.status, result.data.wait);
        chat.input.focus();
      } else {
        button.disabled = false;
        var detail = result.data && result.data.status;
        if (detail && detail[0]) { chat.banner.textContent = detail[0]; }
        chat.poll();
      }
    }).catch(function () { button.disabled = false; });
  };

  // Every ~3 s while a person has the chat (their replies must show up without a reload); every 15 s
  // while the assistant has it, so an agent who picks the chat up from the queue is still seen.
  Chat.prototype.schedule = function () {
    var chat = this;
    var visible = chat.token && chat.status && chat.status !== "resolved" && !chat.panel.hidden && !document.hidden;
    var interval = visible ? (WITH_PEOPLE[chat.status] ? POLL_MS : IDLE_POLL_MS) : 0;
    if (interval === chat.interval && chat.timer) { return; }
    chat.stopPolling();
    if (interval) {
      chat.interval = interval;
      chat.timer = window.setInterval(function () { chat.poll(); }, interval);
    }
  };

  Chat.prototype.stopPolling = function () {
    if (this.timer) { window.clearInterval(this.timer); this.timer = null; }
    this.interval = 0;
  };

  Chat.prototype.poll = function () {
    var chat = this;
    if (!chat.token || chat.polling) { return; }
    chat.polling = true;
    chat.request("GET", "conversations/" + chat.token + "/messages/?after=" + chat.lastId).then(function (result) {
      if (result.ok && result.data) {
        chat.renderAll(result.data.messages || []);
        var waitText = result.data.wait ? result.data.wait.text : "";
        if (result.data.status && (result.data.status !== chat.status || waitText !== chat.waitText)) {
          chat.setStatus(result.data.status, result.data.wait);
        }
      }
    }).catch(function () { /* offline for a moment: the next tick tries again */ }).then(function () {
      chat.polling = false;
    });
  };

  // --- ending and rating ------------------------------------------------------------------------
  Chat.prototype.end = function () {
    if (!this.token) { this.close(); return; }
    this.askRating();
  };

  Chat.prototype.askRating = function () {
    if (!this.rate || !this.token) { return; }
    this.rate.hidden = false;
    this.rate.reset();
    var thanks = this.rate.querySelector("[data-chat-rate-thanks]");
    if (thanks) { thanks.hidden = true; }
    this.rate.querySelector("fieldset").hidden = false;
    this.scroll();
  };

  Chat.prototype.hideRating = function () {
    if (this.rate) { this.rate.hidden = true; }
  };

  Chat.prototype.clearRating = function () {
    this.hideRating();
  };

  Chat.prototype.submitRating = function () {
    var chat = this;
    var picked = chat.rate.querySelector("input[name=score]:checked");
    var error = chat.rate.querySelector("[data-chat-rate-error]");
    if (!picked) { error.hidden = false; return; }
    error.hidden = true;
    var comment = chat.rate.querySelector("textarea[name=comment]");
    chat.request("POST", "conversations/" + chat.token + "/satisfaction/",
                 { score: parseInt(picked.value, 10), comment: comment ? comment.value : "" }).then(function (result) {
      if (result.ok) { chat.finishRating(true); } else { error.hidden = false; }
    });
  };

  Chat.prototype.finishRating = function (rated) {
    remember(RATED_KEY + this.token, rated ? "1" : "skipped");
    var fieldset = this.rate.querySelector("fieldset");
    var thanks = this.rate.querySelector("[data-chat-rate-thanks]");
    if (rated && thanks) {
      fieldset.hidden = true;
      thanks.hidden = false;
    } else {
      this.hideRating();
    }
  };

  function init() {
    var chats = [];
    document.querySelectorAll("[data-chat]").forEach(function (root) { chats.push(new Chat(root)); });
    document.addEventListener("click", function (event) {
      var opener = event.target.closest && event.target.closest("[data-chat-open]");
      if (!opener || !chats.length) { return; }
      event.preventDefault();
      chats[0].open(true);
    });
    document.addEventListener("visibilitychange", function () {
      chats.forEach(function (chat) { chat.schedule(); });
    });
  }

  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", init); } else { init(); }
})();
