// pbx-lite web admin: the dashboard's live tables (Server-Sent Events from /events) and a
// confirmation before deleting. Values go into the page as text, never as HTML.
"use strict";

function cell(row, text, cls) {
  const td = row.insertCell();
  td.textContent = text;
  if (cls) td.className = cls;
  return td;
}

function fillCalls(calls) {
  const body = document.querySelector("#calls tbody");
  body.replaceChildren();
  for (const c of calls) {
    const r = body.insertRow();
    for (const v of [c.caller, c.dialled, c.callee, c.state, c.since, c.seconds, c.media, c.encrypted]) {
      cell(r, String(v));
    }
  }
}

function fillPhones(phones) {
  const body = document.querySelector("#phones tbody");
  body.replaceChildren();
  for (const p of phones) {
    const r = body.insertRow();
    r.dataset.number = p.number;
    const a = document.createElement("a");
    a.href = "/stations/" + encodeURIComponent(p.number);
    a.textContent = p.number;
    r.insertCell().appendChild(a);
    cell(r, p.name);
    cell(r, p.registered ? "yes" : "no", p.registered ? "yes" : "no");
    cell(r, p.address);
    cell(r, p.transport);
    cell(r, p.nat ? "yes" : "no");
    cell(r, p.user_agent);
    cell(r, p.messages_new + "/" + p.messages_old);
  }
}

function fillTrunks(trunks) {
  const body = document.querySelector("#trunks tbody");
  if (!body) return;
  body.replaceChildren();
  for (const t of trunks) {
    const r = body.insertRow();
    cell(r, t.name);
    cell(r, t.state);
  }
}

function live() {
  if (!document.getElementById("live")) return;
  const events = new EventSource("/events");
  events.onmessage = (e) => {
    const d = JSON.parse(e.data);
    document.getElementById("registered").textContent = d.registered;
    document.getElementById("stations").textContent = d.stations;
    document.getElementById("call-count").textContent = d.calls.length;
    fillCalls(d.calls);
    fillPhones(d.phones);
    fillTrunks(d.trunks);
    document.body.dataset.updated = String(Date.now());
  };
}

function confirmations() {
  for (const form of document.querySelectorAll("form[data-confirm]")) {
    form.addEventListener("submit", (e) => {
      if (!window.confirm(form.dataset.confirm)) e.preventDefault();
    });
  }
}

document.addEventListener("DOMContentLoaded", () => {
  live();
  confirmations();
});
