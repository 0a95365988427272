# The mover image: the CLI, the Celery workers and Flower (compose.yaml runs all three).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
# Only what the package needs (see .dockerignore): no tests, no benchmarks, no credentials.
COPY pyproject.toml README.md ./
COPY mover ./mover
COPY strategies ./strategies
COPY workers ./workers
RUN pip install .[repository,postgres] \
    && useradd --create-home --uid 10001 --shell /usr/sbin/nologin mover

# Not root: a worker holds store credentials and runs whatever the broker tells it to move.
USER mover
WORKDIR /home/mover
ENV MOVER_STATE_DIR=/home/mover/state

# compose.yaml overrides this per service (worker, autoscaler, flower).
CMD ["mover", "worker", "-c", "4", "--pool", "prefork"]
