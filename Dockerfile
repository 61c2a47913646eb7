# syntax=docker/dockerfile:1
# fatigue-guard: one image for every role. `fatigue-guard serve` is the default command; the
# monitor and retrain jobs (Kubernetes CronJobs, Azure ML command jobs) and the MLflow server run
# other commands of the same image.
#
#   docker build -t fatigue-guard:0.1.0 .                      # with the azureml extra
#   docker build --build-arg EXTRAS= -t fatigue-guard:0.1.0 .  # without the Azure ML SDK
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
# The versions the tests ran with: the lock's pins (hashes dropped) as constraints, so the image
# resolves nothing new. The lock covers the runtime dependencies and the azureml extra.
COPY requirements/dev.lock requirements/dev.lock
RUN sed -n 's/^\([A-Za-z0-9._-]*==[^ ;]*\).*/\1/p' requirements/dev.lock > /tmp/constraints.txt
COPY pyproject.toml README.md ./
COPY src ./src
ARG EXTRAS=azureml
RUN pip wheel --wheel-dir /wheels --constraint /tmp/constraints.txt ".${EXTRAS:+[${EXTRAS}]}"

FROM ${PYTHON_IMAGE} AS runtime
# A fixed uid/gid, so Kubernetes' runAsUser and the files below agree.
RUN groupadd --system --gid 10001 app \
 && useradd --system --uid 10001 --gid app --no-create-home --home-dir /var/lib/fatigue-guard app \
 && install -d -o app -g app /var/lib/fatigue-guard
# Wheels only, no index: nothing is resolved or downloaded in the runtime stage, and no build
# tool or wheel file stays in the image.
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --find-links=/wheels /wheels/*.whl
# The Azure ML templates, for the retrain job a monitor breach submits with
# FATIGUE_GUARD_RETRAIN_TRIGGER=azureml.
COPY deploy/azureml /opt/fatigue-guard/deploy/azureml
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    FATIGUE_GUARD_HOME=/var/lib/fatigue-guard \
    FATIGUE_GUARD_AZUREML_TEMPLATES=/opt/fatigue-guard/deploy/azureml \
    MPLCONFIGDIR=/tmp/matplotlib
# SQLite file, spool and model cache when nothing else is configured; the spool must outlive the
# container, so it is a volume (an emptyDir on Kubernetes).
VOLUME ["/var/lib/fatigue-guard"]
WORKDIR /var/lib/fatigue-guard
USER 10001:10001
EXPOSE 8000
# For `serve` only (Kubernetes and Azure ML use their own probes on /healthz and /readyz).
HEALTHCHECK --interval=30s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"]
# A default command rather than an entrypoint: jobs replace the whole command line.
CMD ["fatigue-guard", "serve", "--host", "0.0.0.0", "--port", "8000"]
