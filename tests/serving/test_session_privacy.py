"""Nothing personal or secret reaches ANY log line of a real session over HTTP: every record of
every logger (uvicorn, fatigue_guard, SQLAlchemy, psycopg, Azure, MLflow...) is captured with
the root logger at DEBUG, as an operator chasing a problem would run the server.

The session covers what a phone, an operator and an outage do: predictions, a batch, feedback,
a sync, bad input, a wrong key, admin calls, a SQL outage (predictions spooled, an erasure
refused) and an erasure once SQL is back, after which the erased user's spooled records must not
come back. The forbidden strings are built from the bodies sent: user ids, feature values,
event ids, device keys and the admin token."""

from __future__ import annotations

import logging
import threading
import traceback
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import exc as sa_exc
from sqlalchemy import select

from fatigue_guard.cli.serve import uvicorn_options
from fatigue_guard.contract.features import FEATURES
from fatigue_guard.storage.factory import Storage, build_storage
from fatigue_guard.storage.records import PredictionRecord
from fatigue_guard.storage.sql.tables import Prediction
from tests.fixtures.models import TrainedRegistry
from tests.fixtures.services import TcpProxy
from tests.serving.conftest import ADMIN_TOKEN, LiveApi, start_api
from tests.serving.payloads import edge_event
from tests.storage.conftest import make_record, storage_settings

ZEBRA = "person-zebra-7781"  # erased in the session
OKAPI = "person-okapi-4417"
WRONG_KEY = "fgk_0f1e2d3c4b5a6978_Wr0ngS3cretThatMustNeverBeLoggedXq9"
# Attributes every LogRecord has; anything else was passed as ``extra`` and is formatted too.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}
_FORMAT = logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(threadName)s] %(message)s")


class _Capture(logging.Handler):
    """Every record, formatted with its traceback, stack and extras, as one string."""

    def __init__(self, test_thread: int) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self._test_thread = test_thread

    def emit(self, record: logging.LogRecord) -> None:
        # The test's own HTTP client logs the URLs it calls; the server's calls are not skipped.
        if record.thread == self._test_thread and record.name.startswith(("httpx", "httpcore")):
            return
        extras = {k: v for k, v in vars(record).items() if k not in _STANDARD}
        self.lines.append(f"{_FORMAT.format(record)} {extras!r}")


@contextmanager
def _every_log_record() -> Iterator[_Capture]:
    """Root at DEBUG with a capturing handler, also on the loggers that do not propagate."""
    capture = _Capture(threading.get_ident())
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.DEBUG)
    root.addHandler(capture)
    try:
        yield capture
    finally:
        root.removeHandler(capture)
        root.setLevel(level)


def _attach_to_non_propagating(capture: _Capture) -> list[logging.Logger]:
    loggers = [
        logger
        for logger in logging.Logger.manager.loggerDict.values()
        if isinstance(logger, logging.Logger) and not logger.propagate
    ]
    for logger in loggers:
        logger.addHandler(capture)
    return loggers


def _distinctive(body: dict[str, Any], user_id: str, salt: int) -> dict[str, Any]:
    """``body`` for ``user_id`` with a fresh event id and feature values no log has by chance."""
    features = dict(body["features"])
    for spec in FEATURES:
        value = features.get(spec.name)
        if value is None or spec.integer:
            continue
        nudged = round(float(value), 2) + 0.0002718 + salt * 1e-7
        if not spec.minimum <= nudged < spec.maximum:
            nudged = round(float(value), 2) - 0.0002718 - salt * 1e-7
        features[spec.name] = nudged
    return {**body, "user_id": user_id, "event_id": str(uuid.uuid4()), "features": features}


