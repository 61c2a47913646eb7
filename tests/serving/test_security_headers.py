"""Browser-facing defences on every answer: no sniffing, no framing, no caching of health data,
and no cross-origin reading (the API sends no CORS headers, so other origins cannot read it)."""

from __future__ import annotations

from tests.serving.conftest import LiveApi

ELSEWHERE = "https://attacker.example"


def test_json_answers_and_problems_carry_the_security_headers(api: LiveApi) -> None:
    body = api.bodies(1)[0]
    with api.client(body["user_id"]) as device, api.client() as anonymous:
        answers = [
            device.post("/v1/predictions", json=body),  # 200 JSON
            anonymous.post("/v1/predictions", json=body),  # 401 problem+json
            anonymous.get("/healthz"),
        ]
    for response in answers:
        headers = response.headers
        assert headers["x-content-type-options"] == "nosniff", response.url
        assert headers["referrer-policy"] == "no-referrer"
        assert headers["x-frame-options"] == "DENY"
        assert headers["content-security-policy"] == "default-src 'none'; frame-ancestors 'none'"
        assert headers["cache-control"] == "no-store"


def test_other_origins_get_no_cors_grant(api: LiveApi) -> None:
    body = api.bodies(1)[0]
    with api.client(body["user_id"]) as device, api.client() as anonymous:
        preflight = anonymous.options(
            "/v1/predictions",
            headers={
                "Origin": ELSEWHERE,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization, content-type",
            },
        )
        simple = device.post("/v1/predictions", json=body, headers={"Origin": ELSEWHERE})
    for response in (preflight, simple):
        assert not any(name.startswith("access-control-") for name in response.headers)
