/* fatigue-guard dashboard: fetches each panel's JSON from this server and draws it.
 *
 * Text goes into the page through textContent only (report reasons and actors are free text),
 * and no style attribute is written (the page's Content-Security-Policy forbids inline styles;
 * sizes are set through the CSSOM, as uPlot does). */
"use strict";
(function () {
  const API = "/v1/admin/dashboard/";
  const PANELS = ["serving", "traffic", "process", "performance", "drift", "retraining", "pipeline"];
  const REFRESH_MS = 30000;
  const PALETTE = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2",
    "#ca8a04", "#db2777", "#4b5563", "#65a30d", "#7c3aed", "#0f766e"];
  const BAND_STROKE = "rgba(37, 99, 235, 0.35)";
  const BAND_FILL = "rgba(37, 99, 235, 0.12)";
  const REFERENCE = "#6b7280";

  const state = { data: {}, charts: {}, loaded: false, stopped: false, errors: [] };
  window.fgDashboard = state;

  // -- small DOM helpers ------------------------------------------------------------------
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") node.className = value;
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children.flat(Infinity)) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : String(child));
    }
    return node;
  }
  const $ = (id) => document.getElementById(id);
  // replaceChildren, leaving out the parts a panel does not have (null, false).
  function fill(node, ...items) { node.replaceChildren(...items.flat(Infinity).filter((i) => i !== null && i !== undefined && i !== false)); }

  function num(v, digits) {
    if (v === null || v === undefined || Number.isNaN(v)) return "–";
    const d = digits === undefined ? (Math.abs(v) >= 100 ? 0 : Math.abs(v) >= 10 ? 1 : 3) : digits;
    return Number(v).toFixed(d);
  }
  function pct(v, digits) { return v === null || v === undefined ? "–" : num(100 * v, digits === undefined ? 1 : digits) + " %"; }
  function when(iso) {
    if (!iso) return "–";
    const d = new Date(iso);
    if (Number.isNaN(d.getTime())) return iso;
    const pad = (n) => String(n).padStart(2, "0");
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}`;
  }
  function ago(iso) {
    if (!iso) return "";
    const s = (Date.now() - new Date(iso).getTime()) / 1000;
    if (!Number.isFinite(s)) return "";
    if (s < 90) return `${Math.max(0, Math.round(s))} s ago`;
    if (s < 5400) return `${Math.round(s / 60)} min ago`;
    if (s < 172800) return `${Math.round(s / 3600)} h ago`;
    return `${Math.round(s / 86400)} days ago`;
  }
  function bytes(n) {
    if (n === null || n === undefined) return "–";
    if (n < 1024) return `${n} B`;
    if (n < 1048576) return `${(n / 1024).toFixed(1)} KiB`;
    return `${(n / 1048576).toFixed(1)} MiB`;
  }
  function pill(text, kind) { return el("span", { class: "pill " + (kind || "") }, text); }
  function fact(key, ...value) {
    return el("div", { class: "fact" }, el("span", { class: "k" }, key), el("span", { class: "v" }, ...value));
  }
  function empty(text) { return el("p", { class: "empty" }, text); }
  function table(node, head, rows) {
    node.replaceChildren(
      el("thead", {}, el("tr", {}, head.map((h) => el("th", { scope: "col" }, h)))),
      el("tbody", {}, rows));
  }
  function short(id) { return id ? String(id).slice(0, 8) : "–"; }

  // -- charts -------------------------------------------------------------------------------
  function chartFigure(spec) {
    const fig = el("figure", { class: "chart", id: "chart-" + spec.id, "data-chart": spec.id,
      "data-points": spec.points },
      el("figcaption", {}, spec.title, el("span", { class: "source" }, "from " + spec.source)));
    return fig;
  }

  function drawChart(host, spec) {
    const old = state.charts[spec.id];
    if (old && old.plot) old.plot.destroy();
    delete state.charts[spec.id];
    const fig = chartFigure(spec);
    host.append(fig);
    if (spec.empty) {
      fig.append(empty(spec.empty));
      state.charts[spec.id] = { spec, plot: null };
      return;
    }
    const plotNode = el("div", { class: "plot" });
    fig.append(plotNode);
    const bandKeys = new Set(spec.bands.flatMap((b) => [b.upper, b.lower]));
    const index = {};
    const series = [{ label: "time" }];
    let colour = 0;
    spec.series.forEach((s, i) => {
      index[s.key] = i + 1;
      const band = bandKeys.has(s.key);
      const stroke = s.reference ? REFERENCE : band ? BAND_STROKE : PALETTE[colour++ % PALETTE.length];
      const unit = s.unit ? " " + s.unit : "";
      // Points where lines cannot show a value: every point of a sparse series, and a dense
      // series' isolated points (no neighbour to draw a segment to).
      const sparse = s.values.filter((v) => v !== null).length <= 48;
      const isolated = s.values
        .map((v, j) => (v !== null && (j === 0 || s.values[j - 1] === null) && (j === s.values.length - 1 || s.values[j + 1] === null) ? j : -1))
        .filter((j) => j >= 0);
      const marked = !band && !s.reference;
      series.push({
        label: s.label,
        stroke,
        width: band ? 1 : s.reference ? 1.5 : 2,
        dash: s.dash ? [6, 4] : undefined,
        scale: s.axis === "y2" ? "y2" : "y",
        show: s.show,
        spanGaps: false,
        points: {
          show: marked && sparse,
          filter: (u, si, show) => (show || !marked || !isolated.length ? null : isolated),
          size: 6,
          fill: stroke,
        },
        value: (u, v) => (v === null || v === undefined ? "–" : num(v) + unit),
      });
    });
    const yRange = spec.y_range;
    const scales = {
      x: {
        time: true,
        range: (u, min, max) => (min === max ? [min - 1800, max + 1800] : [min, max]),
      },
      y: yRange ? { range: () => yRange } : {
        range: (u, min, max) => {
          if (min === null || max === null) return [0, 1];
          const lo = Math.min(0, min);
          const hi = max > lo ? max * 1.1 : lo + 1;
          return [lo, hi];
        },
      },
    };
    const axes = [{}, { scale: "y", label: spec.y_label, size: 58 }];
    if (spec.y2_label) {
      scales.y2 = { range: (u, min, max) => [0, Math.max(5, (max || 0) * 1.1)] };
      axes.push({ scale: "y2", side: 1, label: spec.y2_label, grid: { show: false }, size: 58 });
    }
    const bands = spec.bands
      .filter((b) => index[b.upper] && index[b.lower])
      .map((b) => ({ series: [index[b.upper], index[b.lower]], fill: BAND_FILL }));
    const width = Math.max(240, plotNode.clientWidth || host.clientWidth || 320);
    const opts = { width, height: 220, series, axes, scales, bands, legend: { live: true }, cursor: { drag: { x: false, y: false } } };
    const data = [spec.x, ...spec.series.map((s) => s.values)];
    const plot = new uPlot(opts, data, plotNode);
    state.charts[spec.id] = { spec, plot, node: plotNode };
  }

  function drawCharts(hostId, charts) {
    const host = $(hostId);
    host.replaceChildren();
    for (const spec of charts) drawChart(host, spec);
  }

  let resizeTimer = null;
  function resizeAll() {
    for (const entry of Object.values(state.charts)) {
      if (!entry.plot) continue;
      const w = Math.max(240, entry.node.clientWidth);
      if (Math.abs(w - entry.plot.width) > 2) entry.plot.setSize({ width: w, height: 220 });
    }
  }
  window.addEventListener("resize", () => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(resizeAll, 120);
  });

  // -- panels -------------------------------------------------------------------------------
  function tile(label, value, note, kind) {
    return el("div", { class: "tile " + (kind || "") },
      el("div", { class: "label" }, label), el("div", { class: "value" }, value),
      el("div", { class: "note" }, note || ""));
  }

  function renderGlance() {
    const d = state.data;
    const tiles = [];
    const sv = d.serving;
    if (sv) {
      const prod = sv.production || {};
      const served = sv.served;
      const version = served ? "v" + served.version : prod.version ? "v" + prod.version : "none";
      const since = prod.since ? `production since ${when(prod.since)} (${prod.action || "move"})` : "";
      tiles.push(tile("Serving", version,
        served ? `${since}; threshold ${num(served.threshold, 4)}; floor ${num(sv.alerting.precision_floor, 2)}`
          : sv.served_empty, served && sv.in_step ? "ok" : "warn"));
    }
    const pf = d.performance && d.performance.latest;
    if (pf) {
      const below = pf.precision_interval && pf.precision_interval[1] !== null && pf.precision_interval[1] < pf.floor;
      tiles.push(tile("Live precision", pf.precision === null ? "no labels yet" : num(pf.precision, 3),
        `${pf.precision_interval ? `95% ${num(pf.precision_interval[0], 2)}–${num(pf.precision_interval[1], 2)}, ` : ""}floor ${num(pf.floor, 2)}; estimate ${num(pf.estimated_precision, 3)}`,
        pf.precision_breach || pf.estimated_precision_breach || below ? "bad" : pf.precision === null ? "warn" : "ok"));
    } else if (d.performance) {
      tiles.push(tile("Live precision", "no report yet", "the monitor's first report fills this", "warn"));
    }
    const dr = d.drift && d.drift.latest;
    if (dr) {
      tiles.push(tile("Drift verdict", dr.breach ? "BREACH" : "within envelope",
        `report #${dr.report_id}, ${ago(dr.created_at)}${dr.breach ? "; " + (dr.reasons[0] || "") : ""}`,
        dr.breach ? "bad" : "ok"));
    } else if (d.drift) {
      tiles.push(tile("Drift verdict", "no report yet", "stored reports fill this", "warn"));
    }
    const pp = d.pipeline;
    if (pp && pp.outbox) {
      const o = pp.outbox;
      const late = o.lag_s > 10 * Math.max(1, o.flush_max_age_s);
      tiles.push(tile("Recording pipeline", `${o.pending} waiting`,
        `shipping lag ${num(o.lag_s, 1)} s; spool ${pp.spool.files} files (${bytes(pp.spool.bytes)})`,
        o.failing > 0 || pp.spool.files > 0 || late ? "warn" : "ok"));
    }
    if (pp && pp.edge) {
      const b = pp.edge.bundle;
      tiles.push(tile("Edge", b ? `bundle v${b.model_version} (${b.kind})` : "no bundle",
        `${pct(pp.edge.share)} of events from phones`, b && pp.edge.matches_production ? "ok" : "warn"));
    }
    fill($("glance"), tiles);
  }

  function renderServing(d) {
    const facts = $("serving-facts");
    const prod = d.production || {};
    const served = d.served;
    const items = [];
    if (served) {
      items.push(fact("Served by this process", `v${served.version} `, pill(served.source || "registry"),
        el("span", { class: "detail" }, ` loaded ${when(served.loaded_at)}`)));
      items.push(fact("Threshold", num(served.threshold, 4)));
    } else {
      items.push(fact("Served by this process", pill("none", "warn"), " ", d.served_empty));
    }
    items.push(fact("Production alias", prod.version ? `v${prod.version}` : "–",
      prod.since ? ` since ${when(prod.since)}` : "", prod.action ? " " : "", prod.action ? pill(prod.action) : ""));
    if (!d.in_step) items.push(fact("Replica", pill("not yet on production", "warn")));
    if (d.staging) items.push(fact("Staging", `v${d.staging}`));
    const a = d.alerting;
    items.push(fact("Alerting", el("span", { class: "long" }, `${a.rule}; the threshold is ${a.threshold_rule}`)));
    items.push(fact("Precision floor", num(a.precision_floor, 2)));
    const r = a.drift_response;
    items.push(fact("On drift", el("span", { class: "long" }, r.monitor_enabled
      ? `monitor every ${num(r.interval_h, 1)} h over ${num(r.window_h, 0)} h; breach → retrain (${r.retrain_trigger}), cool-down ${num(r.cooldown_h, 0)} h`
      : `in-process monitor off; retrain trigger ${r.retrain_trigger}`)));
    if (d.registry_error) items.push(fact("Registry", el("span", { class: "error" }, d.registry_error)));
    if (d.sql_error) items.push(fact("SQL", el("span", { class: "error" }, d.sql_error)));
    fill(facts, items);

    if (d.empty) {
      $("versions").replaceChildren(el("caption", {}, empty(d.empty)));
    } else {
      table($("versions"), ["version", "aliases", "registered", "threshold", "hold-out P / R / PR-AUC", "gate", "gate metrics (candidate vs production)", "deployed"],
        d.versions.map((v) => {
          const g = v.gate || {};
          const m = g.metrics || {};
          const gateKind = g.result === "passed" || g.result === "initial" ? "ok" : g.result === "rejected" ? "bad" : "";
          const metrics = m.candidate_precision !== undefined
            ? `P ${num(m.candidate_precision, 3)} vs ${num(m.production_precision, 3)}; R ${num(m.candidate_recall, 3)} vs ${num(m.production_recall, 3)} (${num(m.rows, 0)} rows)`
            : "–";
          const deployed = (v.moves || []).map((mv) => `${mv.action || "move"} ${when(mv.at)}`).join("; ");
          return el("tr", { id: "version-" + v.version },
            el("td", {}, el("strong", {}, "v" + v.version), el("div", { class: "detail" }, "run " + short(v.run_id))),
            el("td", {}, v.aliases.map((al) => pill(al, al === "production" ? "ok" : "")), v.rolled_back ? pill("rolled back", "warn") : "", v.alerting === "advisory" ? pill("advisory: alerts off", "warn") : ""),
            el("td", { class: "num" }, when(v.registered_at)),
            el("td", { class: "num" }, num(v.threshold, 4)),
            el("td", { class: "num" }, `${num(v.holdout.precision, 3)} / ${num(v.holdout.recall, 3)} / ${num(v.holdout.pr_auc, 3)}`),
            el("td", { class: "reason" }, g.result ? pill(g.result, gateKind) : "–", g.reason ? " " + g.reason : ""),
            el("td", { class: "reason" }, metrics),
            el("td", { class: "reason" }, deployed || "–"));
        }));
    }
    if (!d.moves.length) {
      $("moves").replaceChildren(el("caption", {}, empty("No alias move recorded yet: the first registration, each promotion and each rollback appear here with who, when and why.")));
    } else {
      table($("moves"), ["when", "move", "action", "by", "why", "retraining run"],
        d.moves.map((m) => el("tr", { id: m.id !== null ? "deployment-" + m.id : null },
          el("td", { class: "num" }, when(m.at)),
          el("td", { class: "num" }, `${m.from ? "v" + m.from : "–"} → v${m.to}`),
          el("td", {}, pill(m.action || "move", m.action === "rollback" ? "warn" : "")),
          el("td", {}, m.actor || "–"),
          el("td", { class: "reason" }, m.reason || "–"),
          el("td", {}, m.retrain_run_id ? el("a", { href: "#retrain-" + m.retrain_run_id }, "#" + m.retrain_run_id) : "–"))));
    }
  }

  function renderTraffic(d) {
    $("traffic-facts").replaceChildren(
      fact(`Predictions (${num(d.hours, 0)} h)`, String(d.totals.predictions)),
      fact("Edge events", String(d.totals.edge)),
      fact("Alert rate", pct(d.alert_rate)),
      fact("Feedback received", String(d.totals.feedback)),
      fact("Bucket", `${d.step_s} s`));
    drawCharts("traffic-charts", d.charts);
  }

  function renderProcess(d) {
    const s = d.sampler;
    $("process-facts").replaceChildren(
      fact("Process", s ? `pid ${s.pid}` : "–"),
      fact("Sampled every", s ? `${s.interval_s} s` : "–"),
      fact("Since", s && s.started_at ? when(new Date(s.started_at * 1000).toISOString()) : "–"));
    drawCharts("process-charts", d.charts);
  }

  function interval(pair) {
    return pair ? `${num(pair[0], 3)}–${num(pair[1], 3)}` : "–";
  }

  function renderPerformance(d) {
    const l = d.latest;
    if (!l) {
      $("performance-facts").replaceChildren();
    } else {
      const pKind = l.precision_breach ? "bad" : l.precision === null ? "" : "ok";
      fill($("performance-facts"),
        fact("Precision", num(l.precision, 3), " ", el("span", { class: "detail" }, `95% ${interval(l.precision_interval)}`), " ", pill(l.precision_breach ? "below floor" : l.precision === null ? "no labels" : "ok", pKind)),
        fact("Recall", num(l.recall, 3), " ", el("span", { class: "detail" }, `95% ${interval(l.recall_interval)}`)),
        fact("Label-free estimate", `P ${num(l.estimated_precision, 3)} / R ${num(l.estimated_recall, 3)}`, l.estimated_precision_breach ? pill("below floor", "bad") : ""),
        fact("Floor", num(l.floor, 2)),
        fact("Labels", `${l.labels} (${l.labelled_alerts} alerts; breach judged from ${l.min_labels})`),
        fact("Report", `#${l.report_id}, ${when(l.created_at)}`),
        l.calibration_drift ? fact("Calibration", pill("drift", "bad")) : null);
    }
    drawCharts("performance-charts", d.charts);
  }

  function renderDrift(d) {
    const l = d.latest;
    if (!l) {
      $("drift-facts").replaceChildren();
      $("drift-features").replaceChildren();
    } else {
      fill($("drift-facts"),
        fact("Latest verdict", pill(l.breach ? "breach" : "no breach", l.breach ? "bad" : "ok"),
          l.triggered ? " retraining triggered" : l.suppressed ? ` (${l.suppressed})` : ""),
        fact("Report", `#${l.report_id}, ${when(l.created_at)}, ${l.rows} rows`),
        fact("Window", l.window ? `${when(l.window.start)} → ${when(l.window.end)}` : "–"),
        fact("HTML report", l.html_url ? el("a", { href: l.html_url, target: "_blank", rel: "noopener" }, `report #${l.report_id}`) : "not stored"),
        l.reasons.length ? fact("Reasons", el("ul", {}, l.reasons.map((r) => el("li", {}, r)))) : null);
      const max = Math.max(d.psi_threshold * 2, ...l.features.map((f) => f.psi || 0));
      table($("drift-features"), ["feature", "PSI", "Wasserstein (sd)", "verdict"],
        l.features.map((f) => {
          const bar = el("span", { class: "bar" + ((f.psi || 0) >= d.psi_threshold ? " over" : "") });
          bar.style.width = `${Math.round(60 * (f.psi || 0) / max)}px`;
          return el("tr", {},
            el("td", {}, f.name),
            el("td", { class: "num" }, bar, num(f.psi, 3)),
            el("td", { class: "num" }, num(f.wasserstein, 2)),
            el("td", {}, f.drifted ? pill("drifted", "bad") : pill("ok", "ok"), f.missing_drifted ? pill("missing share", "warn") : "", f.where && f.drifted ? " " + f.where : ""));
        }));
    }
    drawCharts("drift-charts", d.charts);
  }

  function link(kind, body, detail, href) {
    const inner = [el("span", { class: "k" }, kind), href ? el("a", { href }, body) : el("span", {}, body)];
    if (detail) inner.push(el("span", { class: "detail" }, detail));
    return el("div", { class: "link" }, inner);
  }
  const arrow = () => el("span", { class: "arrow", "aria-hidden": "true" }, "→");

  function renderRetraining(d) {
    const list = $("chain");
    if (d.empty) {
      list.replaceChildren(el("li", {}, empty(d.empty)));
      return;
    }
    list.replaceChildren(...d.runs.map((run) => {
      const r = run.drift_report;
      const report = r
        ? link("drift report", `#${r.id}${r.breached ? " (breach)" : ""}`, r.reasons.join("; ") || when(r.created_at), r.html_url)
        : link("drift report", run.drift_report_id ? `#${run.drift_report_id} (not stored)` : "none", `trigger: ${run.trigger}`);
      const mlflowRun = link("MLflow run", run.mlflow_run_id ? short(run.mlflow_run_id) : "–", run.mlflow_run_id ? `${run.data.baseline_rows || 0} baseline + ${run.data.live_labelled_rows || 0} live rows` : run.outcome || "");
      const v = run.version;
      const version = v ? link("version", `v${v.version}`, v.aliases.join(", ") || when(v.registered_at), "#version-" + v.version) : link("version", "none registered", run.outcome || "");
      const g = run.gate;
      const gate = g ? link("gate", g.passed ? "passed" : "rejected", g.reason || "", v ? "#version-" + v.version : null) : link("gate", "not run", run.status);
      const deployments = run.deployments.length
        ? run.deployments.map((m) => link("deployment", `v${m.from || "–"} → v${m.to}`, `${when(m.at)} by ${m.actor}`, m.id !== null ? "#deployment-" + m.id : null))
        : [link("deployment", "none", run.promoted ? "" : "not promoted")];
      const rolled = run.rolled_back.map((m) => link("rolled back", `v${m.from} → v${m.to}`, when(m.at), m.id !== null ? "#deployment-" + m.id : null));
      const head = el("div", { class: "chain-head" },
        el("strong", {}, `Run #${run.id}`), " ", pill(run.status, run.status === "promoted" ? "ok" : run.status === "running" ? "" : "warn"),
        ` started ${when(run.started_at)}; ${run.reason || ""}`);
      const chain = el("div", { class: "chain" }, report, arrow(), mlflowRun, arrow(), version, arrow(), gate, arrow(), deployments, rolled.length ? [arrow(), rolled] : null);
      return el("li", { id: "retrain-" + run.id }, head, chain);
    }));
  }

  function renderPipeline(d) {
    const items = [];
    const o = d.outbox;
    if (o) {
      items.push(fact("Outbox backlog", `${o.pending}`, el("span", { class: "detail" }, ` (${o.unclaimed} unclaimed)`)));
      items.push(fact("Shipping lag now", `${num(o.lag_s, 1)} s`, el("span", { class: "detail" }, ` (flush at ${o.flush_max_records} records or ${o.flush_max_age_s} s)`)));
      if (o.failing) items.push(fact("Failing", pill(`${o.failing} records, ${o.max_attempts} attempts`, "bad"), " ", o.last_error || ""));
    }
    const s = d.spool;
    items.push(fact("Spool (" + s.scope + ")", `${s.files} files, ${bytes(s.bytes)}`, s.oldest_at ? ` oldest ${when(s.oldest_at)}` : ""));
    if (d.recorder) items.push(fact("Recorder", d.recorder.db_available ? pill("SQL reachable", "ok") : pill("spooling: SQL unreachable", "bad"), ` ${d.recorder.spooled_total} spooled, ${d.recorder.flush_failures} flush failures`));
    const e = d.edge;
    if (e.bundle) {
      items.push(fact("Edge bundle", `v${e.bundle.model_version} `, pill(e.bundle.kind), ` threshold ${num(e.bundle.threshold, 4)}, ${bytes(e.bundle.size_bytes)}, built ${when(e.bundle.created_at)}`));
      if (!e.matches_production) items.push(fact("Edge vs production", pill(`phones run v${e.bundle.model_version}, production is v${e.production_version}`, "warn")));
    } else {
      items.push(fact("Edge bundle", e.error ? el("span", { class: "error" }, e.error) : e.empty));
    }
    items.push(fact(`Edge share (${num(d.hours, 0)} h)`, `${pct(e.share)} (${e.events} events)`));
    for (const [k, v] of Object.entries(d.errors || {})) items.push(fact(k, el("span", { class: "error" }, v)));
    fill($("pipeline-facts"), items);
    drawCharts("pipeline-charts", d.charts);
  }

  const RENDER = {
    serving: renderServing, traffic: renderTraffic, process: renderProcess,
    performance: renderPerformance, drift: renderDrift, retraining: renderRetraining,
    pipeline: renderPipeline,
  };

  function showBanner(node) {
    const banner = $("banner");
    banner.replaceChildren(node);
    banner.hidden = false;
  }

  async function fetchPanel(name) {
    const response = await fetch(API + name + ".json", {
      credentials: "same-origin", headers: { Accept: "application/json" }, cache: "no-store",
    });
    if (response.status === 401) {
      state.stopped = true;
      showBanner(el("span", {}, "Your session has ended. ", el("a", { href: "/dashboard/login?expired=1" }, "Sign in again"), "."));
      throw new Error("session ended");
    }
    const body = await response.json();
    if (!response.ok) throw new Error(body.detail || `HTTP ${response.status}`);
    return body;
  }

  async function refresh() {
    if (state.stopped) return;
    const results = await Promise.allSettled(PANELS.map(fetchPanel));
    results.forEach((result, i) => {
      const name = PANELS[i];
      const section = $("panel-" + name);
      section.querySelectorAll(":scope > .panel-error").forEach((n) => n.remove());
      if (result.status === "fulfilled") {
        state.data[name] = result.value;
        try {
          RENDER[name](result.value);
        } catch (err) {
          state.errors.push(`${name}: ${err}`);
          section.append(el("p", { class: "panel-error error" }, `Could not draw this panel: ${err}`));
        }
      } else if (!state.stopped) {
        section.append(el("p", { class: "panel-error error" }, `Could not load ${name}.json: ${result.reason.message}`));
      }
    });
    renderGlance();
    $("updated").textContent = "updated " + when(new Date().toISOString());
    state.loaded = true;
    document.body.dataset.loaded = "true";
  }

  function start() {
    refresh();
    setInterval(() => { if (!document.hidden) refresh(); }, REFRESH_MS);
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
