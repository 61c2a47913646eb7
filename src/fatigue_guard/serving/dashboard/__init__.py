"""The operator dashboard: one page (``GET /dashboard``) over JSON panels
(``GET /v1/admin/dashboard/<panel>.json``), with its chart library shipped in the package.

``panels`` assembles the JSON from the stores, ``sampler`` keeps this process's request metrics
over time, ``session`` decides who may look, ``assets`` serves the static files. The routes are in
:mod:`fatigue_guard.serving.routes.dashboard`.
"""
