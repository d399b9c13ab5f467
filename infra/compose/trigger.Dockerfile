# The local stack's RabbitMQ trigger for docker-compose: delivers each function's queue to
# the function service of the same name (FUNCTION_URL_TEMPLATE). Built from the repository
# root so it carries stack.yml, the shared package and infra/local.
FROM python:3.11-slim-bookworm
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONUNBUFFERED=1
WORKDIR /src
COPY infra/local/requirements.txt infra/local/requirements.txt
COPY templates/python3-flask-cloudevents/requirements.txt runtime-requirements.txt
RUN pip install -r infra/local/requirements.txt -r runtime-requirements.txt
COPY stack.yml .
COPY scanline/ scanline/
COPY infra/__init__.py infra/__init__.py
COPY infra/local/ infra/local/
RUN useradd --system --uid 10001 trigger
USER 10001
CMD ["python", "-m", "infra.local.trigger"]