def _forbidden(bodies: list[dict[str, Any]], keys: list[str]) -> set[str]:
    strings = {ZEBRA, OKAPI, ADMIN_TOKEN, WRONG_KEY, WRONG_KEY.rsplit("_", 1)[1]}
    strings |= {key.rsplit("_", 1)[1] for key in keys} | set(keys)
    for body in bodies:
        strings.add(body["event_id"])
        strings.add(uuid.UUID(body["event_id"]).hex)
        strings |= {
            repr(value)
            for value in body["features"].values()
            if isinstance(value, float) and not value.is_integer()
        }
    return strings


@pytest.mark.postgres
@pytest.mark.azurite
def test_no_log_line_of_a_real_session_holds_personal_data_or_secrets(
    postgres_proxy: tuple[TcpProxy, str],
    azurite: str,
    blob_container: str,
    tmp_path: Path,
    trained_registry: TrainedRegistry,
) -> None:
    proxy, url = postgres_proxy
    settings = trained_registry.settings(
        tmp_path,
        database_url=url,
        azure_storage_connection_string=azurite,
        blob_container=blob_container,
        admin_token=ADMIN_TOKEN,
        recorder_process=False,  # every logger in this process, where the capture is
        monitor_enabled=False,
        key_cache_ttl_s=600,
        rate_limit_burst=10_000,
        db_connect_timeout_s=2.0,
        blob_flush_max_age_s=0.2,
        outbox_poll_interval_s=0.05,
        # A claim whose commit the cut interrupts may have been applied: its rows wait out the
        # lease before any flusher takes them again.
        outbox_lease_s=2.0,
        # The spool is replayed when the test says, after the erasure.
        spool_replay_interval_s=3600,
    )
    # Another replica on the same database, with a spool of its own.
    other = build_storage(settings.model_copy(update={"home": tmp_path / "replica-b"}))
    with _every_log_record() as capture:
        sent: list[dict[str, Any]] = []
        for api in start_api(settings, trained_registry, **uvicorn_options("debug")):
            attached = _attach_to_non_propagating(capture)
            try:
                _session(api, other, proxy, sent)
            finally:
                for logger in attached:
                    logger.removeHandler(capture)
                other.stop()
                other.close()
            keys = list(api.keys.values())
    lines = capture.lines
    assert len(lines) > 50, "the capture saw the session"
    assert any("spooling" in line for line in lines), "the outage was logged"
    leaks = {s: line for s in _forbidden(sent, keys) for line in lines if s in line}
    assert not leaks, "\n".join(f"{s!r} in: {line[:400]}" for s, line in leaks.items())


