# chat-stream: the streaming service alone (`chat-stream serve`), after FastAPI's container recipe
# (https://fastapi.tiangolo.com/deployment/docker/): the official slim Python image, the package
# installed with pip, an exec-form CMD so the server is PID 1 and receives the stop signal.
# No container engine runs where this was written: tests/deploy/test_dockerfile.py runs this file's
# install and start commands (RUN pip …, CMD, HEALTHCHECK) in a fresh virtualenv instead.
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /code

COPY ./pyproject.toml ./README.md /code/
COPY ./app /code/app
RUN pip install --no-cache-dir --upgrade /code

# The migrations, for `chat-stream migrate` and `chat-stream check` (found in the working dir).
COPY ./supabase /code/supabase

# A non-root user; the outbox lives on a volume (mount a persistent one shared by the replicas).
RUN useradd --create-home --uid 10001 chat && mkdir -p /data/outbox && chown chat /data/outbox
USER chat

ENV HOST=0.0.0.0 \
    PORT=8000 \
    OUTBOX_DIR=/data/outbox
VOLUME ["/data/outbox"]
EXPOSE 8000

# Ready = the Data API and the database answer and the providers are configured.
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('PORT', '8000') + '/readyz', timeout=2)"]

# uvicorn stops on SIGTERM (what Docker and Kubernetes send) and finishes open requests.
STOPSIGNAL SIGTERM
CMD ["chat-stream", "serve"]
