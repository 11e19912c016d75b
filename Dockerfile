# The appraise image: one image, every part (`appraise score`, `appraise aggregate`,
# `appraise serve`, `appraise produce`, `appraise train`, `appraise monitoring-config`), as docker-compose.yml runs
# them.
# Build: docker build -t appraise:0.1.0 .
FROM python:3.11.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md RUNBOOK.md ./
COPY stream ./stream
COPY producers ./producers
COPY consumers ./consumers
# The rules, Alertmanager's config and the runbook ship inside the package (stream/ops links to
# them), so `appraise up` and `appraise monitoring-config` find them in the image too.
COPY prometheus ./prometheus
# A wheel of the project, then everything it needs, into a venv copied whole below.
RUN python -m venv /opt/appraise \
    && /opt/appraise/bin/pip install --upgrade pip \
    && /opt/appraise/bin/pip install .

FROM python:3.11.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/appraise/bin:$PATH \
    APPRAISE_MODEL_DIR=/models/current
# scikit-learn's wheel brings its own OpenMP runtime. gcc: `appraise score` compiles the
# model's trees at start-up (setting compile_trees; without it, scikit-learn predicts).
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /home/appraise --create-home appraise \
    && mkdir /models /monitoring \
    && chown appraise /models /monitoring
COPY --from=build /opt/appraise /opt/appraise
USER appraise
WORKDIR /home/appraise
# The named volumes "models" and "monitoring" are mounted here; a new volume takes the owner of
# the directory it is mounted on.
VOLUME ["/models", "/monitoring"]
EXPOSE 9400 9401 8000
CMD ["appraise", "--help"]