def _session(api: LiveApi, other: Storage, proxy: TcpProxy, sent: list[dict[str, Any]]) -> None:
    live = api.bodies(12)
    zebra = [_distinctive(b, ZEBRA, i) for i, b in enumerate(live[:4])]
    okapi = [_distinctive(b, OKAPI, 10 + i) for i, b in enumerate(live[4:10])]
    bad = _distinctive(live[10], OKAPI, 20)
    bad["features"] = {**bad["features"], "sleep_duration_h": 99.8877665}
    sent += [*zebra, *okapi, bad]
    admin = api.admin()
    with api.client(ZEBRA) as phone_z, api.client(OKAPI) as phone_o:
        assert phone_z.get("/v1/me").status_code == 200  # keys verified (and cached) while up
        assert phone_o.get("/v1/me").status_code == 200
        for body in zebra[:2]:
            assert phone_z.post("/v1/predictions", json=body).status_code == 200
        batch = phone_o.post("/v1/predictions:batch", json={"items": [*okapi[:2], bad]})
        assert batch.status_code == 200, batch.text
        assert phone_o.post("/v1/predictions", json=bad).status_code == 422
        torn = b'{"user_id": "' + OKAPI.encode()
        json_type = {"Content-Type": "application/json"}
        assert phone_o.post("/v1/predictions", content=torn, headers=json_type).status_code == 422
        feedback = {
            "event_id": zebra[0]["event_id"],
            "fatigue_event": True,
            "source": "self_report",
            "observed_at": datetime.now(UTC).isoformat(),
        }
        assert phone_z.post("/v1/feedback", json=feedback).status_code == 201
        event = edge_event(okapi[2], api.registry.version, alert=True)
        assert phone_o.post("/v1/sync", json={"events": [event]}).status_code == 200
        wrong = {"Authorization": f"Bearer {WRONG_KEY}"}
        assert phone_o.post("/v1/predictions", json=okapi[3], headers=wrong).status_code == 401
        assert admin.get("/v1/admin/status").status_code == 200

        proxy.stop()  # SQL outage: predictions are spooled, an erasure is refused
        try:
            for body in zebra[2:]:
                assert phone_z.post("/v1/predictions", json=body).status_code == 200
            assert phone_o.post("/v1/predictions", json=okapi[4]).status_code == 200
            spooled_elsewhere = [_record(zebra[0], uuid.uuid4()), _record(okapi[0], uuid.uuid4())]
            assert other.recorder.record_many(spooled_elsewhere).spooled
            refused = admin.delete(f"/v1/admin/users/{ZEBRA}")
            assert refused.status_code == 503, refused.text
        finally:
            proxy.start()

        erased = admin.delete(f"/v1/admin/users/{ZEBRA}")
        assert erased.status_code == 200, erased.text
        assert erased.json()["removed"]["predictions"] == 2  # the two made while SQL was up
        assert phone_o.post("/v1/predictions", json=okapi[5]).status_code == 200
    # Both spools replay now, after the erasure; the other replica's goes through SQL too.
    assert other.recorder.replay_spool() == 2
    assert api.storage.recorder.drain(timeout_s=60)  # ships both replicas' rows
    _assert_erased(api, okapi)
    assert str(spooled_elsewhere[1].event_id) in _sql_event_ids(api)


def _record(body: dict[str, Any], event_id: uuid.UUID) -> PredictionRecord:
    """A record as another replica would have answered ``body`` (received now)."""
    return replace(make_record(body["user_id"]), event_id=event_id, features=dict(body["features"]))


def _sql_event_ids(api: LiveApi) -> set[str]:
    with api.storage.engine.connect() as connection:
        return {str(e) for e in connection.execute(select(Prediction.event_id)).scalars()}


def _assert_erased(api: LiveApi, okapi: list[dict[str, Any]]) -> None:
    with api.storage.engine.connect() as connection:
        users = set(connection.execute(select(Prediction.user_id)).scalars())
    assert users == {OKAPI}
    now = datetime.now(UTC)
    frame = api.storage.read_live_dataset(now - timedelta(days=3650), now + timedelta(days=1))
    assert set(frame["user_id"]) == {OKAPI}
    assert {okapi[4]["event_id"], okapi[5]["event_id"]} <= set(frame["event_id"])
    blob_users = set()
    for key in api.storage.blobs.list("features/"):
        blob_users |= set(api.storage.feature_store.read_key(key)["user_id"].to_pylist())
    assert blob_users == {OKAPI}


def test_a_failed_statement_names_no_parameter_in_its_error(tmp_path: Path) -> None:
    """A statement's error is logged with its traceback (a failed spool replay, an outbox step),
    so its text must not carry the statement's values: user ids, feature values."""
    storage = build_storage(storage_settings(tmp_path))
    storage.upgrade()
    record = _distinctive_record()
    try:
        with pytest.raises(sa_exc.IntegrityError) as raised:
            storage.recorder.record_many([replace(record, threshold=None)])  # type: ignore[arg-type]
    finally:
        storage.close()
    text = "".join(traceback.format_exception(raised.value))
    assert "INSERT INTO" in text  # the statement is named, its values are not
    for value in (
        ZEBRA,
        str(record.event_id),
        record.event_id.hex,
        repr(record.features["sleep_duration_h"]),
    ):
        assert value not in text


def _distinctive_record() -> PredictionRecord:
    record = make_record(ZEBRA)
    return replace(record, features={**record.features, "sleep_duration_h": 7.4402718})
