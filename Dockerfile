# Image for every MMS process (web, quoter, celery worker and beat); the
# command picks the process. Untested here: this machine has no container engine.

# First stage: compile the quoting core with mypyc (gcc and Python's headers are
# in the full image, not in the slim one that runs it).
FROM python:3.11 AS core
WORKDIR /app
COPY . .
RUN pip install --no-cache-dir "mypy==$(python -c 'import tomllib; print(next(r.split("==")[1] for r in tomllib.load(open("pyproject.toml","rb"))["build-system"]["requires"] if r.startswith("mypy==")))')" setuptools && \
    python scripts/build_core.py

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 MMS_CORE=compiled
WORKDIR /app
COPY . .
COPY --from=core /app/quoting_worker/core/_compiled quoting_worker/core/_compiled
RUN pip install --no-cache-dir . && \
    DJANGO_SECRET_KEY=build POSTGRES_URL=postgres://x@db/x REDIS_URL=redis://r:6379/0 \
    SCHEMA_REGISTRY_URL=http://sr:8081 python manage.py collectstatic --no-input -v 0
EXPOSE 8095 3001 9090
CMD ["gunicorn", "mms.wsgi", "--config", "mms/gunicorn.conf.py", "--bind", "0.0.0.0:8095", "--bind", "0.0.0.0:3001", "--workers", "4", "--threads", "4"]
