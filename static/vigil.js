// Vigil's page behaviour on top of htmx (no framework). Pages work without
// it; with it, boosted navigation keeps focus and screen readers in step,
// and the case queue and case page get keyboard shortcuts (press ?).
(function () {
  "use strict";

  // After a swap: focus what a person must read first (an error or
  // notice, else the page's heading) and announce the page.
  document.addEventListener("htmx:afterSettle", function () {
    var main = document.getElementById("main");
    if (!main) return;
    var first = main.querySelector("[role=alert], .error") || main.querySelector("h1");
    if (first) {
      if (!first.hasAttribute("tabindex")) first.setAttribute("tabindex", "-1");
      first.focus({ preventScroll: false });
    }
    var status = document.getElementById("status");
    if (status) status.textContent = document.title;
  });

  // A submit button may ask for confirmation itself (data-confirm): htmx's
  // hx-confirm applies to the form, not to one of its buttons.
  document.addEventListener("submit", function (e) {
    var b = e.submitter;
    if (b && b.dataset && b.dataset.confirm && !window.confirm(b.dataset.confirm)) {
      e.preventDefault();
      e.stopImmediatePropagation();
    }
  }, true);

  // Keyboard shortcuts. j/k move through a list's rows, o opens the
  // selected one, x checks it, a assigns it (or the open case) to me,
  // y approves the case's draft (after a confirmation), n starts its
  // rejection (the reason field),
  // / focuses the search box, g then a/c jump to Approvals/Cases, ?
  // shows this help.
  function rows() {
    return Array.prototype.slice.call(document.querySelectorAll("[data-row]"));
  }
  function selected() {
    return document.querySelector("[data-row].selected");
  }
  function select(el) {
    var cur = selected();
    if (cur) cur.classList.remove("selected");
    if (el) {
      el.classList.add("selected");
      var link = el.querySelector("a");
      if (link) link.focus();
    }
  }
  function typing(e) {
    var t = e.target;
    return t && (t.tagName === "INPUT" || t.tagName === "TEXTAREA" || t.tagName === "SELECT" || t.isContentEditable);
  }
  var pendingG = false;
  document.addEventListener("keydown", function (e) {
    if (e.ctrlKey || e.metaKey || e.altKey || typing(e)) return;
    var help = document.getElementById("shortcuts");
    if (pendingG) {
      pendingG = false;
      if (e.key === "a") { location.href = "/gates"; return; }
      if (e.key === "c") { location.href = "/cases"; return; }
    }
    var list = rows();
    var cur = selected();
    var i = cur ? list.indexOf(cur) : -1;
    switch (e.key) {
      case "?":
        if (help) { help.hidden = !help.hidden; if (!help.hidden) help.focus(); }
        e.preventDefault();
        break;
      case "Escape":
        if (help) help.hidden = true;
        break;
      case "j":
        if (list.length) { select(list[Math.min(i + 1, list.length - 1)]); e.preventDefault(); }
        break;
      case "k":
        if (list.length) { select(list[Math.max(i - 1, 0)]); e.preventDefault(); }
        break;
      case "o":
        if (cur) { var a = cur.querySelector("a"); if (a) a.click(); }
        break;
      case "y":
        // Approve the case's draft: its button asks to confirm first.
        var approve = document.querySelector("[data-key=approve]");
        if (approve) { approve.click(); e.preventDefault(); }
        break;
      case "n":
        // Reject the draft: the reason comes first (then Enter).
        var reason = document.querySelector("[data-key=reject]");
        if (reason) { reason.focus(); e.preventDefault(); }
        break;
      case "x":
        if (cur) { var box = cur.querySelector("input[type=checkbox]"); if (box) box.checked = !box.checked; }
        break;
      case "a":
        var assign = document.querySelector("[data-key=assign]");
        if (assign) { assign.click(); break; }
        var bulk = document.getElementById("bulk");
        var mine = cur && cur.querySelector("input[type=checkbox]");
        if (bulk && mine) {
          mine.checked = true;
          var go = bulk.querySelector("button[value=assign_me]");
          if (go) go.click();
        }
        break;
      case "/":
        var q = document.querySelector("input[type=search]");
        if (q) { q.focus(); e.preventDefault(); }
        break;
      case "g":
        pendingG = true;
        break;
    }
  });
})();
