"""The dashboard without a browser: who may look, the JSON behind each chart, empty states."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from fatigue_guard.serving.dashboard.session import COOKIE_NAME, SESSION_TTL_S, issue_session
from fatigue_guard.serving.problems import PROBLEM_MEDIA_TYPE
from tests.dashboard.conftest import Seeded
from tests.serving.conftest import ADMIN_TOKEN, LiveApi

PANELS = ("serving", "process", "traffic", "performance", "drift", "retraining", "pipeline")
CHARTS = {
    "process": {"requests", "latency"},
    "traffic": {"predictions", "alert_rate"},
    "performance": {"precision", "recall", "daily_precision"},
    "drift": {"psi"},
    "pipeline": {"outbox_backlog", "shipping_lag", "edge_share"},
}


def _panel(api: LiveApi, name: str, **params: Any) -> dict[str, Any]:
    with api.admin() as admin:
        response = admin.get(f"/v1/admin/dashboard/{name}.json", params=params)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["panel"] == name
    return body


def _charts(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["id"]: c for c in body.get("charts", [])}


def _check_chart_shape(chart: dict[str, Any]) -> None:
    n = len(chart["x"])
    assert {"id", "title", "source", "x", "series", "bands", "points", "empty"} <= set(chart)
    for series in chart["series"]:
        assert len(series["values"]) == n, (chart["id"], series["key"])
        assert series["axis"] in ("y", "y2")
    keys = {s["key"] for s in chart["series"]}
    for band in chart["bands"]:
        assert {band["upper"], band["lower"]} <= keys
    real = sum(
        1 for s in chart["series"] if not s["reference"] for v in s["values"] if v is not None
    )
    assert chart["points"] == real
    # Exactly one of data and an explanation.
    assert (chart["empty"] is None) == (real > 0), chart["id"]


# -- who may look ------------------------------------------------------------------------------


def _is_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM_MEDIA_TYPE)
    body = response.json()
    assert body["status"] == status and body["detail"]
    return body


def test_without_credentials_every_route_is_401_problem_json(bare: LiveApi) -> None:
    with bare.client() as anonymous:
        for name in PANELS:
            response = anonymous.get(f"/v1/admin/dashboard/{name}.json")
            _is_problem(response, 401)
            assert response.headers["www-authenticate"] == "Bearer"
        _is_problem(anonymous.get("/v1/admin/dashboard/reports/1.html"), 401)
        # An API client asking for the page gets the same answer...
        _is_problem(anonymous.get("/dashboard", headers={"Accept": "application/json"}), 401)
        # ...a browser is sent to the sign-in form instead.
        page = anonymous.get("/dashboard", headers={"Accept": "text/html"})
        assert page.status_code == 303
        assert page.headers["location"] == "/dashboard/login"
        login = anonymous.get("/dashboard/login")
        assert login.status_code == 200
        assert 'name="token"' in login.text


def test_a_device_key_is_403_and_the_admin_token_is_200(bare: LiveApi) -> None:
    user = bare.bodies(1)[0]["user_id"]
    with bare.client(user) as device:
        for name in PANELS:
            _is_problem(device.get(f"/v1/admin/dashboard/{name}.json"), 403)
        _is_problem(device.get("/dashboard", headers={"Accept": "text/html"}), 403)
    with bare.client() as anonymous:
        wrong = {"Authorization": "Bearer not-the-admin-token"}
        _is_problem(anonymous.get("/v1/admin/dashboard/serving.json", headers=wrong), 403)
    with bare.admin() as admin:
        for name in PANELS:
            assert admin.get(f"/v1/admin/dashboard/{name}.json").status_code == 200, name
        page = admin.get("/dashboard", headers={"Accept": "text/html"})
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        csp = page.headers["content-security-policy"]
        assert "default-src 'none'" in csp and "connect-src 'self'" in csp
        assert page.headers["cache-control"] == "no-store"
        assert admin.get("/v1/admin/dashboard/nothing.json").status_code == 404
        _is_problem(admin.get("/v1/admin/dashboard/traffic.json", params={"hours": 0}), 422)
        _is_problem(admin.get("/v1/admin/dashboard/traffic.json", params={"hours": 1000}), 422)


def _cookie_header(response: httpx.Response) -> str:
    cookies = [v for k, v in response.headers.multi_items() if k == "set-cookie"]
    assert len(cookies) == 1, cookies
    return cookies[0]


def test_the_token_buys_a_short_signed_http_only_strict_cookie(bare: LiveApi) -> None:
    with bare.client(follow_redirects=False) as browser:
        signed_in = browser.post("/dashboard/session", data={"token": ADMIN_TOKEN})
        assert signed_in.status_code == 303
        assert signed_in.headers["location"] == "/dashboard"
        header = _cookie_header(signed_in)
        attributes = {part.strip().split("=")[0].lower() for part in header.split(";")}
        assert {"httponly", "samesite", "path", "max-age"} <= attributes
        assert "samesite=strict" in header.lower()
        assert f"max-age={SESSION_TTL_S}" in header.lower()
        assert "secure" not in attributes  # plain HTTP here; set whenever the request is HTTPS
        assert ADMIN_TOKEN not in header
        # The cookie alone opens the page and every panel...
        assert browser.get("/dashboard").status_code == 200
        for name in PANELS:
            assert browser.get(f"/v1/admin/dashboard/{name}.json").status_code == 200, name
        # ...and nothing else an admin can do.
        assert browser.get("/v1/admin/status").status_code == 401
        assert browser.post("/v1/admin/models/reload").status_code == 401
        signed_out = browser.post("/dashboard/logout")
        assert signed_out.status_code == 303
        assert COOKIE_NAME in _cookie_header(signed_out)
        _is_problem(browser.get("/v1/admin/dashboard/serving.json"), 401)

    with bare.client() as api_client:
        token_json = api_client.post(
            "/dashboard/session", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
        )
        assert token_json.status_code == 200
        assert token_json.json()["expires_at"]


@pytest.mark.parametrize(
    "cookie",
    [
        "tampered",
        "expired",
        "other-token",
        "garbage",
    ],
)
def test_a_forged_expired_or_foreign_cookie_is_refused(bare: LiveApi, cookie: str) -> None:
    value, _ = issue_session(ADMIN_TOKEN)
    values = {
        "tampered": value[:-2] + ("AA" if not value.endswith("AA") else "BB"),
        "expired": issue_session(ADMIN_TOKEN, now=time.time() - SESSION_TTL_S - 5)[0],
        "other-token": issue_session("another-admin-token-0123456789")[0],
        "garbage": "v1.9999999999.x.y",
    }
    with bare.client(cookies={COOKIE_NAME: values[cookie]}) as client:
        body = _is_problem(client.get("/v1/admin/dashboard/serving.json"), 401)
        assert "sign in" in body["detail"]
        redirect = client.get("/dashboard", headers={"Accept": "text/html"})
        assert redirect.status_code == 303
        assert redirect.headers["location"] == "/dashboard/login?expired=1"


def test_sign_in_refuses_a_wrong_token_and_another_origin(bare: LiveApi) -> None:
    with bare.client(follow_redirects=False) as browser:
        wrong = browser.post("/dashboard/session", data={"token": "nope"})
        assert wrong.status_code == 403
        assert "not the admin token" in wrong.text
        assert "set-cookie" not in wrong.headers
        crossed = browser.post(
            "/dashboard/session",
            data={"token": ADMIN_TOKEN},
            headers={"Origin": "https://elsewhere.example"},
        )
        _is_problem(crossed, 403)
        assert "set-cookie" not in crossed.headers


def test_without_an_admin_token_the_dashboard_does_not_exist(
    tmp_path: Any, trained_registry: Any
) -> None:
    from tests.serving.conftest import start_api

    settings = trained_registry.settings(tmp_path / "home", admin_token=None)
    for api in start_api(settings, trained_registry):
        with api.client() as anonymous:
            for path in ("/dashboard", "/dashboard/login", "/v1/admin/dashboard/serving.json"):
                _is_problem(anonymous.get(path), 404)
            _is_problem(anonymous.post("/dashboard/session", data={"token": "x"}), 404)


def test_static_files_ship_in_the_package_and_revalidate(bare: LiveApi) -> None:
    with bare.client() as anonymous:
        for name, kind in (
            ("dashboard.js", "text/javascript"),
            ("dashboard.css", "text/css"),
            ("vendor/uPlot.iife.min.js", "text/javascript"),
            ("vendor/uPlot.min.css", "text/css"),
            ("vendor/uPlot.LICENSE", "text/plain"),
        ):
            response = anonymous.get(f"/dashboard/static/{name}")
            assert response.status_code == 200, name
            assert response.headers["content-type"].startswith(kind)
            again = anonymous.get(
                f"/dashboard/static/{name}", headers={"If-None-Match": response.headers["etag"]}
            )
            assert again.status_code == 304
        assert "MIT" in anonymous.get("/dashboard/static/vendor/uPlot.LICENSE").text
        for bad in ("../app.py", "dashboard.html", "vendor/README.md", "nope.js"):
            assert anonymous.get(f"/dashboard/static/{bad}").status_code == 404, bad


# -- the JSON of a seeded instance ---------------------------------------------------------------


def test_every_panel_answers_its_shape_with_data(seeded: Seeded) -> None:
    for name in PANELS:
        body = _panel(seeded.api, name)
        assert body["generated_at"] and isinstance(body["pid"], int)
        charts = _charts(body)
        assert set(charts) == CHARTS.get(name, set()), name
        for chart in charts.values():
            _check_chart_shape(chart)
            assert chart["points"] > 0, (name, chart["id"], chart["empty"])


def test_serving_panel_names_the_version_its_history_and_the_rollback(seeded: Seeded) -> None:
    body = _panel(seeded.api, "serving")
    assert body["served"]["version"] == seeded.rolled_back_to
    assert body["production"]["version"] == seeded.rolled_back_to
    assert body["production"]["action"] == "rollback"
    assert body["production"]["since"]
    assert body["in_step"] is True
    assert body["alerting"]["precision_floor"] == pytest.approx(0.75)
    assert body["alerting"]["threshold"] == body["served"]["threshold"]
    versions = {v["version"]: v for v in body["versions"]}
    assert {seeded.promoted, seeded.rolled_back_to} <= set(versions)
    promoted = versions[seeded.promoted]
    assert promoted["gate"]["result"] == "passed"
    assert promoted["gate"]["metrics"]["candidate_precision"] > 0
    assert promoted["rolled_back"] is True
    assert promoted["holdout"]["precision"] is not None
    assert versions[seeded.rolled_back_to]["aliases"] == ["production"]
    moves = body["moves"]
    assert [m["action"] for m in moves[:2]] == ["rollback", "promote"]
    assert all(m["id"] is not None for m in moves[:2])  # both have their SQL audit row
    assert moves[1]["retrain_run_id"] == seeded.retrain_run_id
    assert [r["to"] for r in body["rollbacks"]] == [seeded.rolled_back_to]


def test_traffic_counts_what_was_stored(seeded: Seeded) -> None:
    body = _panel(seeded.api, "traffic", hours=1)
    totals = body["totals"]
    assert totals["server"] == seeded.predictions
    assert totals["edge"] == seeded.edge_events
    assert totals["predictions"] == seeded.predictions + seeded.edge_events
    assert totals["feedback"] == seeded.predictions  # every served prediction got its label
    assert 0 < body["alert_rate"] < 1
    chart = _charts(body)["predictions"]
    per_min = 60 / body["step_s"]
    stored = sum(v or 0 for s in chart["series"] for v in s["values"]) / per_min
    assert stored == pytest.approx(totals["predictions"])


def test_performance_and_drift_come_from_the_stored_reports(seeded: Seeded) -> None:
    performance = _panel(seeded.api, "performance")
    latest = performance["latest"]
    assert latest["report_id"] == seeded.reports[-1]
    assert latest["labels"] > 0 and latest["labelled_alerts"] > 0
    low, high = latest["precision_interval"]
    assert low <= latest["precision"] <= high
    assert latest["estimated_precision"] is not None
    precision = _charts(performance)["precision"]
    assert len(precision["x"]) == len(seeded.reports)
    floor = next(s for s in precision["series"] if s["key"] == "floor")
    assert floor["reference"] and set(floor["values"]) == {0.75}

    drift = _panel(seeded.api, "drift")
    assert [r["id"] for r in drift["reports"]] == seeded.reports
    verdict = drift["latest"]
    assert verdict["report_id"] == seeded.reports[-1]
    assert verdict["html_url"] == f"/v1/admin/dashboard/reports/{seeded.reports[-1]}.html"
    assert verdict["features"] and all("psi" in f for f in verdict["features"])
    chart = _charts(drift)["psi"]
    shown = [s for s in chart["series"] if s["show"] and not s["reference"]]
    assert 1 <= len(shown) <= len(chart["series"])
    with seeded.api.admin() as admin:
        html = admin.get(verdict["html_url"])
    assert html.status_code == 200
    assert html.headers["content-type"].startswith("text/html")
    assert "sandbox" in html.headers["content-security-policy"]
    assert f"monitor-{seeded.reports[-1]}" in html.text or "<html" in html.text.lower()
    with seeded.api.admin() as admin:
        _is_problem(admin.get("/v1/admin/dashboard/reports/999999.html"), 404)


def test_retraining_chain_links_report_run_version_gate_and_deployment(seeded: Seeded) -> None:
    body = _panel(seeded.api, "retraining")
    assert body["empty"] is None
    run = next(r for r in body["runs"] if r["id"] == seeded.retrain_run_id)
    assert run["status"] == "promoted"
    assert run["drift_report"]["id"] == seeded.reports[-1]
    assert run["drift_report"]["html_url"]
    assert run["mlflow_run_id"]
    assert run["version"]["version"] == seeded.promoted
    assert run["version"]["run_id"] == run["mlflow_run_id"]
    assert run["gate"]["passed"] is True and run["gate"]["reason"]
    assert [(d["from"], d["to"]) for d in run["deployments"]] == [
        (seeded.rolled_back_to, seeded.promoted)
    ]
    assert run["deployments"][0]["id"] is not None
    assert [m["to"] for m in run["rolled_back"]] == [seeded.rolled_back_to]


def test_pipeline_shows_the_queue_the_spool_and_the_edge(seeded: Seeded) -> None:
    body = _panel(seeded.api, "pipeline")
    outbox = body["outbox"]
    assert outbox["pending"] == 0 and outbox["lag_s"] == 0.0
    assert body["spool"]["files"] == 0
    assert body["recorder"]["db_available"] is True
    edge = body["edge"]
    assert edge["bundle"]["model_version"] == seeded.rolled_back_to
    assert edge["matches_production"] is True
    assert edge["events"] == seeded.edge_events
    assert edge["share"] == pytest.approx(
        seeded.edge_events / (seeded.edge_events + seeded.predictions), abs=1e-3
    )
    lag = _charts(body)["shipping_lag"]
    assert max(v for v in lag["series"][0]["values"] if v is not None) < 60


def test_process_panel_measures_this_process(seeded: Seeded) -> None:
    body = _panel(seeded.api, "process")
    assert body["sampler"]["sampling"] is True
    charts = _charts(body)
    rates = [v for v in charts["requests"]["series"][0]["values"] if v]
    assert rates and max(rates) > 1
    errors = next(s for s in charts["requests"]["series"] if s["key"] == "client_errors")
    assert any(v for v in errors["values"])  # the seed's refused requests
    p99 = [v for v in charts["latency"]["series"][1]["values"] if v is not None]
    assert p99 and all(v > 0 for v in p99)


# -- empty states ---------------------------------------------------------------------------


def test_empty_panels_say_what_will_appear_and_when(bare: LiveApi) -> None:
    for name in PANELS:
        body = _panel(bare, name)
        for chart in _charts(body).values():
            _check_chart_shape(chart)
    traffic = _charts(_panel(bare, "traffic"))
    assert traffic["predictions"]["points"] == 0
    assert "within seconds" in traffic["predictions"]["empty"]

    performance = _panel(bare, "performance")
    assert performance["latest"] is None
    assert "every 6 h" in performance["empty"]
    assert "fatigue-guard monitor run" in performance["empty"]
    for chart in _charts(performance).values():
        assert chart["empty"] == performance["empty"]

    drift = _panel(bare, "drift")
    assert drift["latest"] is None and "every 6 h" in _charts(drift)["psi"]["empty"]

    retraining = _panel(bare, "retraining")
    assert retraining["runs"] == []
    assert "fatigue-guard retrain" in retraining["empty"]
    assert "drift report -> MLflow run -> version -> gate -> deployment" in retraining["empty"]

    pipeline = _panel(bare, "pipeline")
    assert pipeline["edge"]["bundle"] is None
    assert "export-edge" in pipeline["edge"]["empty"]
    assert "No feature batch" in _charts(pipeline)["shipping_lag"]["empty"]
    assert "No event was stored" in _charts(pipeline)["edge_share"]["empty"]

    process = _charts(_panel(bare, "process"))
    assert "has answered no API request" in process["requests"]["empty"]

    serving = _panel(bare, "serving")
    assert serving["served"]["version"] == bare.registry.version
    assert serving["versions"] and serving["empty"] is None


def test_dashboard_routes_stay_out_of_the_openapi_document(bare: LiveApi) -> None:
    # The document lists the API clients call (its operation table is checked elsewhere).
    with bare.client() as anonymous:
        paths = anonymous.get("/openapi.json").json()["paths"]
    assert not [p for p in paths if p.startswith(("/dashboard", "/v1/admin/dashboard"))]


def test_an_unreachable_registry_is_shown_not_fatal(tmp_path: Any, trained_registry: Any) -> None:
    from tests.serving.conftest import start_api

    settings = trained_registry.settings(
        tmp_path / "home",
        admin_token=ADMIN_TOKEN,
        mlflow_tracking_uri=f"sqlite:///{tmp_path / 'no-such-mlflow.db'}",
    )
    for api in start_api(settings, trained_registry):
        serving = _panel(api, "serving")
        assert "does not exist" in serving["registry_error"]
        assert (
            serving["served"] is None
            and "loads the production version" in (serving["served_empty"])
        )
        assert serving["versions"] == [] and serving["empty"] is None
        assert "registry_error" in _panel(api, "retraining")
        for name in ("traffic", "pipeline", "process", "performance", "drift"):
            _panel(api, name)
    assert not (tmp_path / "no-such-mlflow.db").exists()  # read, never created
