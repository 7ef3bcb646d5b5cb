// The console's only script: keyboard work on the queue, claims and decisions over fetch,
// the live view (server-sent events), and the operators' what-if. Pages work without it
// (forms and links); this makes them fast.
"use strict";

(function () {
  const body = document.body;
  const csrf = body.dataset.csrf || "";
  const me = body.dataset.me || "";
  const vi = body.dataset.lang !== "en";
  const data = {};
  document.querySelectorAll("#data span").forEach((s) => { data[s.dataset.key] = s.dataset.value; });
  const say = (v, e) => (vi ? v : e);

  async function post(url, payload) {
    const response = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json", "x-csrf-token": csrf },
      body: JSON.stringify(payload),
      credentials: "same-origin",
    });
    let json = {};
    try { json = await response.json(); } catch (_) { /* not JSON */ }
    if (!response.ok) {
      const error = new Error(json.message || response.statusText);
      error.code = json.error || String(response.status);
      throw error;
    }
    return json;
  }

  const moderation = (window.moderation = { lastRoundTrip: null, decided: 0 });

  // ---- The queue ----
  const queue = document.getElementById("queue");
  if (queue) {
    const undoMs = Number(data["undo-ms"] || 0);
    const leaseMs = Number(data["lease-ms"] || 600000);
    let at = 0;
    let pending = null;

    const cards = () => Array.from(queue.querySelectorAll(".card:not(.gone)"));
    const current = () => cards()[at] || null;

    function focusAt(i) {
      const all = cards();
      queue.querySelectorAll(".card.focused").forEach((c) => c.classList.remove("focused"));
      document.getElementById("empty").hidden = all.length > 0;
      if (all.length === 0) { at = 0; return; }
      at = Math.max(0, Math.min(i, all.length - 1));
      const card = all[at];
      card.classList.add("focused");
      card.focus({ preventScroll: true });
      card.scrollIntoView({ block: "nearest" });
    }

    function message(card, text) {
      const m = card.querySelector(".message");
      if (m) { m.textContent = text; card.classList.toggle("refused", Boolean(text)); }
    }

    function showLease(card, by, untilMs) {
      card.dataset.claimedBy = by;
      card.dataset.until = String(untilMs);
      const p = card.querySelector(".lease");
      const until = new Date(untilMs).toISOString().replace("T", " ").slice(0, 19) + " UTC";
      p.textContent = by ? say("Đang được duyệt bởi ", "Claimed by ") + by + say(" đến ", " until ") + until : "";
      p.classList.toggle("mine", by === me);
    }

    async function claim(card) {
      try {
        const answer = await post("/api/claim", { ids: [card.dataset.id] });
        for (const c of answer.claimed) {
          const el = document.getElementById("c-" + c.id);
          if (el) { el.dataset.version = String(c.version); showLease(el, me, c.until_ms); message(el, ""); }
        }
      } catch (e) {
        message(card, e.message);
      }
    }

    // A claim on the open card is renewed while it stays open.
    setInterval(() => {
      const card = current();
      if (card && card.dataset.claimedBy === me) claim(card);
    }, Math.max(1000, leaseMs / 2));

    function targets() {
      const selected = cards().filter((c) => c.querySelector(".sel").checked);
      if (selected.length) return selected;
      const card = current();
      return card ? [card] : [];
    }

    async function send(batch) {
      const payload = {
        items: batch.cards.map((c) => ({ id: c.dataset.id, version: Number(c.dataset.version) })),
        verdict: batch.verdict, label: batch.label, note: batch.note,
      };
      let answer;
      try {
        answer = await post("/api/decide", payload);
      } catch (e) {
        batch.cards.forEach((c) => { c.classList.remove("gone"); message(c, e.message); });
        focusAt(at);
        return false;
      }
      const byId = new Map(batch.cards.map((c) => [c.dataset.id, c]));
      for (const r of answer.results) {
        const card = byId.get(r.id);
        if (!card) continue;
        if (r.ok) { card.remove(); moderation.decided += 1; } else {
          card.classList.remove("gone");
          message(card, r.message);
        }
      }
      return true;
    }

    function hideToast() { document.getElementById("toast").hidden = true; }

    function flush() {
      if (!pending) return;
      const batch = pending;
      pending = null;
      clearTimeout(batch.timer);
      hideToast();
      send(batch);
    }

    async function decide(verdict, label, note, started) {
      const chosen = targets();
      if (!chosen.length) return;
      flush();
      const batch = { cards: chosen, verdict, label, note };
      chosen.forEach((c) => { c.querySelector(".sel").checked = false; });
      if (undoMs <= 0) {
        await send(batch);
        focusAt(at);
        moderation.lastRoundTrip = performance.now() - started;
        return;
      }
      chosen.forEach((c) => c.classList.add("gone"));
      focusAt(at);
      moderation.lastRoundTrip = performance.now() - started;
      pending = batch;
      batch.timer = setTimeout(flush, undoMs);
      const toast = document.getElementById("toast");
      const verb = verdict === "approve" ? say("Đã duyệt", "Approved") : say("Đã từ chối", "Rejected");
      document.getElementById("toast-text").textContent = verb + " " + chosen.length + " · ";
      toast.hidden = false;
    }

    function undo() {
      if (!pending) return;
      clearTimeout(pending.timer);
      pending.cards.forEach((c) => c.classList.remove("gone"));
      const first = pending.cards[0];
      pending = null;
      hideToast();
      focusAt(cards().indexOf(first));
    }

    // A decision waiting for its undo window is sent when the page goes away.
    window.addEventListener("pagehide", () => {
      if (!pending) return;
      const batch = pending;
      pending = null;
      fetch("/api/decide", {
        method: "POST", keepalive: true, credentials: "same-origin",
        headers: { "content-type": "application/json", "x-csrf-token": csrf },
        body: JSON.stringify({
          items: batch.cards.map((c) => ({ id: c.dataset.id, version: Number(c.dataset.version) })),
          verdict: batch.verdict, label: batch.label, note: batch.note,
        }),
      });
    });

    const rejectDialog = document.getElementById("reject-dialog");
    let rejectStarted = 0;
    function askReject(started) {
      if (!targets().length) return;
      rejectStarted = started;
      document.getElementById("reject-note").value = "";
      rejectDialog.showModal();
    }
    rejectDialog.addEventListener("close", () => {
      if (rejectDialog.returnValue !== "confirm") return;
      const label = rejectDialog.querySelector("input[name=label]:checked");
      decide("reject", label && label.value ? label.value : null,
        document.getElementById("reject-note").value, rejectStarted);
    });
    document.getElementById("undo").addEventListener("click", undo);

    queue.addEventListener("click", (e) => {
      const button = e.target.closest("button[data-act]");
      const card = e.target.closest(".card");
      if (!card) return;
      focusAt(cards().indexOf(card));
      if (!button) return;
      const act = button.dataset.act;
      if (act === "claim") claim(card);
      if (act === "approve") decide("approve", null, "", performance.now());
      if (act === "reject") askReject(performance.now());
    });

    document.addEventListener("keydown", (e) => {
      const t = e.target;
      if (e.ctrlKey || e.metaKey || e.altKey) return;
      if (document.querySelector("dialog[open]")) return;
      if (t.matches && t.matches("input:not([type=checkbox]), textarea, select")) {
        if (e.key === "Escape") t.blur();
        return;
      }
      const started = performance.now();
      const card = current();
      switch (e.key) {
        case "j": focusAt(at + 1); break;
        case "k": focusAt(at - 1); break;
        case "c": if (card) claim(card); break;
        case "a": decide("approve", null, "", started); break;
        case "r": askReject(started); break;
        case "x": if (card) { const s = card.querySelector(".sel"); s.checked = !s.checked; } break;
        case "u": undo(); break;
        case "/": document.getElementById("search").focus(); break;
        case ".": flush(); location.reload(); break;
        case "?": document.getElementById("help-dialog").showModal(); break;
        default: return;
      }
      e.preventDefault();
    });

    // The live view: other moderators' claims and decisions, new comments.
    const live = new EventSource("/queue/events");
    let fresh = 0;
    const announce = () => {
      fresh += 1;
      document.getElementById("new-count").textContent = String(fresh);
      document.getElementById("live").hidden = false;
    };
    live.addEventListener("decided", (e) => {
      const d = JSON.parse(e.data);
      const card = document.getElementById("c-" + d.id);
      if (!card || (pending && pending.cards.includes(card))) return;
      const wasCurrent = card === current();
      card.remove();
      if (wasCurrent) focusAt(at); else focusAt(Math.min(at, cards().length - 1));
    });
    live.addEventListener("claimed", (e) => {
      const d = JSON.parse(e.data);
      const card = document.getElementById("c-" + d.id);
      if (!card) return;
      card.dataset.version = String(d.version);
      showLease(card, d.by, d.until_ms);
    });
    live.addEventListener("held", announce);
    live.addEventListener("reported", announce);
    live.addEventListener("reload", announce);
    live.addEventListener("open", () => { body.dataset.live = "open"; });

    focusAt(0);
  }

  // ---- The operators' what-if ----
  const form = document.getElementById("thresholds");
  if (form) {
    let timer = null;
    const inputs = Array.from(form.querySelectorAll("input.whatif"));
    async function whatif() {
      const query = inputs.map((i) => i.name + "=" + encodeURIComponent(i.value)).join("&");
      const response = await fetch("/api/whatif?" + query, { credentials: "same-origin" });
      if (!response.ok) return;
      const answer = await response.json();
      const total = answer.total || 0;
      for (const [row, split] of [["now", answer.now], ["whatif", answer.candidate]]) {
        for (const k of ["accepted", "held", "rejected"]) {
          document.getElementById(row + "-" + k).textContent = String(split[k]);
          const pct = document.getElementById(row + "-" + k + "-pct");
          if (pct) pct.textContent = total ? "(" + ((split[k] * 100) / total).toFixed(1) + " %)" : "(–)";
        }
      }
      document.getElementById("whatif-problems").textContent = answer.problems.join("; ");
      form.dataset.whatif = query;
    }
    form.querySelectorAll("input[type=range]").forEach((range) => {
      const number = document.getElementById(range.dataset.mirror);
      range.addEventListener("input", () => { number.value = range.value; number.dispatchEvent(new Event("input")); });
      number.addEventListener("input", () => { range.value = number.value; });
    });
    // The dashed lines show the thresholds being tried.
    const moveLines = (input) => {
      const x = (Math.min(1, Math.max(0, Number(input.value) || 0)) * 400).toFixed(1);
      document.querySelectorAll("line.t-new[data-threshold=" + input.name + "]").forEach((l) => {
        l.setAttribute("x1", x); l.setAttribute("x2", x);
      });
    };
    inputs.forEach((i) => i.addEventListener("input", () => {
      moveLines(i);
      clearTimeout(timer);
      timer = setTimeout(whatif, 120);
    }));
  }
})();
