// Live updates: the server pushes one SSE event per new ledger entry; the page then fetches
// itself once and swaps in the new content. No timers: EventSource's own reconnection only.
(function () {
  "use strict";
  var body = document.body;
  var feed = document.getElementById("live-feed");
  var source = new EventSource("/events?after=" + body.dataset.head);
  var busy = false;
  var again = false;

  function swap(id, doc) {
    var fresh = doc.getElementById(id);
    var old = document.getElementById(id);
    if (fresh && old) { old.replaceWith(fresh); }
    else if (fresh && !old) { document.querySelector("header").after(fresh); }
  }

  function refresh() {
    if (busy) { again = true; return; }
    busy = true;
    fetch(window.location.href, { cache: "no-store" })
      .then(function (response) { return response.text(); })
      .then(function (html) {
        var doc = new DOMParser().parseFromString(html, "text/html");
        swap("main", doc);
        swap("broken", doc);
        swap("live-state", doc);
        body.dataset.head = doc.body.dataset.head;
      })
      .finally(function () {
        busy = false;
        if (again) { again = false; refresh(); }
      });
  }

  source.addEventListener("entry", function (event) {
    var e = JSON.parse(event.data);
    var item = document.createElement("li");
    item.className = "fresh";
    item.textContent = "entry " + e.seq + ": " + e.kind + " by " + e.org +
      (e.round === null ? "" : " (round " + e.round + ")");
    feed.insertBefore(item, feed.firstChild);
    while (feed.children.length > 6) { feed.removeChild(feed.lastChild); }
    refresh();
  });
  source.addEventListener("broken", refresh);
})();
