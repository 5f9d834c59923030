// The operator's view: polls GET /ops/overview (read-only, operator key) once a second.
const $ = (id) => document.getElementById(id);
const POLL_MS = 1000;
const TIER_COLORS = { mock: "#8b98a5", lite: "#3fb950", standard: "#4fa3ff", pro: "#d2a8ff" };
let timer = null;

function key() { return sessionStorage.getItem("protoface.operator") ?? ""; }

function cell(text, className) {
  const td = document.createElement("td");
  if (className) td.className = className;
  td.textContent = text ?? "–";
  return td;
}

function pill(text, kind = text) {
  const td = document.createElement("td");
  const span = document.createElement("span");
  span.className = `pill ${kind}`;
  span.textContent = text;
  td.append(span);
  return td;
}

function row(...cells) {
  const tr = document.createElement("tr");
  tr.append(...cells);
  return tr;
}

const time = (iso) => (iso ? new Date(iso).toISOString().slice(11, 19) : "–");

async function poll() {
  const status = $("status-filter").value;
  const query = status ? `?status=${encodeURIComponent(status)}` : "";
  const response = await fetch(`/ops/overview${query}`, { headers: { Authorization: `Bearer ${key()}` } });
  const data = await response.json();
  if (!response.ok) {
    $("key-status").textContent = data.error?.message ?? `HTTP ${response.status}`;
    $("key-status").classList.add("error");
    stop();
    return;
  }
  $("key-status").textContent = "";
  for (const id of ["sessions-panel", "usage-panel", "workers-panel", "deliveries-panel"]) $(id).hidden = false;
  render(data);
  $("updated").textContent = `updated ${time(data.at)} UTC`;
}

function render(data) {
  $("counts").replaceChildren(...Object.entries(data.counts_by_status).sort().map(([s, n]) => {
    const span = document.createElement("span");
    span.className = `pill ${s}`;
    span.textContent = `${s} ${n}`;
    return span;
  }));
  $("sessions").replaceChildren(...data.sessions.map((s) => row(
    cell(s.id, "mono"), cell(s.org_id, "mono"), pill(s.status), cell(s.avatar_id, "mono"),
    cell(s.quality), cell(time(s.created_at)),
    cell(s.time_to_first_frame_ms === null ? null : `${s.time_to_first_frame_ms} ms`),
    cell(`${s.billable_seconds} s`), cell(s.credits === null ? null : s.credits.toFixed(1)),
    cell(String(s.frames)), cell(s.failure_code ?? s.end_reason),
  )));
  renderUsage(data.usage_by_day);
  const live = data.workers.filter((w) => w.live);
  $("capacity").textContent = `${live.length} live worker(s), ${live.reduce((n, w) => n + w.free, 0)} of ${live.reduce((n, w) => n + w.slots, 0)} slots free`;
  $("workers").replaceChildren(...data.workers.map((w) => row(
    cell(w.worker_id, "mono"), pill(w.draining ? "draining" : w.live ? "live" : "lost"),
    cell(String(w.slots)), cell(String(w.free)), cell(String(w.sessions)), cell(`${w.seen_seconds_ago} s ago`),
  )));
  $("deliveries").replaceChildren(...data.deliveries.map((d) => {
    const attempts = document.createElement("td");
    const list = document.createElement("div");
    list.className = "attempts";
    for (const a of d.attempts) {
      const span = document.createElement("span");
      span.className = `pill ${a.outcome}`;
      span.title = a.error ?? "";
      span.textContent = `#${a.attempt} ${a.status ?? "no answer"} ${a.outcome} ${time(a.at)}`;
      list.append(span);
    }
    attempts.append(list);
    return row(cell(d.webhook_id, "mono"), cell(d.endpoint_id, "mono"), cell(d.event_type),
      cell(d.session_id, "mono"), attempts);
  }));
}

function renderUsage(rows) {
  const canvas = $("usage-chart");
  const g = canvas.getContext("2d");
  g.clearRect(0, 0, canvas.width, canvas.height);
  const days = [...new Set(rows.map((r) => r.day))].sort();
  const tiers = [...new Set(rows.map((r) => r.quality))].sort();
  const minutes = (r) => r.billable_seconds / 60;
  const totals = days.map((d) => rows.filter((r) => r.day === d).reduce((n, r) => n + minutes(r), 0));
  const top = Math.max(1 / 60, ...totals);
  const pad = 28, width = canvas.width - pad * 2, height = canvas.height - pad * 2;
  const bar = days.length ? Math.min(48, width / days.length - 8) : 0;
  g.font = "11px system-ui"; g.fillStyle = "#8b98a5";
  g.fillText(`${top.toFixed(1)} min`, 2, pad - 8);
  g.strokeStyle = "#2a3542"; g.beginPath(); g.moveTo(pad, pad + height); g.lineTo(pad + width, pad + height); g.stroke();
  days.forEach((day, i) => {
    const x = pad + i * (width / days.length) + 4;
    let y = pad + height;
    for (const tier of tiers) {
      const r = rows.find((item) => item.day === day && item.quality === tier);
      if (!r) continue;
      const h = Math.max(1, (minutes(r) / top) * height);
      g.fillStyle = TIER_COLORS[tier] ?? "#e6edf3";
      g.fillRect(x, y - h, bar, h);
      y -= h;
    }
    g.fillStyle = "#8b98a5";
    g.fillText(day.slice(5), x, pad + height + 14);
  });
  if (!days.length) { g.fillStyle = "#8b98a5"; g.fillText("no usage yet", pad + 8, pad + height / 2); }
  $("usage-legend").replaceChildren(...tiers.map((tier) => {
    const span = document.createElement("span");
    const swatch = document.createElement("i");
    swatch.style.background = TIER_COLORS[tier] ?? "#e6edf3";
    span.append(swatch, tier);
    return span;
  }));
}

function stop() { if (timer !== null) clearInterval(timer); timer = null; }

function start() {
  stop();
  poll().catch((error) => { $("key-status").textContent = error.message; });
  timer = setInterval(() => poll().catch(() => {}), POLL_MS);
}

$("operator-key").value = key();
$("open").onclick = () => { sessionStorage.setItem("protoface.operator", $("operator-key").value.trim()); start(); };
$("status-filter").onchange = () => start();
if (key()) start();
